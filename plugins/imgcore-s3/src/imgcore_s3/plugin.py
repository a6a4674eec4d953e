"""Registers :class:`~imgcore_s3.storage.ObjectStorage` for object-store storage URLs."""

from __future__ import annotations

import os
from urllib.parse import urlsplit

from imgcore.plugin import Config, Storage, hookimpl

from imgcore_s3.schemes import SCHEMES


@hookimpl
def imgcore_storage(url: str, config: Config) -> Storage | None:
    """``s3://``, ``gs://``, ``az://`` (and obstore's aliases) → :class:`ObjectStorage`.

    URLs come from ``IMGCORE_S3_PUBLIC_URL`` when set, else they are presigned for
    ``IMGCORE_S3_PRESIGN_SECONDS`` (``config.public_url`` is the API's media route, which
    does not serve object stores).
    """
    if urlsplit(url).scheme not in SCHEMES:
        return None
    # obstore loads only where an object store is used.
    from imgcore_s3.storage import ObjectStorage, S3Settings

    return ObjectStorage.from_url(url, S3Settings.from_env(os.environ))
