"""Group commit: writes that arrive while one is in flight run together, in one transaction.

Short writes (an image that reuses an earlier import's outputs ends in a few statements)
cost more in their transaction — the thread hop, BEGIN, COMMIT — than in their statements;
under load they queue anyway, so the next transaction takes every one that queued.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Generic, TypeVar

import anyio
import sqlalchemy as sa

from imgcore._db.database import Database

__all__ = ["GroupCommit"]

T = TypeVar("T")


class _Entry(Generic[T]):
    __slots__ = ("done", "error", "fn", "result")

    def __init__(self, fn: Callable[[sa.Connection], T]) -> None:
        self.fn = fn
        self.done = False
        self.result: T | None = None
        self.error: BaseException | None = None


class GroupCommit:
    """Runs each function given to :meth:`write` in a write transaction of ``database``,
    several in one when they arrive while another transaction runs."""

    def __init__(self, database: Database) -> None:
        self._database = database
        self._queue: list[_Entry[Any]] = []
        self._lock = anyio.Lock()

    async def write(self, fn: Callable[[sa.Connection], T]) -> T:
        """``fn(connection)``'s result once its transaction has committed (its exception if
        it raised). Not cancellable once queued: the write happens, so its caller sees it.

        Only on an embedded SQLite database, whose writes queue for one writer anyway; a
        server database runs each write in its own transaction, so that no transaction holds
        the locks of several requests at once (one order of locks, no deadlocks)."""
        if not self._database.embedded:
            return await self._database.write(fn)
        entry: _Entry[T] = _Entry(fn)
        self._queue.append(entry)
        with anyio.CancelScope(shield=True):
            async with self._lock:
                if not entry.done:
                    batch, self._queue = self._queue, []
                    await self._flush(batch)
        if entry.error is not None:
            raise entry.error
        return entry.result  # type: ignore[return-value]  # set when no error

    async def _flush(self, batch: list[_Entry[Any]]) -> None:
        try:
            results = await self._database.write(lambda conn: [e.fn(conn) for e in batch])
        except BaseException as exc:
            if not isinstance(exc, Exception):
                # Leaving (KeyboardInterrupt, a cancel from outside): none of them happened.
                for entry in batch:
                    entry.error, entry.done = exc, True
                raise
            if len(batch) == 1:
                batch[0].error, batch[0].done = exc, True
                return
            # One of them failed and rolled the others back: each again on its own, so only
            # its own caller sees its error.
            for entry in batch:
                try:
                    entry.result = await self._database.write(entry.fn)
                except Exception as own:
                    entry.error = own
                entry.done = True
            return
        for entry, result in zip(batch, results, strict=True):
            entry.result, entry.done = result, True
