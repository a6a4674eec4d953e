"""Throughput of the SAQ executor with 1 and 2 worker processes, beside the local executor.

A request of real photographs (../shared/bench: 100 rows x 3 URLs, the default size mix) served
by the bench origin. imgcore's database is a scratch PostgreSQL database shared by every
process; the queue is Redis (or PostgreSQL: --queue postgres). The test process is the API: it
submits and waits, processing nothing. Each SAQ worker is an `imgcore worker` process with
IMGCORE_WORKERS compression processes (default 1: one core per worker, so two workers show how
work spreads over machines), and one worker on every core against the local executor (the
cost of the queue). Times run from submit to Completed, after a warm-up request.
Prints figures; asserts nothing.

Needs PostgreSQL and Redis on loopback: IMGCORE_BENCH_POSTGRES_URL (default
postgresql+asyncpg://postgres@127.0.0.1:5432/test), IMGCORE_BENCH_REDIS_URL (default
redis://127.0.0.1:6379/0).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import anyio
import sqlalchemy as sa
from _bench import make_csv, origin
from imgcore import Config, Database, Engine
from imgcore_saq import SaqExecutor
from sqlalchemy.ext.asyncio import create_async_engine

POSTGRES_URL = os.environ.get(
    "IMGCORE_BENCH_POSTGRES_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/test"
)
REDIS_URL = os.environ.get("IMGCORE_BENCH_REDIS_URL", "redis://127.0.0.1:6379/0")


@contextlib.contextmanager
def scratch_database() -> Iterator[str]:
    """A new PostgreSQL database at imgcore's schema head, dropped afterwards."""
    base = sa.make_url(POSTGRES_URL)
    name = f"imgcore_bench_{uuid.uuid4().hex[:8]}"

    async def admin(statement: str) -> None:
        engine = create_async_engine(base, isolation_level="AUTOCOMMIT")
        try:
            async with engine.connect() as conn:
                await conn.exec_driver_sql(statement)
        finally:
            await engine.dispose()

    async def upgrade(url: str) -> None:
        database = Database(url)
        try:
            await database.upgrade()
        finally:
            await database.dispose()

    asyncio.run(admin(f'CREATE DATABASE "{name}"'))
    url = base.set(database=name).render_as_string(hide_password=False)
    try:
        asyncio.run(upgrade(url))
        yield url
    finally:
        asyncio.run(admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


def reachable(url: str) -> bool:
    parts = sa.make_url(url)
    try:
        with socket.create_connection((parts.host or "127.0.0.1", parts.port or 0), 2):
            return True
    except OSError:
        return False


def environment(database_url: str, queue_url: str, work: Path, workers: int) -> dict[str, str]:
    return {
        "IMGCORE_DATABASE_URL": database_url,
        "IMGCORE_STORAGE_URL": f"file://{work}/media",
        "IMGCORE_FETCH_ALLOW": "127.0.0.1/32",
        "IMGCORE_EXECUTOR": "saq",
        "IMGCORE_QUEUE_URL": queue_url,
        "IMGCORE_SAQ_QUEUE": f"bench-{uuid.uuid4().hex[:8]}",
        "IMGCORE_WORKERS": str(workers),
    }


async def wait_for(engine: Engine, csv_path: Path) -> tuple[float, int]:
    started = time.perf_counter()
    request_id = await engine.submit_csv(csv_path.read_bytes())
    with anyio.fail_after(300):
        info = await engine.wait(request_id, interval=0.05)
    wall = time.perf_counter() - started
    if info.status.value != "Completed" or info.failed:
        sys.exit(f"the request ended {info.status.value} with {info.failed} failed images")
    return wall, info.total


async def run_saq(
    env: dict[str, str], processes: int, warmup: Path, csv_path: Path, log: Path
) -> tuple[float, int]:
    os.environ.update(env)  # the plugin reads its settings from the environment
    async with Engine(Config.from_env(env)) as api, api.running(process=False):
        assert isinstance(api.executor, SaqExecutor)
        queue = api.executor.open_queue(small=True)
        await queue.connect()
        with log.open("ab") as sink:
            workers = [
                subprocess.Popen(
                    [sys.executable, "-m", "imgcore.cli", "worker"],
                    env={**os.environ, **env},
                    stdout=sink,
                    stderr=sink,
                )
                for _ in range(processes)
            ]
        try:
            with anyio.fail_after(60):
                while len((await queue.info())["workers"]) < processes:
                    await anyio.sleep(0.1)
            await wait_for(api, warmup)
            return await wait_for(api, csv_path)
        finally:
            for worker in workers:
                worker.send_signal(signal.SIGTERM)
            for worker in workers:
                worker.wait(timeout=60)
            await queue.disconnect()
            if env["IMGCORE_QUEUE_URL"].startswith("redis"):
                await delete_redis_keys(env["IMGCORE_SAQ_QUEUE"])


async def delete_redis_keys(queue: str) -> None:
    from redis import asyncio as aioredis

    client = aioredis.from_url(REDIS_URL)
    try:
        for pattern in (f"saq:{queue}:*", f"saq:job:{queue}:*"):
            keys = [key async for key in client.scan_iter(match=pattern, count=1000)]
            if keys:
                await client.delete(*keys)
    finally:
        await client.aclose()


async def run_local(
    database_url: str, work: Path, warmup: Path, csv_path: Path
) -> tuple[float, int]:
    config = Config(
        database_url=database_url,
        storage_url=f"file://{work}/media",
        fetch_allow=("127.0.0.1/32",),
        poll_interval=0.05,
    )
    async with Engine(config) as engine, engine.running():
        await wait_for(engine, warmup)
        return await wait_for(engine, csv_path)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=100)
    parser.add_argument("--queue", choices=["redis", "postgres"], default="redis")
    parser.add_argument(
        "--workers", type=int, default=1, help="compression processes per worker (IMGCORE_WORKERS)"
    )
    args = parser.parse_args()
    services = [("PostgreSQL", POSTGRES_URL)]
    if args.queue == "redis":
        services.append(("Redis", REDIS_URL))
    for name, url in services:
        if not reachable(url):
            # Like the tests: a missing service skips, visibly, instead of failing `nox -s bench`.
            print(f"skipped: {name} is not reachable at {url}")
            return
    print(f"{os.cpu_count()} CPUs; queue {args.queue}; database PostgreSQL")
    with origin() as base_url:
        csv_path = make_csv(base_url, args.rows, 3)
        warmup = make_csv(base_url, 4, 1, mix="s03:1")
        work = Path(tempfile.mkdtemp(prefix="imgcore-bench-saq-"))
        with scratch_database() as database_url:
            wall, n = anyio.run(run_local, database_url, work / "local", warmup, csv_path)
            local = n / wall
            print(
                f"local executor (1 process, all cores): {n} images in {wall:.2f}s = "
                f"{local:.2f} img/s"
            )
        cores = os.cpu_count() or 1
        rates: dict[tuple[int, int], float] = {}
        for processes, compressors in ((1, args.workers), (2, args.workers), (1, cores)):
            with scratch_database() as database_url:
                queue_url = REDIS_URL if args.queue == "redis" else database_url
                run = work / f"saq{processes}x{compressors}"
                env = environment(database_url, queue_url, run, compressors)
                log = work / f"saq{processes}x{compressors}.log"
                wall, n = anyio.run(run_saq, env, processes, warmup, csv_path, log)
            rate = rates[processes, compressors] = n / wall
            print(
                f"saq, {processes} worker process(es) x {compressors} compression process(es): "
                f"{n} images in {wall:.2f}s = {rate:.2f} img/s"
            )
        one, two = rates[1, args.workers], rates[2, args.workers]
        print(f"scaling, 2 workers / 1 worker ({args.workers} compression each): {two / one:.2f}x")
        print(f"saq / local, one process on all {cores} cores: {rates[1, cores] / local:.2f}")


if __name__ == "__main__":
    main()
