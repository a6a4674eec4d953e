"""Races between workers on real concurrent connections from two engines.

PostgreSQL and MariaDB/MySQL hold both transactions open at once (row locks and
``SKIP LOCKED`` decide); on SQLite two engines share one file and ``BEGIN IMMEDIATE``
serialises them.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import timedelta
from functools import partial
from uuid import UUID

import anyio
import pytest
import sqlalchemy as sa
from imgcore._db import images as images_db
from imgcore._db import requests as requests_db
from imgcore._db.database import create_engine
from imgcore._db.images import ImageResult
from imgcore._db.tables import images, requests
from imgcore.contracts import Claim, Settlement
from imgcore.states import ImageStatus, RequestStatus
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from .conftest import NOW, Submit, reader

pytestmark = pytest.mark.anyio

LEASE = timedelta(minutes=5)
SERVERS = pytest.mark.parametrize("database_url", ["postgresql", "mysql"], indirect=True)
SQLITE = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)

DONE = ImageResult(status=ImageStatus.DONE, storage_key="k", input_bytes=10, output_bytes=4)
FAILED = ImageResult(status=ImageStatus.FAILED, error_reason="http_status", error="HTTP 500")

Outcome = tuple[bool, Settlement | None]


@pytest.fixture
async def second_engine(database_url: str) -> AsyncIterator[AsyncEngine]:
    """Another engine (its own pool) on the same database, as a second worker process has."""
    engine = create_engine(database_url)
    try:
        yield engine
    finally:
        await engine.dispose()


class Barrier:
    """Lets ``parties`` tasks through together, once every one of them has arrived."""

    def __init__(self, parties: int) -> None:
        self.parties = parties
        self.arrived = 0
        self.released = anyio.Event()

    async def wait(self) -> None:
        self.arrived += 1
        if self.arrived == self.parties:
            self.released.set()
        await self.released.wait()


async def image_ids(engine: AsyncEngine, request_ids: list[UUID]) -> set[int]:
    async with reader(engine).connect() as conn:
        result = await conn.execute(
            sa.select(images.c.id).where(images.c.request_id.in_(request_ids))
        )
        return set(result.scalars())


async def claim_one(engine: AsyncEngine, owner: str) -> Claim:
    async with engine.begin() as conn:
        [claimed] = await conn.run_sync(
            images_db.claim_images, owner=owner, limit=1, lease=LEASE, now=NOW
        )
    return claimed


async def race(*finishers: Callable[[], Awaitable[Outcome]]) -> list[Outcome]:
    outcomes: list[Outcome] = []

    async def run(finisher: Callable[[], Awaitable[Outcome]]) -> None:
        outcomes.append(await finisher())

    with anyio.fail_after(30):
        async with anyio.create_task_group() as tg:
            for finisher in finishers:
                tg.start_soon(run, finisher)
    return outcomes


# -- claims ----------------------------------------------------------------------------------------


async def claim_until_empty(
    engine: AsyncEngine, owner: str, start: Barrier, taken: list[int]
) -> None:
    await start.wait()
    while True:
        async with engine.begin() as conn:
            claims = await conn.run_sync(
                images_db.claim_images, owner=owner, limit=7, lease=LEASE, now=NOW
            )
        if not claims:
            return
        taken.extend(c.id for c in claims)


async def test_racing_claimers_never_share_an_image_and_together_take_all(
    engine: AsyncEngine, second_engine: AsyncEngine, submit: Submit
) -> None:
    for _ in range(5):
        # 200 images over 10 requests, so claims also race on the request rows they update.
        request_ids = [await submit([4] * 5) for _ in range(10)]
        first: list[int] = []
        second: list[int] = []
        start = Barrier(2)

        with anyio.fail_after(30):
            async with anyio.create_task_group() as tg:
                tg.start_soon(claim_until_empty, engine, "a", start, first)
                tg.start_soon(claim_until_empty, second_engine, "b", start, second)

        assert not set(first) & set(second)
        assert len(first) + len(second) == 200
        assert set(first) | set(second) == await image_ids(engine, request_ids)


# -- settlement ------------------------------------------------------------------------------------


async def lock_step_finish(
    engine: AsyncEngine, claimed: Claim, owner: str, result: ImageResult, barrier: Barrier
) -> Outcome:
    """Open a transaction for real, wait for the other worker to do the same, then finish."""
    async with engine.begin() as conn:
        await peek(conn, claimed.request_id)
        await barrier.wait()
        return await conn.run_sync(
            images_db.finish_image, claimed, owner=owner, result=result, now=NOW
        )


async def queued_finish(
    engine: AsyncEngine, claimed: Claim, owner: str, result: ImageResult, barrier: Barrier
) -> Outcome:
    """Wait for the other worker, then begin (SQLite: the second BEGIN IMMEDIATE queues)."""
    await barrier.wait()
    async with engine.begin() as conn:
        await peek(conn, claimed.request_id)
        return await conn.run_sync(
            images_db.finish_image, claimed, owner=owner, result=result, now=NOW
        )


async def peek(conn: AsyncConnection, request_id: UUID) -> None:
    # A plain read: it starts the transaction (and its snapshot) before the other one writes.
    await conn.execute(sa.select(requests.c.done_images).where(requests.c.id == request_id))


async def assert_settles_once_per_round(
    engine: AsyncEngine,
    second_engine: AsyncEngine,
    submit: Submit,
    finish: Callable[[AsyncEngine, Claim, str, ImageResult, Barrier], Awaitable[Outcome]],
    rounds: int,
) -> None:
    for round_ in range(rounds):
        # Vary the results so both terminal statuses are reached.
        results = [FAILED, FAILED, FAILED] if round_ % 3 == 0 else [DONE, FAILED, DONE]
        request_id = await submit([1, 1, 1])
        early = await claim_one(engine, "w0")
        late_a = await claim_one(engine, "wa")
        late_b = await claim_one(second_engine, "wb")
        async with engine.begin() as conn:
            await conn.run_sync(
                images_db.finish_image, early, owner="w0", result=results[0], now=NOW
            )
        barrier = Barrier(2)

        outcomes = await race(
            partial(finish, engine, late_a, "wa", results[1], barrier),
            partial(finish, second_engine, late_b, "wb", results[2], barrier),
        )

        assert [ended for ended, _ in outcomes] == [True, True]
        settlements = [s for _, s in outcomes if s is not None]
        assert len(settlements) == 1, f"round {round_}: {outcomes}"
        expected = RequestStatus.FAILED if round_ % 3 == 0 else RequestStatus.COMPLETED
        done = sum(r.status is ImageStatus.DONE for r in results)
        [settlement] = settlements
        assert (settlement.request_id, settlement.status) == (request_id, expected)
        assert (settlement.total, settlement.done, settlement.failed) == (3, done, 3 - done)
        async with reader(engine).connect() as conn:
            stored = await conn.run_sync(requests_db.read_request, request_id)
        assert stored is not None
        assert (stored.status, stored.done, stored.failed) == (expected, done, 3 - done)
        assert stored.input_bytes == 10 * done


@SERVERS
async def test_two_workers_finishing_the_last_images_together_settle_once(
    engine: AsyncEngine, second_engine: AsyncEngine, submit: Submit
) -> None:
    await assert_settles_once_per_round(engine, second_engine, submit, lock_step_finish, 20)


@SQLITE
async def test_two_engines_on_one_sqlite_file_settle_once(
    engine: AsyncEngine, second_engine: AsyncEngine, submit: Submit
) -> None:
    await assert_settles_once_per_round(engine, second_engine, submit, queued_finish, 20)


# -- retry against a finishing worker ----------------------------------------------------------


async def lock_waiters(engine: AsyncEngine) -> int:
    """How many statements on this database are blocked (on a row lock) right now."""
    if engine.dialect.name == "postgresql":
        sql = (
            "SELECT count(*) FROM pg_stat_activity"
            " WHERE datname = current_database() AND wait_event_type = 'Lock'"
        )
    else:
        # MariaDB lists a lock-waiting statement in innodb_trx only sometimes; every statement
        # of these tests is instant unless blocked, so a running one is a waiting one.
        sql = (
            "SELECT count(*) FROM information_schema.processlist"
            " WHERE db = DATABASE() AND command = 'Query' AND id <> CONNECTION_ID()"
        )
    async with engine.connect() as conn:
        return int((await conn.exec_driver_sql(sql)).scalar_one())


async def wait_until(check: Callable[[], Awaitable[bool]]) -> None:
    with anyio.fail_after(10):
        while not await check():
            await anyio.sleep(0.01)


@SERVERS
async def test_retry_racing_a_finishing_worker_neither_deadlocks_nor_miscounts(
    engine: AsyncEngine, second_engine: AsyncEngine, submit: Submit
) -> None:
    request_id = await submit([1, 1, 1])
    first, second, last = [await claim_one(engine, "w") for _ in range(3)]
    for claimed in (first, second):
        async with engine.begin() as conn:
            await conn.run_sync(images_db.finish_image, claimed, owner="w", result=FAILED, now=NOW)
    held, release, finished = anyio.Event(), anyio.Event(), anyio.Event()
    reopened: list[int] = []

    async def hold_second_image() -> None:
        # Keeps the retry waiting in the middle of its work while the worker finishes.
        async with engine.begin() as conn:
            await conn.execute(
                sa.select(images.c.id).where(images.c.id == second.id).with_for_update()
            )
            held.set()
            await release.wait()

    async def operator_retries() -> None:
        async with engine.begin() as conn:
            reopened.append(await conn.run_sync(requests_db.retry_failed, request_id, now=NOW))

    async def worker_fails_the_last_image() -> None:
        async with second_engine.begin() as conn:
            await conn.run_sync(images_db.finish_image, last, owner="w", result=FAILED, now=NOW)
        finished.set()

    async def worker_done_or_waiting() -> bool:
        return finished.is_set() or await lock_waiters(engine) >= 2

    async def retry_waiting() -> bool:
        return await lock_waiters(engine) >= 1

    with anyio.fail_after(30):
        async with anyio.create_task_group() as tg:
            tg.start_soon(hold_second_image)
            await held.wait()
            tg.start_soon(operator_retries)
            await wait_until(retry_waiting)
            tg.start_soon(worker_fails_the_last_image)
            await wait_until(worker_done_or_waiting)
            release.set()

    async with reader(engine).connect() as conn:
        stored = await conn.run_sync(requests_db.read_request, request_id)
        statuses = list(
            (
                await conn.execute(
                    sa.select(images.c.status).where(images.c.request_id == request_id)
                )
            ).scalars()
        )
    assert stored is not None
    assert reopened[0] == statuses.count("pending") >= 2
    assert (stored.status, stored.done) == (RequestStatus.IN_PROCESS, 0)
    assert stored.failed == statuses.count("failed")
