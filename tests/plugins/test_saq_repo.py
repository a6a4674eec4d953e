"""The image queries the SAQ executor uses: claiming chosen images, listing unfinished ones."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from typing import Any
from uuid import UUID

import pytest
import sqlalchemy as sa
from imgcore import Config, Engine
from imgcore._clock import utcnow
from imgcore._db import images as images_db
from imgcore._db.images import ImageResult
from imgcore.states import ImageStatus, RequestStatus
from support.saq import image_rows, make_csv

pytestmark = pytest.mark.anyio

LEASE = timedelta(seconds=10)


@pytest.fixture
async def engine(tmp_path: Path) -> AsyncIterator[Engine]:
    config = Config(
        database_url=f"sqlite+aiosqlite:///{tmp_path}/imgcore.sqlite3",
        storage_url=f"file://{tmp_path}/media",
    )
    async with Engine(config) as engine:
        yield engine


async def submit(engine: Engine, n: int) -> tuple[UUID, list[int]]:
    urls = [f"https://img.example/{i}.jpg" for i in range(n)]
    request_id = await engine.submit_csv(make_csv(urls))
    return request_id, [row.id for row in await image_rows(engine, request_id)]


async def test_claim_image_ids_leases_only_the_given_images(engine: Engine) -> None:
    request_id, ids = await submit(engine, 3)

    def block(conn: sa.Connection) -> Any:
        claims = images_db.claim_image_ids(conn, ids[:2], owner="w1", lease=LEASE, now=utcnow())
        return claims

    claims = await engine.database.write(block)
    assert [(c.id, c.attempts) for c in claims] == [(ids[0], 1), (ids[1], 1)]
    rows = await image_rows(engine, request_id)
    assert [(r.status, r.lease_owner) for r in rows] == [
        ("processing", "w1"),
        ("processing", "w1"),
        ("pending", None),
    ]
    assert (await engine.status(request_id)).status is RequestStatus.IN_PROCESS


async def test_claim_image_ids_skips_ended_deferred_and_leased_images(engine: Engine) -> None:
    _, ids = await submit(engine, 3)
    now = utcnow()

    def block(conn: sa.Connection) -> Any:
        done, deferred, _still_leased = images_db.claim_image_ids(
            conn, ids, owner="w1", lease=LEASE, now=now
        )
        images_db.finish_image(
            conn,
            done,
            owner="w1",
            result=ImageResult(status=ImageStatus.DONE),
            now=now,
        )
        images_db.defer_image(
            conn,
            deferred,
            owner="w1",
            at=now + LEASE,
            error_reason="timeout",
            error="slow",
        )
        again = images_db.claim_image_ids(conn, ids, owner="w2", lease=LEASE, now=now)
        return again

    again = await engine.database.write(block)
    assert again == []


async def test_claim_image_ids_takes_over_an_expired_lease(engine: Engine) -> None:
    _, ids = await submit(engine, 1)
    now = utcnow()

    def block(conn: sa.Connection) -> Any:
        images_db.claim_image_ids(conn, ids, owner="dead", lease=LEASE, now=now)
        claims = images_db.claim_image_ids(conn, ids, owner="w2", lease=LEASE, now=now + LEASE)
        return claims

    claims = await engine.database.write(block)
    assert [(c.id, c.attempts) for c in claims] == [(ids[0], 2)]


async def test_image_due_at_is_the_lease_end_of_an_unfinished_image_and_none_once_ended(
    engine: Engine,
) -> None:
    _, ids = await submit(engine, 1)
    now = utcnow()

    def block(conn: sa.Connection) -> Any:
        (claim,) = images_db.claim_image_ids(conn, ids, owner="w1", lease=LEASE, now=now)
        leased_until = images_db.image_due_at(conn, ids[0])
        images_db.finish_image(
            conn,
            claim,
            owner="w1",
            result=ImageResult(status=ImageStatus.FAILED),
            now=now,
        )
        ended = images_db.image_due_at(conn, ids[0])
        unknown = images_db.image_due_at(conn, ids[0] + 1000)
        return leased_until, ended, unknown

    leased_until, ended, unknown = await engine.database.write(block)
    assert leased_until == now + LEASE
    assert (ended, unknown) == (None, None)


async def test_pending_image_ids_pages_through_unfinished_images(engine: Engine) -> None:
    first, first_ids = await submit(engine, 5)
    _, second_ids = await submit(engine, 2)
    now = utcnow()

    def block(conn: sa.Connection) -> Any:
        (claim,) = images_db.claim_image_ids(conn, first_ids[:1], owner="w", lease=LEASE, now=now)
        images_db.finish_image(
            conn,
            claim,
            owner="w",
            result=ImageResult(status=ImageStatus.DONE),
            now=now,
        )
        images_db.claim_image_ids(conn, first_ids[1:2], owner="w", lease=LEASE, now=now)
        page1 = images_db.pending_image_ids(conn, first, limit=2)
        page2 = images_db.pending_image_ids(conn, first, after_id=page1[-1], limit=2)
        page3 = images_db.pending_image_ids(conn, first, after_id=page2[-1], limit=2)
        everything = images_db.pending_image_ids(conn, None)
        return page1, page2, page3, everything

    page1, page2, page3, everything = await engine.database.write(block)
    assert page1 + page2 + page3 == first_ids[1:], "processing counts as unfinished, done not"
    assert page3 == []
    assert everything == first_ids[1:] + second_ids
