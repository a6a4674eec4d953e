"""`imgcore worker` processes on a SAQ queue (Redis, or PostgreSQL as the queue).

The test process is the API: it stores requests and enqueues their jobs, and processes
nothing itself (``running(process=False)``). Workers share one PostgreSQL database and one
media directory, as they would on separate machines.
"""

from __future__ import annotations

import signal
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path

import anyio
import pytest
from imgcore import Config, Engine
from imgcore.states import RequestStatus
from imgcore_saq import SaqExecutor
from saq.queue import Queue
from support.csvgen import PHOTOS
from support.origin import OriginServer
from support.saq import (
    counters,
    image_rows,
    make_csv,
    postgres_database,
    queue_for,
    saq_environment,
    start_worker,
    stop,
)
from support.stored import stored_keys

pytestmark = [pytest.mark.anyio, pytest.mark.slow]


@pytest.fixture(params=["redis", "postgres"])
def backend(request: pytest.FixtureRequest) -> str:
    """The queue: Redis, or PostgreSQL (in the test's database)."""
    return str(request.param)


@pytest.fixture
def env(backend: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, str]]:
    """Variables for API and workers; also set here, where the plugin reads them."""
    with postgres_database() as database_url, queue_for(backend, database_url) as queue:
        env = saq_environment(queue, database_url, tmp_path)
        for name, value in env.items():
            monkeypatch.setenv(name, value)
        yield env


async def connected(engine: Engine) -> tuple[SaqExecutor, Queue]:
    executor = engine.executor
    assert isinstance(executor, SaqExecutor)
    queue = executor.open_queue(small=True)
    await queue.connect()
    return executor, queue


async def wait_for_workers(queue: Queue, n: int, workers: list[subprocess.Popen[bytes]]) -> None:
    with anyio.fail_after(30):
        while len((await queue.info())["workers"]) < n:
            assert all(w.poll() is None for w in workers), "a worker exited"
            await anyio.sleep(0.1)


async def test_two_workers_share_a_request_and_process_each_image_once(
    env: dict[str, str], tmp_path: Path, origin: OriginServer
) -> None:
    n = 24
    urls = [origin.url(f"/slow/0.1/img/{PHOTOS[i % 4]}?two{i}") for i in range(n)]
    log = tmp_path / "workers.log"
    async with Engine(Config.from_env(env)) as api, api.running(process=False):
        executor, queue = await connected(api)
        workers = [start_worker(env, log) for _ in range(2)]
        try:
            await wait_for_workers(queue, 2, workers)
            request_id = await api.submit_csv(make_csv(urls))
            with anyio.fail_after(60):
                info = await api.wait(request_id, interval=0.1)
            rows = await image_rows(api, request_id)
            jobs = await queue.jobs([executor.job_key(row.id) for row in rows])
        finally:
            for worker in workers:
                stop(worker)
            await queue.disconnect()
        assert info.status is RequestStatus.COMPLETED, log.read_text()[-3000:]
        assert await counters(api, request_id) == (n, 0)
        assert [row.status for row in rows] == ["done"] * n
        keys = stored_keys(api.storage)
    assert len(keys) == n, "one output per image"
    assert [origin.hits(url.removeprefix(origin.base_url)) for url in urls] == [1] * n
    assert len({job.worker_id for job in jobs if job is not None}) == 2, "both workers took jobs"


async def test_a_worker_killed_mid_job_loses_nothing(
    env: dict[str, str], tmp_path: Path, origin: OriginServer
) -> None:
    n = 24
    urls = [origin.url(f"/slow/0.4/img/{PHOTOS[i % 4]}?kill{i}") for i in range(n)]
    log = tmp_path / "workers.log"
    async with Engine(Config.from_env(env)) as api, api.running(process=False):
        _, queue = await connected(api)
        doomed, survivor = start_worker(env, log), start_worker(env, log)
        try:
            await wait_for_workers(queue, 2, [doomed, survivor])
            request_id = await api.submit_csv(make_csv(urls))
            doomed_owner = f"{socket.gethostname()}:{doomed.pid}:"
            with anyio.fail_after(60):
                while True:
                    rows = await image_rows(api, request_id)
                    # Mid-job: still processing under its lease, not only last leased by it.
                    held = [
                        r
                        for r in rows
                        if (r.lease_owner or "").startswith(doomed_owner)
                        and r.status == "processing"
                    ]
                    if held and sum(r.status == "done" for r in rows) >= 4:
                        break
                    await anyio.sleep(0.05)
            doomed.send_signal(signal.SIGKILL)
            doomed.wait()
            orphaned = {
                r.id
                for r in await image_rows(api, request_id)
                if (r.lease_owner or "").startswith(doomed_owner) and r.status == "processing"
            }
            assert orphaned, "the kill came too late to leave an image mid-job"
            with anyio.fail_after(90):
                info = await api.wait(request_id, interval=0.1)
            rows = await image_rows(api, request_id)
        finally:
            stop(doomed)
            stop(survivor)
            await queue.disconnect()
        assert info.status is RequestStatus.COMPLETED, log.read_text()[-3000:]
        # Counters move once per ending: equal to the rows, no image ended twice.
        assert await counters(api, request_id) == (n, 0)
        assert [row.status for row in rows] == ["done"] * n
        assert all(row.attempts >= 2 for row in rows if row.id in orphaned), "retried elsewhere"
        keys = stored_keys(api.storage)
    assert len(keys) == n, "one output per image, no orphans"
    assert not list((tmp_path / "media").rglob(".tmp-*"))
