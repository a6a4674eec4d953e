"""imgcore._db.Database: whole transactions in one call, on every backend."""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from uuid import uuid4

import anyio
import pytest
import sqlalchemy as sa
from imgcore._db import requests as requests_db
from imgcore._db.database import Database, create_engine
from imgcore._db.tables import requests
from imgcore.models import RequestInfo
from sqlalchemy.ext.asyncio import AsyncEngine

from .conftest import NOW, Submit

pytestmark = pytest.mark.anyio


async def test_a_read_sees_what_was_committed(engine: AsyncEngine, submit: Submit) -> None:
    request_id = await submit([2, 1])
    reads = Database(engine.url)
    try:
        info, page = await reads.read(
            lambda conn: (
                requests_db.read_request(conn, request_id),
                requests_db.read_product_page(conn, request_id, start=0, limit=10),
            )
        )
    finally:
        await reads.dispose()

    assert info is not None and info.request_id == request_id
    assert [len(product.images) for product in page] == [2, 1]


@pytest.mark.parametrize("short", [False, True], ids=["read", "short read"])
async def test_a_failed_read_is_rolled_back(
    engine: AsyncEngine, submit: Submit, short: bool
) -> None:
    request_id = await submit([1])
    reads = Database(engine.url)

    def write(conn: sa.Connection) -> None:
        conn.execute(requests.delete())
        raise RuntimeError("rolled back")

    try:
        with pytest.raises(RuntimeError, match="rolled back"):
            await reads.read(write, short=short)
        # The failed read's transaction was rolled back, not committed.
        read_again = await reads.read(
            lambda conn: requests_db.read_request(conn, request_id), short=short
        )
        assert read_again is not None
    finally:
        await reads.dispose()


@pytest.mark.parametrize("short", [False, True], ids=["read: a thread", "short read: the loop"])
async def test_sqlite_file_reads_run_in_a_thread_unless_short(tmp_path: Path, short: bool) -> None:
    # One thread hop per read, not several per statement (aiosqlite); none for a short read,
    # since a trip to a thread and back costs more than reading a few rows.
    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path}/reads.sqlite3")
    reads = Database(engine.url)
    try:
        async with engine.begin() as conn:
            await conn.run_sync(requests.metadata.create_all)
        used = await reads.read(lambda _conn: threading.get_ident(), short=short)
        assert (used == threading.get_ident()) is short
    finally:
        await reads.dispose()
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
    reads = Database(engine.url)
    threads: list[int] = []
    ticks = 0
    # The lock goes a little later, as another process would let it go.
    release = threading.Thread(target=lambda: (time.sleep(0.3), holder.close()))

    def read(conn: sa.Connection) -> RequestInfo | None:
        threads.append(threading.get_ident())
        return requests_db.read_request(conn, request_id)

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
        await reads.dispose()
        await engine.dispose()

    assert info is not None and info.error == "held"
    assert ticks >= 10  # the loop ran while the lock was held
    assert threads[-1] != threading.get_ident()  # the read that got through: in a thread


async def test_in_memory_sqlite_is_read_through_the_async_engine() -> None:
    # A second engine on ":memory:" would open another, empty database.
    reads = Database("sqlite+aiosqlite://")
    try:
        await reads.write(requests.metadata.create_all)
        assert await reads.read(lambda conn: requests_db.read_request(conn, uuid4())) is None
    finally:
        await reads.dispose()


async def test_a_write_commits_when_it_returns(engine: AsyncEngine, submit: Submit) -> None:
    request_id = await submit([1])
    database = Database(engine.url)
    noted = requests.update().where(requests.c.id == request_id).values(error="noted")
    try:
        assert await database.write(lambda conn: conn.execute(noted).rowcount) == 1
        info = await database.read(lambda conn: requests_db.read_request(conn, request_id))
    finally:
        await database.dispose()

    assert info is not None and info.error == "noted"


async def test_a_write_rolls_back_when_it_raises(engine: AsyncEngine, submit: Submit) -> None:
    request_id = await submit([1])
    database = Database(engine.url)

    def half_done(conn: sa.Connection) -> None:
        conn.execute(requests.update().where(requests.c.id == request_id).values(error="half"))
        raise RuntimeError("rolled back")

    try:
        with pytest.raises(RuntimeError, match="rolled back"):
            await database.write(half_done)
        info = await database.read(lambda conn: requests_db.read_request(conn, request_id))
    finally:
        await database.dispose()

    assert info is not None and info.error is None


async def test_sqlite_file_writes_run_one_at_a_time_off_the_event_loop(tmp_path: Path) -> None:
    # One writer thread: SQLite takes one writer anyway, and waiting on its file lock costs
    # busy-timeout sleeps that queueing here does not.
    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path}/writes.sqlite3")
    database = Database(engine.url)
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
                tg.start_soon(database.write, write)
    finally:
        await database.dispose()
        await engine.dispose()

    assert most == 1
    assert here not in threads


async def test_a_cancelled_caller_still_gets_its_write_done(
    engine: AsyncEngine, submit: Submit
) -> None:
    # A shutdown returns its unfinished images from inside a cancelled task.
    request_id = await submit([1])
    database = Database(engine.url)
    noted = requests.update().where(requests.c.id == request_id).values(error="at shutdown")
    try:
        with anyio.CancelScope() as scope:
            scope.cancel()
            await database.write(lambda conn: conn.execute(noted))
        info = await database.read(lambda conn: requests_db.read_request(conn, request_id))
    finally:
        await database.dispose()

    assert info is not None and info.error == "at shutdown"


async def test_a_streamed_write_inserts_every_item_in_one_transaction(
    engine: AsyncEngine, submit: Submit
) -> None:
    request_id = await submit([1])
    database = Database(engine.url)
    seen: list[str] = []

    async def notes() -> AsyncIterator[str]:
        for note in ("first", "second", "third"):
            await anyio.sleep(0)
            yield note

    def write(conn: sa.Connection, items: Iterator[str]) -> int:
        for note in items:
            seen.append(note)
            conn.execute(requests.update().where(requests.c.id == request_id).values(error=note))
        return len(seen)

    try:
        assert await database.write_stream(write, notes()) == 3
        info = await database.read(lambda conn: requests_db.read_request(conn, request_id))
    finally:
        await database.dispose()

    assert seen == ["first", "second", "third"]
    assert info is not None and info.error == "third"


async def test_a_streamed_write_stores_nothing_when_its_source_fails(
    engine: AsyncEngine, submit: Submit
) -> None:
    request_id = await submit([1])
    database = Database(engine.url)

    async def notes() -> AsyncIterator[str]:
        yield "half"
        raise RuntimeError("the source broke")

    def write(conn: sa.Connection, items: Iterator[str]) -> None:
        for note in items:
            conn.execute(requests.update().where(requests.c.id == request_id).values(error=note))

    try:
        with pytest.raises(RuntimeError, match="the source broke"):
            await database.write_stream(write, notes())
        info = await database.read(lambda conn: requests_db.read_request(conn, request_id))
    finally:
        await database.dispose()

    assert info is not None and info.error is None


@pytest.mark.parametrize("short", [False, True], ids=["read", "short read"])
async def test_sqlite_reads_and_pings_do_not_wait_for_the_write_lock(
    tmp_path: Path, short: bool
) -> None:
    # Another process writing (holding SQLite's write lock) must not delay readers.
    path = tmp_path / "busy.sqlite3"
    database = Database(f"sqlite+aiosqlite:///{path}")
    await database.write(requests.metadata.create_all)
    holder = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    try:
        holder.execute("BEGIN IMMEDIATE")  # the write lock, held until the end of the test
        with anyio.fail_after(10):
            await database.ping()
            found = await database.read(
                lambda conn: requests_db.read_request(conn, uuid4()), short=short
            )
        assert holder.in_transaction  # still held: the read did not wait for it
    finally:
        holder.close()
        await database.dispose()

    assert found is None
