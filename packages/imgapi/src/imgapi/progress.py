"""Live progress for ``GET /status/{id}/events``: one poller per process feeds every stream.

A stream watches one request: it holds a reference to a small :class:`Watch` shared by every
stream of that request and waits on its event, so an idle stream costs a parked coroutine and
no database work. While any request is watched, the poller reads all watched requests in one
query every ``interval`` seconds and wakes the watches whose counts or status changed.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from uuid import UUID

import anyio
from imgcore.engine import Engine
from imgcore.models import RequestInfo

__all__ = ["ProgressHub", "Watch", "progress_key"]

log = logging.getLogger("imgapi.progress")


def progress_key(info: RequestInfo) -> tuple[str, int, int]:
    """What a progress event reports: a change in any of these is a new event."""
    return info.status.value, info.done, info.failed


class Watch:
    """The latest state of one watched request, and an event set when it changes."""

    __slots__ = ("changed", "info", "streams", "version")

    def __init__(self, info: RequestInfo) -> None:
        self.info = info
        self.version = 0
        self.changed = anyio.Event()
        self.streams = 0

    def update(self, info: RequestInfo) -> None:
        """Record a newer state and wake the streams when what they report changed."""
        if progress_key(info) == progress_key(self.info):
            return
        self.info = info
        self.version += 1
        changed, self.changed = self.changed, anyio.Event()
        changed.set()


class ProgressHub:
    """Every watched request of this process, and the one poller that refreshes them."""

    def __init__(self, interval: float = 0.25) -> None:
        self.interval = interval
        self._watches: dict[UUID, Watch] = {}
        self._wanted = anyio.Event()

    @contextmanager
    def watch(self, info: RequestInfo) -> Iterator[Watch]:
        """Watch ``info``'s request for the duration of the block."""
        watch = self._watches.get(info.request_id)
        if watch is None:
            watch = self._watches[info.request_id] = Watch(info)
            self._wanted.set()
        watch.streams += 1
        try:
            yield watch
        finally:
            watch.streams -= 1
            if watch.streams == 0:
                del self._watches[info.request_id]

    @property
    def watched(self) -> int:
        """How many requests are watched now."""
        return len(self._watches)

    async def run(self, engine: Engine) -> None:
        """Poll the watched requests until cancelled; sleeps while none is watched."""
        while True:
            if not self._watches:
                self._wanted = anyio.Event()
                await self._wanted.wait()
            await anyio.sleep(self.interval)
            ids = list(self._watches)
            if not ids:
                continue
            try:
                found = await engine.statuses(ids)
            except Exception:
                # A database hiccup: the streams wait for the next round.
                log.warning("could not read the progress of watched requests", exc_info=True)
                continue
            for request_id, info in found.items():
                watch = self._watches.get(request_id)
                if watch is not None:
                    watch.update(info)
