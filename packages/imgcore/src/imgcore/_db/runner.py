"""Run a transaction's statements in as few round trips as the driver allows."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from typing import TypeVar

import anyio
import anyio.to_thread
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from imgcore._db.connect import READ_ONLY, reader, sqlite_file_engine
from imgcore._db.session import connection, transaction

__all__ = ["Runner"]

T = TypeVar("T")

# Concurrent SQLite reads on worker threads: WAL readers do not block each other, and more
# threads than this only queue for the GIL.
SQLITE_READ_THREADS = 4
_LOCKED = frozenset({sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED})


class Runner:
    """Runs a function of a synchronous connection inside one transaction.

    On SQLite files the whole function runs in one worker thread on a synchronous connection:
    one thread hop, where aiosqlite makes several per statement (each costing far more than
    the statement). Writes go through one thread, since SQLite has one writer at a time and
    queueing here is cheaper than waiting on the file lock. A short read runs on the event
    loop itself: even one hop, with the GIL passed back and forth while the loop is busy,
    costs more than a read of a few rows (a status poll: 2.5 ms of CPU through a thread,
    1.05 ms without). Elsewhere the function runs on the async engine through ``run_sync``
    (asyncpg and asyncmy have no threads to hop). Either way the function cannot be
    cancelled half-way: a cancellation takes effect once the transaction has ended.
    """

    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine
        self._reader = reader(engine)
        self._sync = sqlite_file_engine(engine.url)
        # Never waits for a lock: the event loop must not stall behind one.
        self._short = sqlite_file_engine(engine.url, busy_timeout_ms=0)
        self._reads = anyio.CapacityLimiter(SQLITE_READ_THREADS)
        self._writes = anyio.CapacityLimiter(1)

    async def read(self, fn: Callable[[sa.Connection], T], *, short: bool = False) -> T:
        """``fn(connection)`` in a read-only transaction (one consistent snapshot).

        ``short``: ``fn`` reads a few rows, a millisecond or so; on an SQLite file it then
        runs on the event loop, unless the file is locked (a crash being recovered, a
        connection holding it exclusively): then it runs again in a thread that waits for
        the lock. So ``fn`` may run twice, and must do nothing but read.
        """
        if self._sync is None:
            async with connection(self._reader) as conn, conn.begin():
                return await conn.run_sync(fn)
        if short and self._short is not None:
            try:
                return self._read_on(self._short, fn)
            except sa.exc.OperationalError as exc:
                if not _is_busy(exc):
                    raise
        return await anyio.to_thread.run_sync(self._read_on, self._sync, fn, limiter=self._reads)

    async def write(self, fn: Callable[[sa.Connection], T]) -> T:
        """``fn(connection)`` in a transaction, committed if it returns (rolled back if not)."""
        if self._sync is None:
            async with transaction(self._engine) as conn:
                return await conn.run_sync(fn)
        # Shielded like transaction(): even a cancelled caller (a shutdown returning its
        # images) gets its transaction run to the end.
        with anyio.CancelScope(shield=True):
            result = await anyio.to_thread.run_sync(self._write_here, fn, limiter=self._writes)
        return result

    @staticmethod
    def _read_on(engine: sa.Engine, fn: Callable[[sa.Connection], T]) -> T:
        with engine.connect().execution_options(**{READ_ONLY: True}) as conn, conn.begin():
            return fn(conn)

    def _write_here(self, fn: Callable[[sa.Connection], T]) -> T:
        assert self._sync is not None
        with self._sync.begin() as conn:
            return fn(conn)

    def dispose(self) -> None:
        """Close the synchronous engines' connections."""
        for engine in (self._sync, self._short):
            if engine is not None:
                engine.dispose()


def _is_busy(exc: sa.exc.OperationalError) -> bool:
    """True if SQLite refused because the file is locked (SQLITE_BUSY, SQLITE_LOCKED)."""
    if not isinstance(exc.orig, sqlite3.Error):
        return False
    # Extended codes (SQLITE_BUSY_RECOVERY…) carry the primary code in their low byte.
    return (exc.orig.sqlite_errorcode & 0xFF) in _LOCKED
