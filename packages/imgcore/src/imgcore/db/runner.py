"""Run a transaction's statements in as few round trips as the driver allows."""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

import anyio
import anyio.to_thread
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from imgcore.db.connect import READ_ONLY, reader, sqlite_file_engine
from imgcore.db.session import connection, transaction

__all__ = ["Runner"]

T = TypeVar("T")

# Concurrent SQLite reads on worker threads: WAL readers do not block each other, and more
# threads than this only queue for the GIL.
SQLITE_READ_THREADS = 4


class Runner:
    """Runs a function of a synchronous connection inside one transaction.

    On SQLite files the whole function runs in one worker thread on a synchronous connection:
    one thread hop, where aiosqlite makes several per statement (each costing far more than
    the statement). Writes go through one thread, since SQLite has one writer at a time and
    queueing here is cheaper than waiting on the file lock. Elsewhere the function runs on
    the async engine through ``run_sync`` (asyncpg and asyncmy have no threads to hop).
    Either way the function cannot be cancelled half-way: a cancellation takes effect once
    the transaction has ended.
    """

    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine
        self._reader = reader(engine)
        self._sync = sqlite_file_engine(engine.url)
        self._reads = anyio.CapacityLimiter(SQLITE_READ_THREADS)
        self._writes = anyio.CapacityLimiter(1)

    async def read(self, fn: Callable[[sa.Connection], T]) -> T:
        """``fn(connection)`` in a read-only transaction (one consistent snapshot)."""
        if self._sync is None:
            async with connection(self._reader) as conn, conn.begin():
                return await conn.run_sync(fn)
        return await anyio.to_thread.run_sync(self._read_here, fn, limiter=self._reads)

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

    def _read_here(self, fn: Callable[[sa.Connection], T]) -> T:
        assert self._sync is not None
        with self._sync.connect().execution_options(**{READ_ONLY: True}) as conn, conn.begin():
            return fn(conn)

    def _write_here(self, fn: Callable[[sa.Connection], T]) -> T:
        assert self._sync is not None
        with self._sync.begin() as conn:
            return fn(conn)

    def dispose(self) -> None:
        """Close the synchronous engine's connections."""
        if self._sync is not None:
            self._sync.dispose()
