"""``memory://NAME``: images kept in this process's memory, for tests and demos."""

from __future__ import annotations

from typing import ClassVar
from urllib.parse import quote

from imgcore.plugin import StorageError, safe_key

__all__ = ["MemoryStorage"]


class MemoryStorage:
    """A named, process-wide dict of objects; URLs are ``memory://NAME/key``.

    Every storage opened with the same name shares its objects (an Engine closed and opened
    again finds its images), and nothing outlives the process. The URLs name the object but
    no server serves them: use this store where nobody downloads the results, such as the
    tests of an application that embeds imgcore.
    """

    _stores: ClassVar[dict[str, dict[str, tuple[bytes, str]]]] = {}

    def __init__(self, name: str) -> None:
        if not name or "/" in name:
            raise StorageError(f"invalid memory store name: {name!r}", transient=False)
        self.name = name
        self.objects = self._stores.setdefault(name, {})

    @classmethod
    def from_url(cls, url: str) -> MemoryStorage:
        """``memory://NAME`` (a path after the name is not allowed)."""
        name = url.removeprefix("memory://").rstrip("/")
        return cls(name)

    @classmethod
    def forget(cls, name: str) -> None:
        """Drop the store called ``name`` and its objects."""
        cls._stores.pop(name, None)

    async def put(self, key: str, data: bytes, *, content_type: str) -> None:
        """Keep ``data`` (one dict assignment: atomic, and replaces what was there)."""
        safe_key(key)
        self.objects[key] = (bytes(data), content_type)

    async def get(self, key: str) -> bytes:
        """The bytes under ``key``; ``KeyError`` when there are none."""
        return self.objects[str(safe_key(key))][0]

    def content_type(self, key: str) -> str:
        """The media type ``key`` was stored with; ``KeyError`` when there is none."""
        return self.objects[str(safe_key(key))][1]

    async def delete(self, key: str) -> None:
        """Forget ``key``; a missing key is not an error."""
        self.objects.pop(str(safe_key(key)), None)

    def url_for(self, key: str) -> str:
        """``memory://NAME/key``."""
        safe_key(key)
        return f"memory://{self.name}/{quote(key)}"

    async def aclose(self) -> None:
        """Nothing to release (the objects stay for the next storage of this name)."""
