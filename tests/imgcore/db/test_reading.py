"""imgcore.db.reading.Reader: one read-only snapshot per call, on every backend."""

from __future__ import annotations

import threading
from pathlib import Path
from uuid import uuid4

import pytest
import sqlalchemy as sa
from imgcore.db import create_engine, repo
from imgcore.db.reading import Reader
from imgcore.db.tables import requests
from sqlalchemy.ext.asyncio import AsyncEngine

from .conftest import Submit

pytestmark = pytest.mark.anyio


async def test_a_read_sees_what_was_committed(engine: AsyncEngine, submit: Submit) -> None:
    request_id = await submit([2, 1])
    reads = Reader(engine)
    try:
        info, page = await reads.run(
            lambda conn: (
                repo.read_request(conn, request_id),
                repo.read_product_page(conn, request_id, start=0, limit=10),
            )
        )
    finally:
        reads.dispose()

    assert info is not None and info.request_id == request_id
    assert [len(product.images) for product in page] == [2, 1]


async def test_a_read_cannot_write(engine: AsyncEngine, submit: Submit) -> None:
    request_id = await submit([1])
    reads = Reader(engine)

    def write(conn: sa.Connection) -> None:
        conn.execute(requests.delete())
        raise RuntimeError("rolled back")

    try:
        with pytest.raises(RuntimeError, match="rolled back"):
            await reads.run(write)
        # The failed read's transaction was rolled back, not committed.
        assert await reads.run(lambda conn: repo.read_request(conn, request_id)) is not None
    finally:
        reads.dispose()


async def test_sqlite_files_are_read_on_a_worker_thread(tmp_path: Path) -> None:
    # The point of the synchronous path: one thread hop per read, not several per statement.
    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path}/reads.sqlite3")
    reads = Reader(engine)
    try:
        async with engine.begin() as conn:
            await conn.run_sync(requests.metadata.create_all)
        here = threading.get_ident()
        used = await reads.run(lambda _conn: threading.get_ident())
        assert used != here
    finally:
        reads.dispose()
        await engine.dispose()


async def test_in_memory_sqlite_is_read_through_the_async_engine() -> None:
    # A second engine on ":memory:" would open another, empty database.
    engine = create_engine("sqlite+aiosqlite://")
    reads = Reader(engine)
    try:
        async with engine.begin() as conn:
            await conn.run_sync(requests.metadata.create_all)
        assert await reads.run(lambda conn: repo.read_request(conn, uuid4())) is None
    finally:
        reads.dispose()
        await engine.dispose()
