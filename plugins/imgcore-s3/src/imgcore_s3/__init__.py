"""imgcore-s3: imgcore storage on object stores (S3 and compatibles, GCS, Azure) via obstore."""

from __future__ import annotations

from imgcore_s3.storage import CACHE_CONTROL, SCHEMES, ObjectStorage, S3Settings

__all__ = ["CACHE_CONTROL", "SCHEMES", "ObjectStorage", "S3Settings"]
