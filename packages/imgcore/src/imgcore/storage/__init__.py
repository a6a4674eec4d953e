"""Storage backends: the protocol and the built-in filesystem backend."""

from __future__ import annotations

from imgcore.storage.base import Storage, StorageError
from imgcore.storage.filesystem import FileStorage

__all__ = ["FileStorage", "Storage", "StorageError"]
