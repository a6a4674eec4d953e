"""imgcore: download, compress and store product-catalogue images listed in a CSV.

The public API is re-exported here; submodules load on first use so that ``import imgcore``
(and every compression worker process) stays cheap. Modules whose names start with ``_`` are
private; plugin authors import from :mod:`imgcore.plugin`.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from imgcore._version import __version__

if TYPE_CHECKING:
    from imgcore._compress import CompressedImage, CompressOptions, ImageError, compress
    from imgcore._compression.tuning import limit_malloc_arenas
    from imgcore._csvio import CsvIssue, CsvLimits, CsvValidationError
    from imgcore._db.database import Database
    from imgcore._fetch import Fetcher, FetchOptions
    from imgcore.config import Config, ConfigError
    from imgcore.engine import Engine
    from imgcore.errors import (
        FetchError,
        ImageNotFoundError,
        ImgcoreError,
        OutOfRangeError,
        RequestNotFoundError,
        RequestStateError,
        StorageError,
        TooManyImagesError,
        UnknownPresetError,
        WebhookURLError,
    )
    from imgcore.hookspecs import hookimpl
    from imgcore.models import ImageInfo, ProductInfo, RequestInfo
    from imgcore.presets import Preset, Variant
    from imgcore.states import ImageStatus, RequestStatus

_EXPORTS = {
    "CompressOptions": "imgcore._compress",
    "CompressedImage": "imgcore._compress",
    "ImageError": "imgcore._compress",
    "compress": "imgcore._compress",
    "limit_malloc_arenas": "imgcore._compression.tuning",
    "Config": "imgcore.config",
    "ConfigError": "imgcore.config",
    "CsvIssue": "imgcore._csvio",
    "CsvLimits": "imgcore._csvio",
    "CsvValidationError": "imgcore._csvio",
    "Database": "imgcore._db.database",
    "Engine": "imgcore.engine",
    "ImageNotFoundError": "imgcore.errors",
    "RequestNotFoundError": "imgcore.errors",
    "RequestStateError": "imgcore.errors",
    "ImgcoreError": "imgcore.errors",
    "OutOfRangeError": "imgcore.errors",
    "StorageError": "imgcore.errors",
    "TooManyImagesError": "imgcore.errors",
    "FetchError": "imgcore.errors",
    "WebhookURLError": "imgcore.errors",
    "UnknownPresetError": "imgcore.errors",
    "Preset": "imgcore.presets",
    "Variant": "imgcore.presets",
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
    "OutOfRangeError",
    "Preset",
    "ProductInfo",
    "RequestInfo",
    "RequestNotFoundError",
    "RequestStateError",
    "RequestStatus",
    "StorageError",
    "TooManyImagesError",
    "UnknownPresetError",
    "Variant",
    "WebhookURLError",
    "__version__",
    "compress",
    "hookimpl",
    "limit_malloc_arenas",
]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'imgcore' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
