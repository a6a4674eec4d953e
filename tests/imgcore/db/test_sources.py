"""Remembered sources and renditions (imgcore._db.sources) on SQLite, PostgreSQL and MariaDB."""

from __future__ import annotations

from datetime import timedelta
from typing import Any
from uuid import UUID

import anyio
import pytest
import sqlalchemy as sa
from imgcore._db import images as images_db
from imgcore._db import requests as requests_db
from imgcore._db import sources as sources_db
from imgcore._db.images import ImageResult
from imgcore._db.tables import images, renditions, sources
from imgcore.contracts import Claim
from imgcore.states import ImageStatus
from sqlalchemy.ext.asyncio import AsyncEngine

from .conftest import NOW, Submit, reader

pytestmark = pytest.mark.anyio

RECIPE = "r" * 64
HASH = "c" * 64


def made(key: str, content_hash: str = HASH) -> ImageResult:
    return ImageResult(
        status=ImageStatus.DONE,
        storage_key=key,
        input_bytes=1000,
        output_bytes=400,
        variants=[{"name": "default", "key": key, "format": "JPEG", "width": 1, "height": 1}],
        content_hash=content_hash,
    )


async def claims(engine: AsyncEngine, owner: str = "w1") -> list[Claim]:
    async with engine.begin() as conn:
        return await conn.run_sync(
            images_db.claim_images, owner=owner, limit=100, lease=timedelta(minutes=5), now=NOW
        )


async def run(engine: AsyncEngine, fn: Any, *args: Any, **kwargs: Any) -> Any:
    async with engine.begin() as conn:
        return await conn.run_sync(fn, *args, **kwargs)


async def finish_new(
    engine: AsyncEngine,
    claim: Claim,
    key: str,
    *,
    owner: str = "w1",
    etag: str | None = '"1"',
    content_hash: str = HASH,
) -> sources_db.Recorded:
    return await run(
        engine,
        sources_db.finish_new,
        claim,
        owner=owner,
        client="",
        recipe=RECIPE,
        etag=etag,
        last_modified=None,
        result=made(key, content_hash),
        now=NOW,
    )


async def lookup(engine: AsyncEngine, url: str) -> sources_db.Known | None:
    async with reader(engine).connect() as conn:
        return await conn.run_sync(sources_db.lookup, client="", url=url, recipe=RECIPE)


async def users(engine: AsyncEngine) -> list[int]:
    async with reader(engine).connect() as conn:
        return list((await conn.execute(sa.select(renditions.c.users))).scalars())


async def shown(engine: AsyncEngine, request_id: UUID) -> list[Any]:
    async with reader(engine).connect() as conn:
        result = await conn.execute(
            sa.select(images.c.storage_key, images.c.rendition_id, images.c.reused)
            .where(images.c.request_id == request_id)
            .order_by(images.c.id)
        )
        return list(result.all())


async def test_a_processed_image_remembers_its_source_and_rendition(
    engine: AsyncEngine, submit: Submit
) -> None:
    await submit([1])
    (claim,) = await claims(engine)
    recorded = await finish_new(engine, claim, "a.jpg")
    known = await lookup(engine, claim.url)
    assert recorded.ended and not recorded.adopted
    assert known is not None
    assert (known.etag, known.content_hash, known.checked_by) == ('"1"', HASH, claim.request_id)
    assert known.rendition_id is not None
    assert await users(engine) == [1]


async def test_a_source_unknown_or_of_another_recipe_has_no_rendition(
    engine: AsyncEngine, submit: Submit
) -> None:
    await submit([1])
    (claim,) = await claims(engine)
    await finish_new(engine, claim, "a.jpg")
    async with reader(engine).connect() as conn:
        other = await conn.run_sync(sources_db.lookup, client="", url=claim.url, recipe="x" * 64)
    assert await lookup(engine, "http://127.0.0.1/never.jpg") is None
    assert other is not None
    assert other.rendition_id is None


async def test_the_second_worker_to_record_the_same_content_adopts_the_first_rendition(
    engine: AsyncEngine, submit: Submit
) -> None:
    first, second = await submit([1]), await submit([1])
    found = await claims(engine)
    by_request = {claim.request_id: claim for claim in found}
    await finish_new(engine, by_request[first], "first.jpg")
    recorded = await finish_new(engine, by_request[second], "second.jpg")
    assert recorded.ended and recorded.adopted
    (mine,), (theirs,) = await shown(engine, second), await shown(engine, first)
    assert mine.storage_key == "first.jpg"
    assert mine.rendition_id == theirs.rendition_id
    assert await users(engine) == [2]


async def test_reusing_a_rendition_counts_a_user_and_marks_the_image_reused(
    engine: AsyncEngine, submit: Submit
) -> None:
    first, second = await submit([1]), await submit([1])
    by_request = {claim.request_id: claim for claim in await claims(engine)}
    await finish_new(engine, by_request[first], "a.jpg")
    known = await lookup(engine, by_request[first].url)
    assert known is not None
    assert known.rendition_id is not None
    outcome = await run(
        engine,
        sources_db.finish_reused,
        by_request[second],
        owner="w1",
        rendition_id=known.rendition_id,
        content_hash=known.content_hash,
        reason="not_modified",
        client="",
        now=NOW + timedelta(hours=1),
    )
    assert outcome is not None
    assert outcome[0] is True
    ((key, rendition_id, reused),) = await shown(engine, second)
    assert (key, rendition_id, reused) == ("a.jpg", known.rendition_id, "not_modified")
    assert await users(engine) == [2]
    again = await lookup(engine, by_request[first].url)
    assert again is not None
    assert (again.checked_at, again.checked_by) == (NOW + timedelta(hours=1), second)


async def test_reusing_a_rendition_that_is_gone_changes_nothing(
    engine: AsyncEngine, submit: Submit
) -> None:
    await submit([1])
    (claim,) = await claims(engine)
    outcome = await run(
        engine,
        sources_db.finish_reused,
        claim,
        owner="w1",
        rendition_id=12345,
        content_hash=HASH,
        reason="not_modified",
        client="",
        now=NOW,
    )
    ((key, rendition_id, reused),) = await shown(engine, claim.request_id)
    assert outcome is None
    assert (key, rendition_id, reused) == (None, None, None)


async def test_releasing_a_request_keeps_renditions_others_show_and_takes_the_rest(
    engine: AsyncEngine, submit: Submit
) -> None:
    first, second = await submit([2]), await submit([1])
    found = await claims(engine)
    mine = [claim for claim in found if claim.request_id == first]
    (theirs,) = [claim for claim in found if claim.request_id == second]
    await finish_new(engine, mine[0], "shared.jpg")  # p0/0.jpg: the second request names it
    await finish_new(engine, mine[1], "own.jpg", etag=None, content_hash="d" * 64)
    await finish_new(engine, theirs, "dropped.jpg")  # adopts shared.jpg
    gone, kept, _ = await run(engine, sources_db.release, first)
    assert gone == ["own.jpg"]
    assert kept == {"shared.jpg"}
    assert await users(engine) == [1]


async def test_a_lost_lease_records_no_rendition(engine: AsyncEngine, submit: Submit) -> None:
    await submit([1])
    (claim,) = await claims(engine)
    recorded = await finish_new(engine, claim, "a.jpg", owner="someone-else")
    assert not recorded.ended
    assert await users(engine) == []


async def test_a_validator_too_long_to_store_is_not_remembered(
    engine: AsyncEngine, submit: Submit
) -> None:
    await submit([1])
    (claim,) = await claims(engine)
    await finish_new(engine, claim, "a.jpg", etag='"' + "x" * 2000 + '"')
    async with reader(engine).connect() as conn:
        etag = (await conn.execute(sa.select(sources.c.etag))).scalar_one()
    assert etag is None


async def test_a_delete_that_waited_for_another_of_the_same_request_counts_nothing_off(
    engine: AsyncEngine, submit: Submit
) -> None:
    first, second = await submit([1]), await submit([1])
    by_request = {claim.request_id: claim for claim in await claims(engine)}
    await finish_new(engine, by_request[first], "a.jpg")
    await finish_new(engine, by_request[second], "b.jpg")  # adopts a.jpg: two users

    def delete(conn: sa.Connection) -> object:
        if not requests_db.lock_request(conn, first):
            return None
        released = sources_db.release(conn, first)
        requests_db.delete_request(conn, first)
        return released

    waited: list[object] = []

    async def other() -> None:
        async with engine.begin() as conn:
            waited.append(await conn.run_sync(delete))

    async with engine.connect() as conn:
        await conn.begin()
        assert await conn.run_sync(delete) is not None
        async with anyio.create_task_group() as tg:
            tg.start_soon(other)
            await anyio.sleep(0.3)  # the other delete waits for this one's lock
            await conn.commit()
    assert waited == [None]
    assert await users(engine) == [1], "the request's image was counted off once"


async def test_a_deleted_renditions_id_is_never_given_again(
    engine: AsyncEngine, submit: Submit
) -> None:
    first, second = await submit([1]), await submit([1], prefix="Other")
    by_request = {claim.request_id: claim for claim in await claims(engine)}
    await finish_new(engine, by_request[first], "a.jpg")
    before = await lookup(engine, by_request[first].url)
    await run(engine, sources_db.release, first)
    await run(engine, requests_db.delete_request, first)
    await finish_new(engine, by_request[second], "b.jpg", etag=None, content_hash="e" * 64)
    after = await lookup(engine, by_request[second].url)
    assert before is not None
    assert after is not None
    assert before.rendition_id is not None
    assert after.rendition_id is not None
    assert after.rendition_id > before.rendition_id


async def test_a_rendition_of_other_content_than_looked_up_is_not_taken(
    engine: AsyncEngine, submit: Submit
) -> None:
    first, second = await submit([1]), await submit([1])
    by_request = {claim.request_id: claim for claim in await claims(engine)}
    await finish_new(engine, by_request[first], "a.jpg")
    known = await lookup(engine, by_request[first].url)
    assert known is not None
    outcome = await run(
        engine,
        sources_db.finish_reused,
        by_request[second],
        owner="w1",
        rendition_id=known.rendition_id,
        content_hash="f" * 64,  # what another worker's lookup saw before the source changed
        reason="not_modified",
        client="",
        now=NOW,
    )
    assert outcome is None
    assert await users(engine) == [1]


async def test_a_source_without_renditions_is_forgotten(
    engine: AsyncEngine, submit: Submit
) -> None:
    first = await submit([1])
    (claim,) = await claims(engine)
    await finish_new(engine, claim, "a.jpg")
    _, _, left = await run(engine, sources_db.release, first)
    forgotten = await run(engine, sources_db.forget, left)
    assert forgotten == 1
    assert await lookup(engine, claim.url) is None
