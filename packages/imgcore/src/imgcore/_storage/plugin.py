"""Registers the filesystem backend for ``file:`` storage URLs."""

from __future__ import annotations

from urllib.parse import urlsplit

from imgcore._storage.filesystem import FileStorage
from imgcore.config import Config
from imgcore.contracts import Storage
from imgcore.hookspecs import hookimpl


@hookimpl
def imgcore_storage(url: str, config: Config) -> Storage | None:
    """``file:DIR`` → :class:`FileStorage` serving URLs under ``IMGCORE_PUBLIC_URL``."""
    if urlsplit(url).scheme != "file":
        return None
    return FileStorage.from_url(url, config.public_url)
