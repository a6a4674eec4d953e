"""Transactions that a cancellation cannot cut in half.

Cancelling a query in flight leaves an aiosqlite connection checked out inside a transaction
(the next writer then waits out the busy timeout) and SQLAlchemy's close of it hanging. The
database work imgcore does in its loops is short, so it runs shielded: a cancellation takes
effect when the transaction has ended.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import anyio
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

__all__ = ["connection", "transaction"]


@asynccontextmanager
async def transaction(engine: AsyncEngine) -> AsyncIterator[AsyncConnection]:
    """A shielded ``engine.begin()``: committed on success, rolled back on error."""
    with anyio.CancelScope(shield=True):
        async with engine.begin() as conn:
            yield conn


@asynccontextmanager
async def connection(engine: AsyncEngine) -> AsyncIterator[AsyncConnection]:
    """A shielded ``engine.connect()`` for reads."""
    with anyio.CancelScope(shield=True):
        async with engine.connect() as conn:
            yield conn
