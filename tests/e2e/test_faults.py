"""Faults during a run: every request still ends, every image ends once, nothing is orphaned.

- the server process SIGKILLed at random points of a large request, several times;
- PostgreSQL restarted under a worker (every connection dropped, refused for a while);
- the storage failing mid-run (a filesystem root swapped for a regular file), then back,
  and failing for longer than the retries allow;
- the webhook receiver down when the request ends, up later (across a server restart).

After each, :func:`assert_each_image_ended_once` checks the images table (every image done
or failed, counters equal to the rows: no image counted twice), the storage (one object per
done image and no thumbnail, none made yet; no file no done image references, no temporary
file) and
:func:`assert_delivered_once` the webhook (one POST, the delivery's ``webhook-id``).

The kill rounds are random: the seed is printed (shown with a failure) and
``IMGCORE_FAULT_SEED=<seed>`` replays it.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import random
import shutil
import signal
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit
from uuid import UUID

import anyio
import httpx
import psutil
import pytest
import sqlalchemy as sa
from imgcore import Config, Engine
from imgcore._db.tables import images
from imgcore.models import RequestInfo
from imgcore.states import RequestStatus
from support.csvgen import PHOTOS
from support.origin import OriginServer
from support.saq import counters, make_csv, postgres_database, start_worker, stop
from support.server import ApiServer, WebhookReceiver, free_port, server_env
from support.services import POSTGRES_URL, services_required
from support.stored import stored_keys

# Generous bounds: server start-up alone takes seconds on a loaded machine.
pytestmark = [pytest.mark.anyio, pytest.mark.slow, pytest.mark.timeout(300)]
STARTUP = 90.0


# -- checks -------------------------------------------------------------------------------------


async def ended_rows(engine: Engine, request_id: Any) -> list[sa.Row[Any]]:
    """Every image of the request with what its ending left behind, by id."""

    def read(conn: sa.Connection) -> Any:
        result = conn.execute(
            sa.select(
                images.c.id,
                images.c.status,
                images.c.attempts,
                images.c.lease_owner,
                images.c.storage_key,
                images.c.thumbnail_key,
                images.c.error_reason,
                images.c.finished_at,
            )
            .where(images.c.request_id == request_id)
            .order_by(images.c.id)
        )
        return list(result.all())

    return await engine.database.read(read)


async def assert_each_image_ended_once(
    engine: Engine, request_id: Any, media: Path
) -> list[sa.Row[Any]]:
    """The request is terminal, each image ended once, storage holds exactly the done outputs."""
    info = await engine.status(request_id)
    assert info.status.is_terminal, info
    rows = await ended_rows(engine, request_id)
    done = [row for row in rows if row.status == "done"]
    failed = [row for row in rows if row.status == "failed"]
    assert len(done) + len(failed) == len(rows) == info.total, "an image did not end"
    # Counters move once per ending: equal to the rows, no image ended twice.
    assert await counters(engine, request_id) == (len(done), len(failed))
    assert all(row.lease_owner is None and row.finished_at is not None for row in rows)
    assert all(row.storage_key and not row.thumbnail_key for row in done)
    assert all(row.error_reason and not row.storage_key for row in failed)
    referenced = sorted(row.storage_key for row in done)
    stored = stored_keys(engine.storage)
    assert stored == referenced, "one output per done image, no orphans"
    assert not list(media.rglob(".tmp-*"))
    return rows


def header(headers: dict[str, str], name: str) -> str:
    return next(value for key, value in headers.items() if key.lower() == name)


async def delivered(engine: Engine, request_id: Any, timeout: float = 60) -> None:
    """Wait until the request's notification is recorded as delivered."""
    with anyio.fail_after(timeout):
        while [d.status for d in await engine.deliveries(request_id)] != ["delivered"]:
            await anyio.sleep(0.1)


async def assert_delivered_once(
    engine: Engine, request_id: Any, hooks: WebhookReceiver, status: str = "Completed"
) -> None:
    """One webhook POST, for the delivery recorded, with its ``webhook-id``."""
    (delivery,) = await engine.deliveries(request_id)
    assert delivery.status == "delivered", delivery
    assert len(hooks.deliveries) == 1, [header(h, "webhook-id") for h, _ in hooks.deliveries]
    headers, payload = hooks.deliveries[0]
    assert header(headers, "webhook-id") == delivery.message_id
    assert (payload["request_id"], payload["status"]) == (str(request_id), status)


# -- setups -------------------------------------------------------------------------------------


def fault_env(root: Path, **extra: str) -> dict[str, str]:
    """A server's (or worker's) environment with short leases and webhook retries."""
    defaults = {
        "IMGCORE_POLL_INTERVAL": "0.1",
        "IMGCORE_WORKERS": "2",
        # Images a dead process held come back two seconds after its last renewal.
        "IMGCORE_LEASE_SECONDS": "2",
        "IMGCORE_WEBHOOK_RETRY_SCHEDULE": "0.3",
    }
    return server_env(root, **{**defaults, **extra})


def slow_urls(origin: OriginServer, n: int, seconds: float, tag: str) -> list[str]:
    """``n`` distinct photo URLs that each take ``seconds`` to answer."""
    return [origin.url(f"/slow/{seconds}/img/{PHOTOS[i % len(PHOTOS)]}?{tag}{i}") for i in range(n)]


async def upload(server: ApiServer, csv: bytes, webhook_url: str) -> UUID:
    async with httpx.AsyncClient(timeout=30) as client:
        response = await client.post(
            server.url("/upload"),
            data={"webhook_url": webhook_url},
            files={"file": ("products.csv", csv, "text/csv")},
        )
    assert response.status_code == 202, response.text
    return UUID(response.json()["request_id"])


def fault_seed() -> int:
    """``IMGCORE_FAULT_SEED`` (a replay), else a fresh one; printed either way."""
    raw = os.environ.get("IMGCORE_FAULT_SEED")
    seed = int(raw) if raw else random.SystemRandom().randrange(2**32)
    print(f"fault seed: {seed} (replay: IMGCORE_FAULT_SEED={seed})")
    return seed


# -- the processing process killed ----------------------------------------------------------------


def kill_tree(process: subprocess.Popen[bytes]) -> None:
    """SIGKILL ``process``; its compression workers must die with it, not linger as orphans."""
    children = psutil.Process(process.pid).children(recursive=True)
    process.send_signal(signal.SIGKILL)
    process.wait()
    _, alive = psutil.wait_procs(children, timeout=10)
    assert alive == [], "compression workers outlived their server"


async def test_a_server_killed_at_random_points_still_ends_every_image_once(
    tmp_path: Path, origin: OriginServer
) -> None:
    seed = fault_seed()
    rng = random.Random(seed)
    n, rounds = 96, 4
    # At most 4 downloads of 0.4 s in flight (10 images/s): the kills land mid-request.
    env = fault_env(
        tmp_path,
        IMGCORE_FETCH_CONCURRENCY="4",
        # An image in flight at every kill is claimed rounds + 1 times.
        IMGCORE_MAX_ATTEMPTS=str(rounds + 2),
    )
    csv = make_csv(slow_urls(origin, n, 0.4, "kill"))
    hit: set[int] = set()
    with WebhookReceiver() as hooks:
        async with Engine(Config.from_env(env)) as engine:
            request_id: UUID | None = None
            for round_ in range(rounds):
                cwd = tmp_path / f"round{round_}"
                cwd.mkdir()
                with ApiServer(env=env, cwd=cwd, startup_timeout=STARTUP) as server:
                    assert server.process is not None
                    if request_id is None:
                        request_id = await upload(server, csv, hooks.url)
                    delay = rng.uniform(0.3, 1.5)
                    await anyio.sleep(delay)
                    kill_tree(server.process)
                owner = f"{socket.gethostname()}:{server.process.pid}:"
                in_flight = {
                    row.id
                    for row in await ended_rows(engine, request_id)
                    if row.status == "processing" and (row.lease_owner or "").startswith(owner)
                }
                print(f"round {round_}: killed after {delay:.2f} s, {len(in_flight)} in flight")
                hit |= in_flight
                info = await engine.status(request_id)
                assert not info.status.is_terminal, f"the kills came too late (seed {seed})"
            assert hit, f"no kill caught an image mid-processing (seed {seed})"
            assert request_id is not None

            with ApiServer(env=env, cwd=tmp_path, startup_timeout=STARTUP) as server:
                with anyio.fail_after(120):
                    info = await engine.wait(request_id, interval=0.1)
                await delivered(engine, request_id)
            assert info.status is RequestStatus.COMPLETED, server.logs()[-3000:]
            rows = await assert_each_image_ended_once(engine, request_id, tmp_path / "media")
            assert [row.status for row in rows] == ["done"] * n, f"seed {seed}"
            assert all(row.attempts >= 2 for row in rows if row.id in hit), "taken over"
            await assert_delivered_once(engine, request_id, hooks)


# -- PostgreSQL restarted -----------------------------------------------------------------------


def postgres_cluster() -> str:
    """The version of the local PostgreSQL cluster we may restart; skips (fails in CI) if none."""
    etc = Path("/etc/postgresql")
    versions = sorted(etc.iterdir()) if etc.is_dir() else []
    host = urlsplit(POSTGRES_URL.replace("+asyncpg", "")).hostname
    problem = None
    if not shutil.which("pg_ctlcluster") or not versions:
        problem = "no local PostgreSQL cluster (pg_ctlcluster, /etc/postgresql) to restart"
    elif os.geteuid() != 0:
        problem = "restarting PostgreSQL needs root"
    elif host not in ("127.0.0.1", "localhost", "::1"):
        problem = f"the test PostgreSQL ({host}) is not the local cluster"
    if problem is not None:
        if services_required():
            pytest.fail(f"{problem} (IMGCORE_REQUIRE_SERVICES=1)")
        pytest.skip(problem)
    return versions[-1].name


def pg_ctl(version: str, action: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["pg_ctlcluster", "--skip-systemctl-redirect", "--mode", "fast", version, "main", action],
        capture_output=True,
        text=True,
        timeout=120,
    )


async def accepts_connections(url: str) -> bool:
    from sqlalchemy.ext.asyncio import create_async_engine

    engine = create_async_engine(url)
    try:
        async with engine.connect() as conn:
            await conn.execute(sa.text("SELECT 1"))
        return True
    except Exception:
        return False
    finally:
        await engine.dispose()


async def ensure_postgres_up(version: str, url: str) -> None:
    """Start the cluster if it is down and wait until it answers queries."""
    if await accepts_connections(url):
        return
    await anyio.to_thread.run_sync(pg_ctl, version, "start")
    with anyio.fail_after(60):
        while not await accepts_connections(url):
            await anyio.sleep(0.5)


async def wait_settled(engine: Engine, request_id: Any, timeout: float) -> RequestInfo:
    """Like ``engine.wait``, but a status read the restart breaks is just read again."""
    with anyio.fail_after(timeout):
        while True:
            try:
                info = await engine.status(request_id)
            except Exception:
                info = None
            if info is not None and info.status.is_terminal:
                return info
            await anyio.sleep(0.1)


@pytest.fixture
def postgres_version() -> str:
    """The local cluster's version, checked before any database is made on it."""
    return postgres_cluster()


@pytest.fixture
def postgres_url(postgres_version: str) -> Iterator[str]:
    """A scratch database on the local cluster (dropped afterwards: the cluster is up again)."""
    with postgres_database() as url:
        yield url


async def test_a_postgresql_restart_mid_run_is_survived(
    tmp_path: Path, origin: OriginServer, postgres_version: str, postgres_url: str
) -> None:
    n = 90
    urls = slow_urls(origin, n, 0.4, "pg")
    log = tmp_path / "worker.log"
    env = fault_env(tmp_path, IMGCORE_DATABASE_URL=postgres_url, IMGCORE_FETCH_CONCURRENCY="4")
    try:
        with WebhookReceiver() as hooks:
            async with Engine(Config.from_env(env)) as engine:
                request_id = await engine.submit_csv(make_csv(urls), webhook_url=hooks.url)
                worker = start_worker(env, log)
                try:
                    with anyio.fail_after(120):
                        while (await counters(engine, request_id))[0] < 10:
                            assert worker.poll() is None, log.read_text()[-3000:]
                            await anyio.sleep(0.1)
                    restart = await anyio.to_thread.run_sync(pg_ctl, postgres_version, "restart")
                    assert restart.returncode == 0, restart.stderr
                    done, _ = await counters(engine, request_id)
                    assert done < n, "the restart came too late to matter"
                    info = await wait_settled(engine, request_id, 120)
                    await delivered(engine, request_id)
                    assert worker.poll() is None, "the worker died with the connections"
                finally:
                    stop(worker)
                assert info.status is RequestStatus.COMPLETED, log.read_text()[-3000:]
                rows = await assert_each_image_ended_once(engine, request_id, tmp_path / "media")
                assert [row.status for row in rows] == ["done"] * n, log.read_text()[-3000:]
                await assert_delivered_once(engine, request_id, hooks)
    finally:
        await ensure_postgres_up(postgres_version, POSTGRES_URL)


# -- the storage failing --------------------------------------------------------------------------

_RENAME_EXCHANGE = 2  # from linux/fs.h
_AT_FDCWD = -100


def exchange(a: Path, b: Path) -> None:
    """Swap two paths atomically (renameat2 RENAME_EXCHANGE): no moment when either is missing."""
    libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
    renameat2 = getattr(libc, "renameat2", None)
    if renameat2 is None:
        pytest.skip("renameat2 is not available (Linux, glibc ≥ 2.28)")
    if renameat2(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE) != 0:
        errno = ctypes.get_errno()
        raise OSError(errno, os.strerror(errno), str(a))


class BrokenRoot:
    """The storage root swapped with a regular file: chmod does not stop root, ENOTDIR does."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.file = root.with_name(root.name + ".blocker")
        self.file.write_bytes(b"not a directory")
        self.broken = False

    def toggle(self) -> None:
        exchange(self.root, self.file)
        self.broken = not self.broken


def storage_config(root: Path, **changes: Any) -> Config:
    return Config.from_env(
        fault_env(root, IMGCORE_FETCH_CONCURRENCY="4", IMGCORE_COMPRESS_POOL="thread"),
        **changes,
    )


async def test_a_storage_outage_is_retried_and_every_image_ends_done(
    tmp_path: Path, origin: OriginServer
) -> None:
    n = 40
    media = tmp_path / "media"
    media.mkdir()
    root = BrokenRoot(media)
    deferred: set[int] = set()
    with WebhookReceiver() as hooks:
        async with Engine(storage_config(tmp_path)) as engine, engine.running():
            request_id = await engine.submit_csv(
                make_csv(slow_urls(origin, n, 0.2, "store")), webhook_url=hooks.url
            )
            try:
                with anyio.fail_after(60):
                    while (await counters(engine, request_id))[0] < 5:
                        await anyio.sleep(0.05)
                    root.toggle()  # the root is a regular file now
                    # Broken until several images failed to be stored and wait for a retry.
                    while len(deferred) < 4:
                        deferred |= {
                            row.id
                            for row in await ended_rows(engine, request_id)
                            if row.status == "pending" and row.error_reason == "storage_error"
                        }
                        await anyio.sleep(0.05)
            finally:
                if root.broken:
                    root.toggle()
            with anyio.fail_after(90):
                info = await engine.wait(request_id, interval=0.1)
            await delivered(engine, request_id)
        assert info.status is RequestStatus.COMPLETED
        async with Engine(storage_config(tmp_path)) as engine:
            rows = await assert_each_image_ended_once(engine, request_id, media)
            assert [row.status for row in rows] == ["done"] * n
            assert all(row.attempts >= 2 for row in rows if row.id in deferred), "retried"
            await assert_delivered_once(engine, request_id, hooks)


async def test_a_storage_outage_longer_than_the_retries_fails_images_with_the_reason(
    tmp_path: Path, origin: OriginServer
) -> None:
    n = 6
    media = tmp_path / "media"
    media.write_bytes(b"not a directory")  # broken from the start, never repaired
    with WebhookReceiver() as hooks:
        async with (
            Engine(storage_config(tmp_path, max_attempts=2)) as engine,
            engine.running(),
        ):
            request_id = await engine.submit_csv(
                make_csv(slow_urls(origin, n, 0, "down")), webhook_url=hooks.url
            )
            with anyio.fail_after(60):
                info = await engine.wait(request_id, interval=0.1)
            await delivered(engine, request_id)
            assert (info.status, info.failed) == (RequestStatus.FAILED, n)
            rows = await ended_rows(engine, request_id)
            assert [(row.status, row.attempts) for row in rows] == [("failed", 2)] * n
            assert {row.error_reason for row in rows} == {"storage_error"}
            products = await engine.products(request_id)
            errors = {image.error for product in products for image in product.images}
            assert all(error and "cannot write" in error for error in errors), errors
            await assert_delivered_once(engine, request_id, hooks, status="Failed")
        media.unlink()
        async with Engine(storage_config(tmp_path)) as engine:
            await assert_each_image_ended_once(engine, request_id, media)


# -- the webhook receiver down ------------------------------------------------------------------


async def test_a_webhook_receiver_down_at_the_end_gets_the_delivery_once_when_back(
    tmp_path: Path, origin: OriginServer
) -> None:
    port = free_port()  # where the receiver will be; nothing listens there yet
    hook_url = f"http://127.0.0.1:{port}/hook"
    env = fault_env(tmp_path, IMGCORE_WEBHOOK_RETRY_SCHEDULE=",".join(["0.3"] * 40))
    async with Engine(Config.from_env(env)) as engine:
        with ApiServer(env=env, cwd=tmp_path, startup_timeout=STARTUP) as server:
            request_id = await upload(server, make_csv(slow_urls(origin, 3, 0, "hook")), hook_url)
            with anyio.fail_after(60):
                info = await engine.wait(request_id, interval=0.1)
                while (await engine.deliveries(request_id))[0].attempts < 3:
                    await anyio.sleep(0.1)
        # Stopped (SIGTERM) while the delivery waits for a retry; it outlives the process.
        (waiting,) = await engine.deliveries(request_id)
        assert waiting.status == "pending" and waiting.last_error, waiting
        with (
            WebhookReceiver(port=port) as hooks,
            ApiServer(env=env, cwd=tmp_path, startup_timeout=STARTUP),
        ):
            await anyio.to_thread.run_sync(hooks.wait, 1, 30)
            await delivered(engine, request_id)
            # Another retry would come within 0.36 s: wait out a few to see that none does.
            await anyio.sleep(1.5)
        assert info.status is RequestStatus.COMPLETED
        (delivery,) = await engine.deliveries(request_id)
        assert delivery.attempts > waiting.attempts >= 3
        await assert_delivered_once(engine, request_id, hooks)
        await assert_each_image_ended_once(engine, request_id, tmp_path / "media")
