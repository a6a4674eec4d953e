"""One Database used from two event loops at once (a test client's portal, a synchronous
framework's thread): writes stay one at a time and never wait on the other loop."""

from __future__ import annotations

from pathlib import Path

import anyio
import anyio.from_thread
import anyio.to_thread
import pytest
import sqlalchemy as sa
from imgcore._db.database import Database

pytestmark = pytest.mark.anyio


async def busy_writes(database: Database, tasks: int, each: int) -> int:
    done = 0

    async def writer() -> None:
        nonlocal done
        for _ in range(each):
            await database.write(lambda conn: conn.execute(sa.text("SELECT 1")).scalar())
            done += 1

    async with anyio.create_task_group() as tg:
        for _ in range(tasks):
            tg.start_soon(writer)
    return done


async def test_writes_from_two_event_loops_at_once_all_complete(tmp_path: Path) -> None:
    database = Database(f"sqlite:///{tmp_path}/db.sqlite3")
    try:
        with anyio.from_thread.start_blocking_portal() as portal:
            other = portal.start_task_soon(busy_writes, database, 4, 100)
            with anyio.fail_after(60):
                assert await busy_writes(database, 4, 100) == 400
                assert await anyio.to_thread.run_sync(other.result, 60) == 400
    finally:
        await database.dispose()
