"""The storage seam: where compressed images go."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Protocol, runtime_checkable
from uuid import UUID

from imgcore.errors import ImgcoreError

__all__ = ["Storage", "StorageError", "image_key"]


def image_key(request_id: UUID, image_id: int, extension: str) -> str:
    """Where an image's objects live: ``requests/<request>/<image><extension>``, one fixed key
    per image and kind (output, thumbnail), so storing again replaces, never adds."""
    return f"requests/{request_id}/{image_id}{extension}"


class StorageError(ImgcoreError):
    """A storage operation failed (``transient`` when retrying may help)."""

    reason = "storage_error"

    def __init__(self, message: str, *, transient: bool = True) -> None:
        super().__init__(message)
        self.transient = transient


@runtime_checkable
class Storage(Protocol):
    """A place to put bytes under keys like ``requests/<id>/<image>.jpg``.

    Keys use ``/`` separators and never start with ``/`` or contain ``..``. ``put`` must be
    atomic (a reader sees the whole object or nothing) and idempotent (putting the same key
    again replaces it), which is what makes re-processing after a crash safe.
    """

    async def put(self, key: str, data: bytes, *, content_type: str) -> None:
        """Store ``data`` under ``key``, replacing what was there."""
        ...

    async def get(self, key: str) -> bytes:
        """The bytes under ``key``; raises ``KeyError`` when there are none."""
        ...

    async def delete(self, key: str) -> None:
        """Remove ``key``; a missing key is not an error."""
        ...

    def iter_keys(self, prefix: str = "") -> AsyncIterator[str]:
        """Every stored key starting with ``prefix``."""
        ...

    def url_for(self, key: str) -> str:
        """The URL a client fetches ``key`` from."""
        ...

    async def aclose(self) -> None:
        """Release connections and files."""
        ...
