"""imgcore: download, compress and store product-catalogue images listed in a CSV.

The public API is re-exported here; submodules load on first use so that ``import imgcore``
(and every compression worker process) stays cheap. The ``compress`` function is not
re-exported because the submodule of the same name would shadow it: use
``from imgcore._compress import compress``.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

if TYPE_CHECKING:
    from imgcore._compress import CompressedImage, CompressOptions, ImageError
    from imgcore._db.database import Database
    from imgcore._fetch import Fetcher, FetchError, FetchOptions
    from imgcore.config import Config, ConfigError
    from imgcore.csvio import CsvIssue, CsvLimits, CsvValidationError
    from imgcore.engine import Engine, ImageNotFoundError, RequestNotFoundError
    from imgcore.errors import ImgcoreError
    from imgcore.hookspecs import hookimpl
    from imgcore.models import ImageInfo, ProductInfo, RequestInfo
    from imgcore.states import ImageStatus, RequestStatus

_EXPORTS = {
    "CompressOptions": "imgcore._compress",
    "CompressedImage": "imgcore._compress",
    "ImageError": "imgcore._compress",
    "Config": "imgcore.config",
    "ConfigError": "imgcore.config",
    "CsvIssue": "imgcore.csvio",
    "CsvLimits": "imgcore.csvio",
    "CsvValidationError": "imgcore.csvio",
    "Database": "imgcore._db.database",
    "Engine": "imgcore.engine",
    "ImageNotFoundError": "imgcore.engine",
    "RequestNotFoundError": "imgcore.engine",
    "ImgcoreError": "imgcore.errors",
    "FetchError": "imgcore._fetch",
    "FetchOptions": "imgcore._fetch",
    "Fetcher": "imgcore._fetch",
    "hookimpl": "imgcore.hookspecs",
    "ImageInfo": "imgcore.models",
    "ProductInfo": "imgcore.models",
    "RequestInfo": "imgcore.models",
    "ImageStatus": "imgcore.states",
    "RequestStatus": "imgcore.states",
}

__all__ = [
    "CompressOptions",
    "CompressedImage",
    "Config",
    "ConfigError",
    "CsvIssue",
    "CsvLimits",
    "CsvValidationError",
    "Database",
    "Engine",
    "FetchError",
    "FetchOptions",
    "Fetcher",
    "ImageError",
    "ImageInfo",
    "ImageNotFoundError",
    "ImageStatus",
    "ImgcoreError",
    "ProductInfo",
    "RequestInfo",
    "RequestNotFoundError",
    "RequestStatus",
    "__version__",
    "hookimpl",
]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'imgcore' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
