"""Run read-only queries in as few round trips as the driver allows."""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

import anyio
import anyio.to_thread
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from imgcore.db.connect import READ_ONLY, reader, sqlite_file_reader
from imgcore.db.session import connection

__all__ = ["Reader"]

T = TypeVar("T")

# Concurrent SQLite reads on worker threads: WAL readers do not block each other, and more
# threads than this only queue for the GIL.
SQLITE_READ_THREADS = 4


class Reader:
    """Runs a function of a synchronous connection inside one read-only transaction.

    On SQLite files the whole function runs in one worker thread on a synchronous connection
    (one thread hop instead of several per statement); elsewhere it runs on the async engine
    through ``run_sync`` (asyncpg and asyncmy have no threads to hop). Either way the
    function sees one consistent snapshot and cannot be cancelled half-way.
    """

    def __init__(self, engine: AsyncEngine) -> None:
        self._async = reader(engine)
        self._sync = sqlite_file_reader(engine.url)
        self._limiter = anyio.CapacityLimiter(SQLITE_READ_THREADS)

    async def run(self, fn: Callable[[sa.Connection], T]) -> T:
        """``fn(connection)`` in a read-only transaction."""
        if self._sync is None:
            async with connection(self._async) as conn, conn.begin():
                return await conn.run_sync(fn)
        return await anyio.to_thread.run_sync(self._run_here, fn, limiter=self._limiter)

    def _run_here(self, fn: Callable[[sa.Connection], T]) -> T:
        assert self._sync is not None
        with self._sync.connect().execution_options(**{READ_ONLY: True}) as conn, conn.begin():
            return fn(conn)

    def dispose(self) -> None:
        """Close the synchronous engine's connections."""
        if self._sync is not None:
            self._sync.dispose()
