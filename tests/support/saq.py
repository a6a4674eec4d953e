"""Helpers for the SAQ executor's tests: a queue per test on real Redis or PostgreSQL.

    env = saq_environment("redis", database_url, tmp_path)   # IMGCORE_* for API and workers
    worker = start_worker(env, tmp_path / "worker.log")       # an `imgcore worker` process

Each test gets its own queue name (Redis keys are removed afterwards) and, for PostgreSQL,
its own scratch database that holds both imgcore's tables and the queue's.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from imgcore import Engine
from imgcore._db.tables import images, requests

from support.services import POSTGRES_URL, REDIS_URL, migrate, require, scratch_database


@contextmanager
def postgres_database() -> Iterator[str]:
    """A scratch PostgreSQL database at every branch's head; yields its SQLAlchemy URL."""
    require("PostgreSQL", POSTGRES_URL)
    with scratch_database(POSTGRES_URL) as url:
        asyncio.run(migrate(url))
        yield url


@contextmanager
def queue_for(backend: str, database_url: str) -> Iterator[dict[str, str]]:
    """``IMGCORE_QUEUE_URL`` and a fresh ``IMGCORE_SAQ_QUEUE`` for ``redis`` or ``postgres``.

    The PostgreSQL queue lives in the test's own database (job keys are unique per table).
    """
    name = f"test-{uuid.uuid4().hex[:10]}"
    if backend == "postgres":
        yield {"IMGCORE_QUEUE_URL": database_url, "IMGCORE_SAQ_QUEUE": name}
        return
    require("Redis", REDIS_URL)
    try:
        yield {"IMGCORE_QUEUE_URL": REDIS_URL, "IMGCORE_SAQ_QUEUE": name}
    finally:
        asyncio.run(_delete_redis_keys(name))


async def _delete_redis_keys(queue: str) -> None:
    from redis import asyncio as aioredis

    client = aioredis.from_url(REDIS_URL)
    try:
        for pattern in (f"saq:{queue}:*", f"saq:job:{queue}:*", f"saq:abort:{queue}:*"):
            keys = [key async for key in client.scan_iter(match=pattern, count=500)]
            if keys:
                await client.delete(*keys)
    finally:
        await client.aclose()


def saq_environment(queue: dict[str, str], database_url: str, tmp_path: Path) -> dict[str, str]:
    """The IMGCORE_* variables API and workers share: one database, one media dir, one queue.

    Short leases and sweeps, so a killed worker's jobs come back within seconds.
    """
    return {
        "IMGCORE_DATABASE_URL": database_url,
        "IMGCORE_STORAGE_URL": f"file://{tmp_path}/media",
        "IMGCORE_FETCH_ALLOW": "127.0.0.1/32",
        "IMGCORE_FETCH_MAX_ATTEMPTS": "1",
        "IMGCORE_FETCH_CONCURRENCY": "4",
        "IMGCORE_EXECUTOR": "saq",
        "IMGCORE_LEASE_SECONDS": "2",
        "IMGCORE_POLL_INTERVAL": "0.1",
        "IMGCORE_WORKERS": "1",
        "IMGCORE_COMPRESS_POOL": "thread",
        "IMGCORE_SAQ_SWEEP_SECONDS": "1",
        **queue,
    }


def start_worker(env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    """``imgcore worker`` in a new process with ``env`` added to ours; output goes to ``log``."""
    with log.open("ab") as sink:
        return subprocess.Popen(
            [sys.executable, "-m", "imgcore.cli", "worker"],
            env={**os.environ, **env},
            stdout=sink,
            stderr=sink,
        )


def stop(worker: subprocess.Popen[bytes]) -> None:
    """SIGTERM (a no-op for a dead worker), then wait for the exit."""
    if worker.poll() is None:
        worker.send_signal(signal.SIGTERM)
    try:
        worker.wait(timeout=30)
    except subprocess.TimeoutExpired:
        worker.kill()
        worker.wait()


def make_csv(urls: list[str], per_row: int = 3) -> bytes:
    """An input CSV with ``per_row`` of ``urls`` in each product's cell."""
    rows = [urls[i : i + per_row] for i in range(0, len(urls), per_row)]
    lines = ["S. No.,Product Name,Input Image Urls"]
    lines += [f'{k},P{k},"{",".join(row)}"' for k, row in enumerate(rows, start=1)]
    return ("\n".join(lines) + "\n").encode()


async def image_rows(engine: Engine, request_id: Any) -> list[sa.Row[Any]]:
    """``(id, url, status, attempts, lease_owner)`` of every image of a request, by id."""

    def read(conn: sa.Connection) -> Any:
        result = conn.execute(
            sa.select(
                images.c.id, images.c.url, images.c.status, images.c.attempts, images.c.lease_owner
            )
            .where(images.c.request_id == request_id)
            .order_by(images.c.id)
        )
        return list(result.all())

    return await engine.database.read(read)


async def counters(engine: Engine, request_id: Any) -> tuple[int, int]:
    """The request's ``(done_images, failed_images)`` counters."""

    def read(conn: sa.Connection) -> Any:
        row = (
            conn.execute(
                sa.select(requests.c.done_images, requests.c.failed_images).where(
                    requests.c.id == request_id
                )
            )
        ).one()
        return row.done_images, row.failed_images

    return await engine.database.read(read)
