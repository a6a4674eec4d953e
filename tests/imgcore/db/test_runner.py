"""imgcore._db.runner.Runner: whole transactions in one call, on every backend."""

from __future__ import annotations

import sqlite3
import threading
import time
from pathlib import Path
from uuid import uuid4

import anyio
import pytest
import sqlalchemy as sa
from imgcore._db import create_engine, repo
from imgcore._db.runner import Runner
from imgcore._db.tables import requests
from imgcore.models import RequestInfo
from sqlalchemy.ext.asyncio import AsyncEngine

from .conftest import NOW, Submit

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


@pytest.mark.parametrize("short", [False, True], ids=["read", "short read"])
async def test_a_failed_read_is_rolled_back(
    engine: AsyncEngine, submit: Submit, short: bool
) -> None:
    request_id = await submit([1])
    reads = Runner(engine)

    def write(conn: sa.Connection) -> None:
        conn.execute(requests.delete())
        raise RuntimeError("rolled back")

    try:
        with pytest.raises(RuntimeError, match="rolled back"):
            await reads.read(write, short=short)
        # The failed read's transaction was rolled back, not committed.
        read_again = await reads.read(lambda conn: repo.read_request(conn, request_id), short=short)
        assert read_again is not None
    finally:
        reads.dispose()


@pytest.mark.parametrize("short", [False, True], ids=["read: a thread", "short read: the loop"])
async def test_sqlite_file_reads_run_in_a_thread_unless_short(tmp_path: Path, short: bool) -> None:
    # One thread hop per read, not several per statement (aiosqlite); none for a short read,
    # since a trip to a thread and back costs more than reading a few rows.
    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path}/reads.sqlite3")
    reads = Runner(engine)
    try:
        async with engine.begin() as conn:
            await conn.run_sync(requests.metadata.create_all)
        used = await reads.read(lambda _conn: threading.get_ident(), short=short)
        assert (used == threading.get_ident()) is short
    finally:
        reads.dispose()
        await engine.dispose()


async def test_a_short_read_of_a_locked_file_waits_in_a_thread(tmp_path: Path) -> None:
    # A connection in exclusive locking mode keeps every reader out, even in WAL mode, as a
    # crash recovery does: the event loop must go on meanwhile, and the read must still end.
    path = tmp_path / "locked.sqlite3"
    engine = create_engine(f"sqlite+aiosqlite:///{path}")
    request_id = uuid4()
    async with engine.begin() as conn:
        await conn.run_sync(requests.metadata.create_all)
        await conn.execute(
            requests.insert().values(
                id=request_id,
                status="Pending",
                header={},
                total_products=1,
                total_images=1,
                created_at=NOW,
                updated_at=NOW,
            )
        )
    await engine.dispose()
    holder = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    holder.execute("PRAGMA locking_mode=EXCLUSIVE")
    holder.execute("UPDATE requests SET error = 'held'")  # takes the lock, and keeps it
    reads = Runner(engine)
    threads: list[int] = []
    ticks = 0
    # The lock goes a little later, as another process would let it go.
    release = threading.Thread(target=lambda: (time.sleep(0.3), holder.close()))

    def read(conn: sa.Connection) -> RequestInfo | None:
        threads.append(threading.get_ident())
        return repo.read_request(conn, request_id)

    async def tick() -> None:
        nonlocal ticks
        while True:
            ticks += 1
            await anyio.sleep(0.01)

    try:
        with anyio.fail_after(10):
            async with anyio.create_task_group() as tg:
                tg.start_soon(tick)
                await anyio.sleep(0)
                release.start()
                info = await reads.read(read, short=True)
                tg.cancel_scope.cancel()
    finally:
        release.join()
        reads.dispose()
        await engine.dispose()

    assert info is not None and info.error == "held"
    assert ticks >= 10  # the loop ran while the lock was held
    assert threads[-1] != threading.get_ident()  # the read that got through: in a thread


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
