"""The image deadline (issue #16 finding 8): an origin that stalls cannot hold a request for
minutes. The deadline bounds one download and every attempt after it, restarts included."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import anyio
import pytest
import sqlalchemy as sa
from imgcore import Config, Engine, FetchError
from imgcore._db.tables import images
from imgcore._fetch import Fetcher, FetchOptions
from imgcore.states import RequestStatus
from support.csvgen import make_csv
from support.origin import OriginServer

pytestmark = pytest.mark.anyio

PHOTO = "img/s03_coffee.jpg"


def config_for(tmp_path: Path, **changes: Any) -> Config:
    return Config(
        database_url=f"sqlite+aiosqlite:///{tmp_path}/imgcore.sqlite3",
        storage_url=f"file://{tmp_path}/media",
        fetch_allow=("127.0.0.1/32",),
        compress_pool="thread",
        workers=2,
        poll_interval=0.05,
        lease_seconds=5,
    ).replace(**changes)


async def image_rows(engine: Engine, request_id: Any) -> list[Any]:
    def read(conn: sa.Connection) -> list[Any]:
        query = sa.select(images).where(images.c.request_id == request_id).order_by(images.c.id)
        return list(conn.execute(query).all())

    return await engine.database.read(read)


# -- one download ---------------------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/stall", f"/slow/600/{PHOTO}"])
async def test_a_download_stops_at_the_deadline_within_an_attempt(
    origin: OriginServer, path: str
) -> None:
    options = FetchOptions(allow=("127.0.0.1/32",), read_timeout=30, total_timeout=60)
    async with Fetcher(options) as fetcher:
        began = time.monotonic()
        with pytest.raises(FetchError) as caught:
            await fetcher.fetch(origin.url(path), deadline=began + 1.0)
        took = time.monotonic() - began
    assert caught.value.reason == "deadline_exceeded"
    assert not caught.value.transient
    assert "the image deadline passed during attempt 1" in str(caught.value)
    assert 0.9 < took < 3, took


async def test_a_retry_that_cannot_start_before_the_deadline_is_not_waited_for(
    origin: OriginServer,
) -> None:
    options = FetchOptions(allow=("127.0.0.1/32",), max_attempts=4, backoff_max=30)
    async with Fetcher(options) as fetcher:
        began = time.monotonic()
        with pytest.raises(FetchError) as caught:
            await fetcher.fetch(origin.url("/status/503?retry_after=20"), deadline=began + 5)
        took = time.monotonic() - began
    assert caught.value.reason == "deadline_exceeded"
    assert "before attempt 2 (last error: HTTP 503" in str(caught.value)
    assert origin.hits("/status/503") == 1
    assert took < 2, took


# -- every attempt of an image --------------------------------------------------------------------


@pytest.mark.parametrize(
    "changes",
    [
        # A read timeout longer than the deadline: the deadline cuts the attempt itself.
        {"fetch_read_timeout": 30.0},
        # Short reads: attempts fail fast and are retried, by the downloader and then by
        # processing again, until the deadline ends them.
        {"fetch_read_timeout": 0.3, "fetch_max_attempts": 2, "max_attempts": 50},
    ],
    ids=["one-long-attempt", "many-short-attempts"],
)
async def test_a_stalled_origin_fails_its_image_at_the_deadline_and_the_request_ends(
    tmp_path: Path, origin: OriginServer, changes: dict[str, Any]
) -> None:
    config = config_for(tmp_path, image_deadline=2.5, **changes)
    csv = make_csv([[origin.url(f"/corpus/{PHOTO}")], [origin.url("/stall")]])
    async with Engine(config) as engine, engine.running():
        began = time.monotonic()
        request_id = await engine.submit_csv(csv)
        with anyio.fail_after(20):
            info = await engine.wait(request_id, interval=0.05)
        took = time.monotonic() - began
        healthy, stalled = await image_rows(engine, request_id)
    assert (info.status, info.done, info.failed) == (RequestStatus.COMPLETED, 1, 1)
    assert healthy.status == "done"
    assert (stalled.status, stalled.error_reason) == ("failed", "deadline_exceeded")
    assert "image deadline" in stalled.error
    # Without the deadline: 30 s for the one read, or attempts retried for minutes.
    assert took < 10, took
    assert (stalled.finished_at - stalled.started_at).total_seconds() < 4.5


async def test_the_deadline_counts_from_the_first_attempt_across_a_restart(
    tmp_path: Path, origin: OriginServer
) -> None:
    config = config_for(tmp_path, image_deadline=3.0, fetch_read_timeout=30.0)
    async with Engine(config) as engine:
        request_id = await engine.submit_csv(make_csv([[origin.url("/stall")]]))
        async with engine.running():
            with anyio.fail_after(10):
                while origin.hits("/stall") == 0:
                    await anyio.sleep(0.05)
            await anyio.sleep(2.5)
        # Stopped: the image went back to the queue, uncounted, with its first claim time.
        (row,) = await image_rows(engine, request_id)
        assert (row.status, row.started_at is not None) == ("pending", True)
    async with Engine(config) as engine, engine.running():
        with anyio.fail_after(20):
            await engine.wait(request_id, interval=0.05)
        (row,) = await image_rows(engine, request_id)
    assert (row.status, row.error_reason) == ("failed", "deadline_exceeded")
    # From the first claim: 3 s (a deadline restarted with the engine would end after 5.5 s).
    took = (row.finished_at - row.started_at).total_seconds()
    assert took < 4.5, f"the deadline restarted with the engine: {took:.1f} s"


async def test_an_image_past_its_deadline_when_claimed_fails_without_a_download(
    tmp_path: Path, origin: OriginServer
) -> None:
    config = config_for(tmp_path, image_deadline=1.0)
    async with Engine(config) as engine:
        request_id = await engine.submit_csv(make_csv([[origin.url(f"/corpus/{PHOTO}")]]))
        # As if first claimed a minute ago, then lost.
        await engine.database.write(
            lambda conn: conn.execute(
                images.update().values(started_at=sa.func.datetime("now", "-60 seconds"))
            )
        )
        async with engine.running():
            with anyio.fail_after(10):
                info = await engine.wait(request_id, interval=0.05)
        (row,) = await image_rows(engine, request_id)
    assert (info.status, row.error_reason) == (RequestStatus.FAILED, "deadline_exceeded")
    assert row.error == "the image deadline of 1 s passed before attempt 1"
    assert origin.hits(f"/corpus/{PHOTO}") == 0
    assert info.error == (
        "1 of 1 images failed: 1 deadline_exceeded (not finished before the image deadline)"
    )


async def test_an_operator_retry_gets_a_fresh_deadline(
    tmp_path: Path, origin: OriginServer
) -> None:
    config = config_for(tmp_path, image_deadline=1.0, fetch_read_timeout=30.0)
    async with Engine(config) as engine, engine.running():
        request_id = await engine.submit_csv(make_csv([[origin.url(f"/slow/2/{PHOTO}")]]))
        with anyio.fail_after(10):
            await engine.wait(request_id, interval=0.05)
        assert (await engine.status(request_id)).failed == 1
        # The origin got faster: a longer deadline.
        await engine.database.write(
            lambda conn: conn.execute(images.update().values(url=origin.url(f"/corpus/{PHOTO}")))
        )
        assert await engine.retry_failed(request_id) == 1
        with anyio.fail_after(10):
            info = await engine.wait(request_id, interval=0.05)
    assert (info.status, info.done, info.error) == (RequestStatus.COMPLETED, 1, None)
