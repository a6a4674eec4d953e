"""imgcore.db.runner.Runner: whole transactions in one call, on every backend."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from uuid import uuid4

import anyio
import pytest
import sqlalchemy as sa
from imgcore.db import create_engine, repo
from imgcore.db.runner import Runner
from imgcore.db.tables import requests
from sqlalchemy.ext.asyncio import AsyncEngine

from .conftest import Submit

pytestmark = pytest.mark.anyio


async def test_a_read_sees_what_was_committed(engine: AsyncEngine, submit: Submit) -> None:
    request_id = await submit([2, 1])
    reads = Runner(engine)
    try:
        info, page = await reads.read(
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
    reads = Runner(engine)

    def write(conn: sa.Connection) -> None:
        conn.execute(requests.delete())
        raise RuntimeError("rolled back")

    try:
        with pytest.raises(RuntimeError, match="rolled back"):
            await reads.read(write)
        # The failed read's transaction was rolled back, not committed.
        assert await reads.read(lambda conn: repo.read_request(conn, request_id)) is not None
    finally:
        reads.dispose()


async def test_sqlite_files_are_read_on_a_worker_thread(tmp_path: Path) -> None:
    # The point of the synchronous path: one thread hop per read, not several per statement.
    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path}/reads.sqlite3")
    reads = Runner(engine)
    try:
        async with engine.begin() as conn:
            await conn.run_sync(requests.metadata.create_all)
        here = threading.get_ident()
        used = await reads.read(lambda _conn: threading.get_ident())
        assert used != here
    finally:
        reads.dispose()
        await engine.dispose()


async def test_in_memory_sqlite_is_read_through_the_async_engine() -> None:
    # A second engine on ":memory:" would open another, empty database.
    engine = create_engine("sqlite+aiosqlite://")
    reads = Runner(engine)
    try:
        async with engine.begin() as conn:
            await conn.run_sync(requests.metadata.create_all)
        assert await reads.read(lambda conn: repo.read_request(conn, uuid4())) is None
    finally:
        reads.dispose()
        await engine.dispose()


async def test_a_write_commits_when_it_returns(engine: AsyncEngine, submit: Submit) -> None:
    request_id = await submit([1])
    runner = Runner(engine)
    noted = requests.update().where(requests.c.id == request_id).values(error="noted")
    try:
        assert await runner.write(lambda conn: conn.execute(noted).rowcount) == 1
        info = await runner.read(lambda conn: repo.read_request(conn, request_id))
    finally:
        runner.dispose()

    assert info is not None and info.error == "noted"


async def test_a_write_rolls_back_when_it_raises(engine: AsyncEngine, submit: Submit) -> None:
    request_id = await submit([1])
    runner = Runner(engine)

    def half_done(conn: sa.Connection) -> None:
        conn.execute(requests.update().where(requests.c.id == request_id).values(error="half"))
        raise RuntimeError("rolled back")

    try:
        with pytest.raises(RuntimeError, match="rolled back"):
            await runner.write(half_done)
        info = await runner.read(lambda conn: repo.read_request(conn, request_id))
    finally:
        runner.dispose()

    assert info is not None and info.error is None


async def test_sqlite_file_writes_run_one_at_a_time_off_the_event_loop(tmp_path: Path) -> None:
    # One writer thread: SQLite takes one writer anyway, and waiting on its file lock costs
    # busy-timeout sleeps that queueing here does not.
    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path}/writes.sqlite3")
    runner = Runner(engine)
    here = threading.get_ident()
    running, most, threads = 0, 0, set()
    lock = threading.Lock()

    def write(_conn: sa.Connection) -> None:
        nonlocal running, most
        with lock:
            running += 1
            most = max(most, running)
            threads.add(threading.get_ident())
        time.sleep(0.01)
        with lock:
            running -= 1

    try:
        async with engine.begin() as conn:
            await conn.run_sync(requests.metadata.create_all)
        async with anyio.create_task_group() as tg:
            for _ in range(6):
                tg.start_soon(runner.write, write)
    finally:
        runner.dispose()
        await engine.dispose()

    assert most == 1
    assert here not in threads


async def test_a_cancelled_caller_still_gets_its_write_done(
    engine: AsyncEngine, submit: Submit
) -> None:
    # A shutdown returns its unfinished images from inside a cancelled task.
    request_id = await submit([1])
    runner = Runner(engine)
    noted = requests.update().where(requests.c.id == request_id).values(error="at shutdown")
    try:
        with anyio.CancelScope() as scope:
            scope.cancel()
            await runner.write(lambda conn: conn.execute(noted))
        info = await runner.read(lambda conn: repo.read_request(conn, request_id))
    finally:
        runner.dispose()

    assert info is not None and info.error == "at shutdown"
