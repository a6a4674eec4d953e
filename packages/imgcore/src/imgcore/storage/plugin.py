"""Registers the filesystem backend for ``file:`` storage URLs."""

from __future__ import annotations

from urllib.parse import urlsplit

from imgcore.config import Config
from imgcore.hookspecs import hookimpl
from imgcore.storage.base import Storage
from imgcore.storage.filesystem import FileStorage


@hookimpl
def imgcore_storage(url: str, config: Config) -> Storage | None:
    """``file:DIR`` → :class:`FileStorage` serving URLs under ``IMGCORE_PUBLIC_URL``."""
    if urlsplit(url).scheme != "file":
        return None
    return FileStorage.from_url(url, config.public_url)
