"""The SAQ executor in this process, on real Redis and on PostgreSQL as the queue.

imgcore's database is a scratch PostgreSQL database; each test has its own queue name.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import timedelta
from functools import partial
from pathlib import Path

import anyio
import pytest
from imgcore import Config, Engine
from imgcore._clock import utcnow
from imgcore._db import images as images_db
from imgcore.states import RequestStatus
from imgcore_saq import SaqExecutor
from saq.job import TERMINAL_STATUSES, Job, Status
from saq.queue import Queue
from support.csvgen import PHOTOS, photo_urls
from support.origin import OriginServer
from support.saq import (
    counters,
    image_rows,
    make_csv,
    postgres_database,
    queue_for,
    saq_environment,
)
from support.stored import stored_keys

pytestmark = pytest.mark.anyio


@pytest.fixture(params=["redis", "postgres"])
def backend(request: pytest.FixtureRequest) -> str:
    """The queue: Redis, or PostgreSQL (in the test's database)."""
    return str(request.param)


@pytest.fixture
def database_url() -> Iterator[str]:
    with postgres_database() as url:
        yield url


@pytest.fixture
def config(
    backend: str, database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Config]:
    """imgcore's config with ``executor=saq``; the plugin's variables set in os.environ."""
    with queue_for(backend, database_url) as queue:
        env = saq_environment(queue, database_url, tmp_path)
        for name, value in env.items():
            monkeypatch.setenv(name, value)
        yield Config.from_env(env)


def saq_executor(engine: Engine) -> SaqExecutor:
    assert isinstance(engine.executor, SaqExecutor)
    return engine.executor


def path_of(origin: OriginServer, url: str) -> str:
    return url.removeprefix(origin.base_url)


async def connected(executor: SaqExecutor) -> Queue:
    queue = executor.open_queue(small=True)
    await queue.connect()
    return queue


async def job_states(executor: SaqExecutor, queue: Queue, ids: list[int]) -> list[Status | None]:
    jobs = await queue.jobs([executor.job_key(i) for i in ids])
    return [None if job is None else job.status for job in jobs]


async def finished(queue: Queue, job: Job, timeout: float = 20) -> Job:
    with anyio.fail_after(timeout):
        while True:
            current = await queue.job(job.key)
            if current is not None and current.status in TERMINAL_STATUSES:
                return current
            await anyio.sleep(0.1)


@pytest.mark.parametrize("api_mode", ["running(process=False)", "IMGCORE_SAQ_CONSUME=false"])
async def test_an_api_process_enqueues_one_job_per_image_and_processes_none(
    config: Config, origin: OriginServer, api_mode: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    urls = photo_urls(origin, 6, "api")
    if api_mode == "IMGCORE_SAQ_CONSUME=false":
        monkeypatch.setenv("IMGCORE_SAQ_CONSUME", "false")
    process = api_mode != "running(process=False)"
    async with Engine(config) as api, api.running(process=process):
        request_id = await api.submit_csv(make_csv(urls))
        ids = [row.id for row in await image_rows(api, request_id)]
        executor = saq_executor(api)
        queue = await connected(executor)
        try:
            with anyio.fail_after(10):  # enqueued in the background while the executor runs
                while await job_states(executor, queue, ids) != [Status.QUEUED] * 6:
                    await anyio.sleep(0.05)
            await anyio.sleep(0.5)  # room for a mistaken consumer to start
            states = await job_states(executor, queue, ids)
            rows = await image_rows(api, request_id)
        finally:
            await queue.disconnect()
    assert states == [Status.QUEUED] * 6
    assert [row.status for row in rows] == ["pending"] * 6
    assert origin.total_hits() == 0


async def test_submitting_a_request_twice_enqueues_each_image_once(
    config: Config, origin: OriginServer
) -> None:
    async with Engine(config) as api:
        request_id = await api.submit_csv(make_csv(photo_urls(origin, 4, "twice")))
        executor = saq_executor(api)
        queue = await connected(executor)
        try:
            await executor.submitted(request_id)
            added_again = await executor.enqueue_unfinished(queue, request_id)
            queued = await queue.count("queued")
        finally:
            await queue.disconnect()
    assert (added_again, queued) == (0, 4)


async def test_a_worker_processes_a_request_once_per_image(
    config: Config, origin: OriginServer
) -> None:
    urls = photo_urls(origin, 6, "one")
    async with Engine(config) as engine, engine.running():
        request_id = await engine.submit_csv(make_csv(urls))
        with anyio.fail_after(30):
            info = await engine.wait(request_id, interval=0.05)
        keys = stored_keys(engine.storage)
    assert info.status is RequestStatus.COMPLETED
    assert (info.done, info.failed) == (6, 0)
    assert len(keys) == 6  # an output per image (thumbnails come when first shown)
    assert [origin.hits(path_of(origin, url)) for url in urls] == [1] * 6


async def test_a_duplicate_job_for_a_done_image_does_nothing(
    config: Config, origin: OriginServer
) -> None:
    urls = photo_urls(origin, 2, "dup")
    webhook = origin.url("/status/204")
    async with Engine(config) as engine, engine.running():
        request_id = await engine.submit_csv(make_csv(urls), webhook_url=webhook)
        with anyio.fail_after(30):
            await engine.wait(request_id, interval=0.05)
        keys = stored_keys(engine.storage)
        rows = await image_rows(engine, request_id)
        executor = saq_executor(engine)
        queue = await connected(executor)
        try:
            # Scheduled a second ahead: PostgreSQL replaces a finished job only by a later one.
            job = await queue.enqueue(executor.new_job(rows[0].id, scheduled=time.time() + 1))
            assert job is not None, "the finished job's key takes a new job"
            ran = await finished(queue, job)
        finally:
            await queue.disconnect()
        assert (ran.status, ran.result) == (Status.COMPLETE, "ended")
        assert await counters(engine, request_id) == (2, 0)
        assert stored_keys(engine.storage) == keys
        assert len(await engine.deliveries(request_id)) == 1
        assert [row.attempts for row in await image_rows(engine, request_id)] == [1, 1]
    assert [origin.hits(path_of(origin, url)) for url in urls] == [1, 1]


async def test_a_starting_worker_enqueues_unfinished_images_that_have_no_job(
    config: Config, origin: OriginServer
) -> None:
    urls = photo_urls(origin, 4, "reconcile")
    # Stored by an API whose enqueueing never happened (a crash between commit and enqueue).
    async with Engine(config.replace(executor="local")) as api:
        request_id = await api.submit_csv(make_csv(urls))
    async with Engine(config) as worker, worker.running():
        with anyio.fail_after(30):
            info = await worker.wait(request_id, interval=0.05)
    assert (info.status, info.done) == (RequestStatus.COMPLETED, 4)
    assert [origin.hits(path_of(origin, url)) for url in urls] == [1] * 4


async def test_a_job_for_an_image_leased_elsewhere_leaves_it_and_looks_again_at_lease_end(
    config: Config, origin: OriginServer
) -> None:
    url = photo_urls(origin, 1, "elsewhere")[0]
    async with Engine(config) as engine:
        request_id = await engine.submit_csv(make_csv([url]))
        now = utcnow()
        await engine.database.write(
            partial(
                images_db.claim_images,
                owner="another-worker",
                limit=1,
                lease=timedelta(seconds=60),
                now=now,
            )
        )
        lease_end = (now + timedelta(seconds=60)).timestamp()
        (row,) = await image_rows(engine, request_id)
        executor = saq_executor(engine)
        queue = await connected(executor)
        try:
            async with engine.running():
                with anyio.fail_after(20):
                    while True:
                        job = await queue.job(executor.job_key(row.id))
                        if job is not None and job.scheduled >= lease_end:
                            break
                        await anyio.sleep(0.05)
        finally:
            await queue.disconnect()
        (after,) = await image_rows(engine, request_id)
    assert (after.status, after.lease_owner, after.attempts) == ("processing", "another-worker", 1)
    assert job.status is Status.QUEUED
    assert origin.hits(path_of(origin, url)) == 0


async def test_an_image_leased_by_a_dead_worker_is_processed_once_its_lease_ends(
    config: Config, origin: OriginServer
) -> None:
    url = photo_urls(origin, 1, "leased")[0]
    async with Engine(config) as engine:
        request_id = await engine.submit_csv(make_csv([url]))
        held = await engine.database.write(
            partial(
                images_db.claim_images,
                owner="another-worker",
                limit=1,
                lease=timedelta(seconds=1),
                now=utcnow(),
            )
        )
        assert len(held) == 1
        async with engine.running():
            with anyio.fail_after(30):
                info = await engine.wait(request_id, interval=0.05)
        (row,) = await image_rows(engine, request_id)
    assert (info.status, info.done) == (RequestStatus.COMPLETED, 1)
    assert (row.status, row.attempts) == ("done", 2), "claimed once elsewhere, once here"
    assert origin.hits(path_of(origin, url)) == 1


async def test_an_image_deferred_by_a_transient_error_is_retried_when_due(
    config: Config, origin: OriginServer
) -> None:
    path = "/flaky/saq-transient/1/img/s03_coffee.jpg"
    async with Engine(config) as engine, engine.running():
        request_id = await engine.submit_csv(make_csv([origin.url(path + "?status=503")]))
        with anyio.fail_after(30):
            info = await engine.wait(request_id, interval=0.05)
        (row,) = await image_rows(engine, request_id)
    assert (info.status, info.done) == (RequestStatus.COMPLETED, 1)
    assert (row.status, row.attempts) == ("done", 2)
    assert origin.hits(path) == 2


async def test_a_stopped_worker_gives_its_images_and_jobs_back(
    config: Config, origin: OriginServer
) -> None:
    urls = [origin.url(f"/slow/5/img/{PHOTOS[i]}?stop{i}") for i in range(4)]
    async with Engine(config) as engine:
        request_id = await engine.submit_csv(make_csv(urls))
        async with engine.running():
            with anyio.fail_after(20):
                while not any(
                    r.status == "processing" for r in await image_rows(engine, request_id)
                ):
                    await anyio.sleep(0.05)
        rows = await image_rows(engine, request_id)
        executor = saq_executor(engine)
        queue = await connected(executor)
        try:
            states = await job_states(executor, queue, [row.id for row in rows])
        finally:
            await queue.disconnect()
    assert [(row.status, row.lease_owner, row.attempts) for row in rows] == [
        ("pending", None, 0)
    ] * 4
    assert states == [Status.QUEUED] * 4
