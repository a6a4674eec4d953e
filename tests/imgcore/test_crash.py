"""Killing the worker process mid-request loses nothing and processes nothing twice."""

from __future__ import annotations

import functools
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import anyio
import psutil
import pytest
import sqlalchemy as sa
from imgcore import Config, Engine
from imgcore._db.tables import images, requests
from imgcore.states import RequestStatus
from support.csvgen import PHOTOS
from support.origin import OriginServer
from support.stored import stored_keys

pytestmark = [pytest.mark.anyio, pytest.mark.slow]


def worker_env(tmp_path: Path, *, fetch_concurrency: int = 8) -> dict[str, str]:
    """The environment of `imgcore worker` processes sharing tmp_path's database and media:
    short leases, so a killed worker's images are taken over quickly."""
    return {
        **os.environ,
        "IMGCORE_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path}/imgcore.sqlite3",
        "IMGCORE_STORAGE_URL": f"file://{tmp_path}/media",
        "IMGCORE_FETCH_ALLOW": "127.0.0.1/32",
        "IMGCORE_LEASE_SECONDS": "1.5",
        "IMGCORE_POLL_INTERVAL": "0.1",
        "IMGCORE_FETCH_CONCURRENCY": str(fetch_concurrency),
    }


def start_worker(env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("ab") as sink:
        return subprocess.Popen(
            [sys.executable, "-m", "imgcore.cli", "worker"], env=env, stdout=sink, stderr=sink
        )


async def counts(engine: Engine, request_id: object) -> tuple[str, int, int, int, int]:
    def read(conn: sa.Connection) -> Any:
        req = (
            conn.execute(
                sa.select(
                    requests.c.status, requests.c.done_images, requests.c.failed_images
                ).where(requests.c.id == request_id)
            )
        ).one()
        done = (
            conn.execute(
                sa.select(sa.func.count()).where(
                    images.c.request_id == request_id, images.c.status == "done"
                )
            )
        ).scalar_one()
        failed = (
            conn.execute(
                sa.select(sa.func.count()).where(
                    images.c.request_id == request_id, images.c.status == "failed"
                )
            )
        ).scalar_one()
        return req.status, req.done_images, req.failed_images, done, failed

    return await engine.database.read(read)


async def test_a_worker_killed_mid_run_is_finished_by_the_next_one(
    tmp_path: Path, origin: OriginServer
) -> None:
    env = worker_env(tmp_path)
    config = Config.from_env(env)
    n = 48
    urls = [origin.url(f"/slow/0.15/img/{PHOTOS[i % 4]}?crash{i}") for i in range(n)]
    rows = [urls[i : i + 3] for i in range(0, n, 3)]
    csv = "S. No.,Product Name,Input Image Urls\n" + "".join(
        f'{k + 1},P{k + 1},"{",".join(row)}"\n' for k, row in enumerate(rows)
    )
    log = tmp_path / "worker.log"
    async with Engine(config) as engine:
        request_id = await engine.submit_csv(csv.encode())
        kills = 0
        for threshold in (8, 24):
            worker = start_worker(env, log)
            try:
                with anyio.fail_after(120):
                    while (await counts(engine, request_id))[1] < threshold:
                        await anyio.sleep(0.05)
            finally:
                children = psutil.Process(worker.pid).children(recursive=True)
                worker.send_signal(signal.SIGKILL)
                worker.wait()
            kills += 1
            # Its compression processes die with it instead of lingering as orphans.
            _, alive = psutil.wait_procs(children, timeout=10)
            assert alive == []
        assert (await counts(engine, request_id))[1] < n, "the kills came too late to matter"

        worker = start_worker(env, log)
        try:
            with anyio.fail_after(90):
                info = await engine.wait(request_id, interval=0.1)
        finally:
            worker.send_signal(signal.SIGTERM)
            worker.wait(timeout=30)

        assert kills == 2
        assert info.status is RequestStatus.COMPLETED, log.read_text()[-2000:]
        _, done_counter, failed_counter, done_rows, failed_rows = await counts(engine, request_id)
        # Counters are bumped once per ending: equal to the rows means no image ended twice.
        assert (done_counter, failed_counter) == (done_rows, failed_rows) == (n, 0)
        products = await engine.products(request_id, limit=n)
        stored = sorted(
            key
            for p in products
            for i in p.images
            for key in (i.storage_key, i.thumbnail_key)
            if key
        )
        assert len([i for p in products for i in p.images if i.storage_key]) == n
        keys = stored_keys(engine.storage)
        assert keys == stored, "storage holds exactly one object per done image, no orphans"
        assert not list((tmp_path / "media").rglob(".tmp-*"))


async def test_a_worker_killed_between_variants_ends_with_each_variant_stored_once(
    tmp_path: Path, origin: OriginServer
) -> None:
    env = worker_env(tmp_path)
    config = Config.from_env(env)
    n = 24
    urls = [origin.url(f"/slow/0.1/img/{PHOTOS[i % 4]}?variants{i}") for i in range(n)]
    csv = "S. No.,Product Name,Input Image Urls\n" + "".join(
        f'{k + 1},P{k + 1},"{url}"\n' for k, url in enumerate(urls)
    )
    log = tmp_path / "worker.log"
    media = tmp_path / "media"
    async with Engine(config) as engine:
        request_id = await engine.submit_csv(csv.encode(), preset="catalog")
        between = 0
        for _ in range(2):
            worker = start_worker(env, log)
            try:
                # Kill as soon as an image has some variants stored and is not done: a crash
                # between its puts (or, failing that, once a few images are done).
                with anyio.fail_after(120):
                    while True:
                        done = (await counts(engine, request_id))[1]
                        partial = await unrecorded(engine, request_id, media)
                        if partial:
                            between += 1
                            break
                        if done >= 6 + between * 6:
                            break
                        await anyio.sleep(0.01)
            finally:
                children = psutil.Process(worker.pid).children(recursive=True)
                worker.send_signal(signal.SIGKILL)
                worker.wait()
            psutil.wait_procs(children, timeout=10)
        assert (await counts(engine, request_id))[1] < n, "the kills came too late to matter"

        worker = start_worker(env, log)
        try:
            with anyio.fail_after(120):
                info = await engine.wait(request_id, interval=0.1)
        finally:
            worker.send_signal(signal.SIGTERM)
            worker.wait(timeout=30)

        assert info.status is RequestStatus.COMPLETED, log.read_text()[-2000:]
        _, done_counter, failed_counter, done_rows, failed_rows = await counts(engine, request_id)
        assert (done_counter, failed_counter) == (done_rows, failed_rows) == (n, 0)
        products = await engine.products(request_id, limit=n)
        recorded = sorted(v.key for p in products for i in p.images for v in i.variants)
        assert len(recorded) == 3 * n
        assert all(len(i.variants) == 3 for p in products for i in p.images)
        assert stored_keys(engine.storage) == recorded, "each variant once, no orphans"
        assert await unrecorded(engine, request_id, media) == []
        assert not list(media.rglob(".tmp-*"))


async def unrecorded(engine: Engine, request_id: object, media: Path) -> list[str]:
    """Stored variant keys of the request that no done image records."""
    stored = {
        path.relative_to(media).as_posix()
        for path in (media / "requests" / str(request_id)).glob("*")
        if not path.name.startswith(".")
    }
    if not stored:
        return []

    def read(conn: sa.Connection) -> list[Any]:
        return list(
            conn.execute(
                sa.select(images.c.variants).where(
                    images.c.request_id == request_id, images.c.status == "done"
                )
            ).scalars()
        )

    recorded = {v["key"] for variants in await engine.database.read(read) for v in variants or ()}
    return sorted(stored - recorded)


async def test_a_worker_killed_mid_reimport_ends_each_image_once_with_nothing_orphaned(
    tmp_path: Path, origin: OriginServer
) -> None:
    env = worker_env(tmp_path, fetch_concurrency=4)
    config = Config.from_env(env)
    n = 36
    # Without validators and slow: each reuse downloads first (same_content), so the kills
    # land mid-re-import; every third source changes between the imports.
    urls = [origin.url(f"/slow/0.1/img/{PHOTOS[i % 4]}?again={i}") for i in range(n)]
    csv = "S. No.,Product Name,Input Image Urls\n" + "".join(
        f'{k + 1},P{k + 1},"{url}"\n' for k, url in enumerate(urls)
    )
    log = tmp_path / "worker.log"
    async with Engine(config) as engine:
        first = await engine.submit_csv(csv.encode())
        async with engine.running():
            with anyio.fail_after(120):
                await engine.wait(first, interval=0.1)

        def changed(req: Any, photo: str) -> None:
            time.sleep(0.1)
            i = int(req.query["again"])
            origin.send_file(req, f"img/{PHOTOS[(i + 1) % 4] if i % 3 == 0 else photo}")

        for photo in PHOTOS:
            origin.route(f"/slow/0.1/img/{photo}", functools.partial(changed, photo=photo))
        second = await engine.submit_csv(csv.encode())
        for threshold in (8, 20):
            worker = start_worker(env, log)
            try:
                with anyio.fail_after(120):
                    while (await counts(engine, second))[1] < threshold:
                        await anyio.sleep(0.02)
            finally:
                children = psutil.Process(worker.pid).children(recursive=True)
                worker.send_signal(signal.SIGKILL)
                worker.wait()
            psutil.wait_procs(children, timeout=10)
        assert (await counts(engine, second))[1] < n, "the kills came too late to matter"
        worker = start_worker(env, log)
        try:
            with anyio.fail_after(120):
                info = await engine.wait(second, interval=0.1)
        finally:
            worker.send_signal(signal.SIGTERM)
            worker.wait(timeout=30)

        assert info.status is RequestStatus.COMPLETED, log.read_text()[-2000:]
        _, done_counter, failed_counter, done_rows, failed_rows = await counts(engine, second)
        assert (done_counter, failed_counter) == (done_rows, failed_rows) == (n, 0)
        shown = [
            image
            for request_id in (first, second)
            for p in await engine.products(request_id, limit=n)
            for image in p.images
        ]
        again = shown[n:]
        assert sum(image.reused is not None for image in again) == info.reused
        assert [image.reused is None for image in again] == [i % 3 == 0 for i in range(n)]
        recorded = sorted({image.storage_key for image in shown if image.storage_key})
        assert len(recorded) == n + n // 3
        assert stored_keys(engine.storage) == recorded, "each output stored once, no orphans"
