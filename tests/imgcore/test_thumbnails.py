"""Thumbnails: made from a done image's stored output when first asked for, then kept."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any
from uuid import UUID, uuid4

import pytest
from imgcore import Engine, ImageNotFoundError
from imgcore._compress import InvalidOptionsError
from imgcore._thumbnails import ThumbnailOptions, thumbnail_key
from imgcore.models import ImageInfo
from imgcore.states import ImageStatus
from support.csvgen import make_csv
from support.images import decode
from support.origin import OriginServer
from support.stored import stored_keys

from .test_engine import config_for, run_until_done

pytestmark = pytest.mark.anyio


@pytest.fixture
async def engine(tmp_path: Path) -> AsyncIterator[Engine]:
    async with Engine(config_for(tmp_path)) as engine:
        yield engine


async def processed(engine: Engine, urls: list[str]) -> tuple[UUID, list[ImageInfo]]:
    """A request of ``urls`` (one product) run to its end, with its images."""
    request_id = await engine.submit_csv(make_csv([urls]))
    await run_until_done(engine, request_id)
    return request_id, list((await engine.products(request_id))[0].images)


async def stored(engine: Engine) -> list[str]:
    return stored_keys(engine.storage)


async def test_a_thumbnail_is_made_from_the_output_once_then_served_stored(
    engine: Engine, origin: OriginServer
) -> None:
    # 1632 x 1224 with EXIF orientation 1; the output keeps the size.
    request_id, (image,) = await processed(engine, [origin.url("/corpus/img/s2_00.jpg")])
    assert image.storage_key is not None and image.thumbnail_key is None

    first = await engine.thumbnail(request_id, image.id)

    thumb = decode(first)
    assert thumb.format == "JPEG"
    assert thumb.size == (256, 192)
    key = thumbnail_key(request_id, image.id)
    assert await stored(engine) == sorted([image.storage_key, key])
    assert await engine.storage.get(key) == first
    (recorded,) = (await engine.products(request_id))[0].images
    assert recorded.thumbnail_key == key
    # Kept: with the output gone, the stored thumbnail is still served.
    await engine.storage.delete(image.storage_key)
    assert await engine.thumbnail(str(request_id), image.id) == first


async def test_a_recorded_thumbnail_that_was_lost_is_made_again(
    engine: Engine, origin: OriginServer
) -> None:
    request_id, (image,) = await processed(engine, [origin.url("/corpus/img/s03_coffee.jpg")])
    first = await engine.thumbnail(request_id, image.id)
    await engine.storage.delete(thumbnail_key(request_id, image.id))

    assert await engine.thumbnail(request_id, image.id) == first
    assert await engine.storage.get(thumbnail_key(request_id, image.id)) == first


async def test_only_done_images_of_the_request_have_thumbnails(
    engine: Engine, origin: OriginServer
) -> None:
    ok, broken = origin.url("/corpus/img/s03_coffee.jpg"), origin.url("/nonimage")
    request_id, (done, failed) = await processed(engine, [ok, broken])
    assert failed.status is ImageStatus.FAILED
    other = await engine.submit_csv(make_csv([[origin.url("/corpus/img/s03_rocket.jpg")]]))
    pending = (await engine.products(other))[0].images[0]
    assert pending.status is ImageStatus.PENDING

    for rid, image_id in [
        (request_id, failed.id),  # failed: no output
        (other, pending.id),  # not processed yet
        (other, done.id),  # done, but another request's
        (request_id, done.id + 1000),  # no such image
        (uuid4(), done.id),  # no such request
    ]:
        with pytest.raises(ImageNotFoundError, match=f"no done image {image_id} in request"):
            await engine.thumbnail(rid, image_id)
    assert await stored(engine) == [done.storage_key]


async def test_a_done_image_whose_output_is_gone_has_no_thumbnail(
    engine: Engine, origin: OriginServer
) -> None:
    request_id, (image,) = await processed(engine, [origin.url("/corpus/img/s03_chelsea.jpg")])
    assert image.storage_key is not None
    await engine.storage.delete(image.storage_key)

    with pytest.raises(ImageNotFoundError):
        await engine.thumbnail(request_id, image.id)
    assert await stored(engine) == []


async def test_deleting_a_request_deletes_the_thumbnails_made(
    engine: Engine, origin: OriginServer
) -> None:
    request_id, images = await processed(
        engine, [origin.url("/corpus/img/s03_coffee.jpg"), origin.url("/corpus/img/s03_rocket.jpg")]
    )
    for image in images:
        await engine.thumbnail(request_id, image.id)
    assert len(await stored(engine)) == 4

    assert await engine.delete_request(request_id)
    assert await stored(engine) == []


@pytest.mark.parametrize(
    "options", [{"size": 0}, {"size": True}, {"quality": 0}, {"quality": 96}, {"quality": True}]
)
def test_invalid_thumbnail_options_are_refused(options: dict[str, Any]) -> None:
    with pytest.raises(InvalidOptionsError):
        ThumbnailOptions(**options)
