"""Whether the storage can be written: a small object put and deleted, the outcome shared."""

from __future__ import annotations

import time
import uuid

import anyio

from imgcore.contracts import Storage
from imgcore.errors import StorageError

__all__ = ["PROBE_PREFIX", "StorageProbe"]

PROBE_PREFIX = "_probe/"
"""Storage keys under this prefix are probes, never images."""


class StorageProbe:
    """Probes one storage under a key of its own; concurrent checks share one probe."""

    def __init__(self, storage: Storage) -> None:
        self.storage = storage
        self._key = f"{PROBE_PREFIX}{uuid.uuid4().hex}"
        self._lock = anyio.Lock()
        self._probed_at = -float("inf")
        self._error: StorageError | None = None

    async def check(self, *, max_age: float, probe_seconds: float) -> None:
        """Raise :class:`StorageError` unless the last probe (at most ``max_age`` s old)
        succeeded; a probe taking longer than ``probe_seconds`` fails."""
        async with self._lock:
            if time.monotonic() - self._probed_at >= max_age:
                self._error = await self._probe(probe_seconds)
                self._probed_at = time.monotonic()
            error = self._error
        if error is not None:
            raise StorageError(error.message, transient=error.transient)

    async def _probe(self, seconds: float) -> StorageError | None:
        try:
            with anyio.fail_after(seconds):
                await self.storage.put(self._key, b"ok", content_type="text/plain")
                await self.storage.delete(self._key)
        except TimeoutError:
            return StorageError(f"the storage did not answer within {seconds} s")
        except StorageError as exc:
            return exc
        except Exception as exc:
            # Whatever a storage plugin raises means the same here: images cannot be stored.
            return StorageError(f"the storage failed: {exc!r}")
        return None
