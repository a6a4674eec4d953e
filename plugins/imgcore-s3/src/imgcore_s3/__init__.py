"""imgcore-s3: imgcore storage on object stores (S3 and compatibles, GCS, Azure) via obstore."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from imgcore_s3.schemes import SCHEMES

if TYPE_CHECKING:
    from imgcore_s3.storage import CACHE_CONTROL, ObjectStorage, S3Settings

__all__ = ["CACHE_CONTROL", "SCHEMES", "ObjectStorage", "S3Settings"]


if not TYPE_CHECKING:  # type checkers see the names imported above, not Any

    def __getattr__(name: str) -> Any:
        # obstore loads on first use: every imgcore process loads this plugin to ask whether
        # its storage URL is an object store's.
        if name in ("CACHE_CONTROL", "ObjectStorage", "S3Settings"):
            from imgcore_s3 import storage

            return getattr(storage, name)
        raise AttributeError(f"module 'imgcore_s3' has no attribute {name!r}")
