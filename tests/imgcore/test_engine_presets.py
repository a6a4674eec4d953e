"""Presets end to end through the Engine: SQLite, file storage, the local executor with its
worker processes, a real origin."""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Any

import anyio
import pytest
from imgcore import Config, Engine, UnknownPresetError
from imgcore.states import ImageStatus, RequestStatus
from PIL import Image
from support.csvgen import make_csv, photo_urls
from support.origin import OriginServer
from support.stored import stored_keys

pytestmark = pytest.mark.anyio

SHOP = """
[[presets.shop.variants]]
name = "zoom"
width = 1200
height = 1200

[[presets.shop.variants]]
name = "page"
width = 600
height = 600
format = "WEBP"

[[presets.shop.variants]]
name = "tile"
fit = "cover"
width = 200
height = 200
format = "AVIF"

[[presets.shop.variants]]
name = "thumb"
fit = "pad"
width = 100
height = 100
"""


def config_for(tmp_path: Path, presets: str = SHOP, **changes: Any) -> Config:
    path = tmp_path / "presets.toml"
    path.write_text(presets)
    return Config(
        database_url=f"sqlite+aiosqlite:///{tmp_path}/imgcore.sqlite3",
        storage_url=f"file://{tmp_path}/media",
        public_url="http://127.0.0.1:8000/media",
        fetch_allow=("127.0.0.1/32",),
        fetch_max_attempts=1,
        poll_interval=0.05,
        lease_seconds=5,
        workers=2,
        presets_file=str(path),
    ).replace(**changes)


async def run_until_done(engine: Engine, request_id: Any, timeout: float = 60) -> Any:
    async with engine.running():
        with anyio.fail_after(timeout):
            return await engine.wait(request_id, interval=0.05)


async def test_each_variant_of_each_image_is_stored_under_its_own_key(
    tmp_path: Path, origin: OriginServer
) -> None:
    async with Engine(config_for(tmp_path)) as engine:
        request_id = await engine.submit_csv(make_csv([photo_urls(origin, 2)]), preset="catalog")
        info = await run_until_done(engine, request_id)
        (product,) = await engine.products(request_id)
        keys = stored_keys(engine.storage)
    assert (info.status, info.preset) == (RequestStatus.COMPLETED, "catalog")
    expected = []
    for image in product.images:
        assert [(v.name, v.format) for v in image.variants] == [
            ("large", "JPEG"),
            ("medium", "WEBP"),
            ("thumb", "JPEG"),
        ]
        assert image.output_url == image.variants[0].url
        base = f"requests/{request_id}/{image.id}"
        assert [v.key for v in image.variants] == [
            f"{base}.jpg",
            f"{base}-medium.webp",
            f"{base}-thumb.jpg",
        ]
        expected += [v.key for v in image.variants]
        thumb = image.variants[2]
        assert (thumb.width, thumb.height) == (160, 160)
        data = (tmp_path / "media" / thumb.key).read_bytes()
        assert thumb.bytes == len(data)
        assert Image.open(io.BytesIO(data)).size == (160, 160)
        assert image.content_hash is not None
        assert len(image.content_hash) == 64
    assert keys == sorted(expected)


async def test_the_origin_sees_one_get_per_image_for_a_four_variant_preset(
    tmp_path: Path, origin: OriginServer
) -> None:
    async with Engine(config_for(tmp_path)) as engine:
        request_id = await engine.submit_csv(make_csv([photo_urls(origin, 4)]), preset="shop")
        info = await run_until_done(engine, request_id)
        (product,) = await engine.products(request_id)
    assert info.done == 4
    assert origin.total_hits() == 4
    assert all(len(image.variants) == 4 for image in product.images)
    assert len(stored_keys(engine.storage)) == 16


async def test_the_recorded_preset_is_used_when_the_file_changes_later(
    tmp_path: Path, origin: OriginServer
) -> None:
    async with Engine(config_for(tmp_path)) as engine:
        request_id = await engine.submit_csv(make_csv([photo_urls(origin, 1)]), preset="shop")
    changed = SHOP.replace('name = "thumb"', 'name = "mini"').replace("width = 1200", "width = 50")
    async with Engine(config_for(tmp_path, changed)) as engine:
        await run_until_done(engine, request_id)
        (product,) = await engine.products(request_id)
    (image,) = product.images
    assert [v.name for v in image.variants] == ["zoom", "page", "tile", "thumb"]
    assert image.variants[0].width > 50


async def test_an_unknown_preset_stores_nothing_and_names_the_known_ones(
    tmp_path: Path, origin: OriginServer
) -> None:
    async with Engine(config_for(tmp_path)) as engine:
        with pytest.raises(UnknownPresetError) as caught:
            await engine.submit_csv(make_csv([photo_urls(origin, 1)]), preset="nope")
        _, total = await engine.list_requests()
    assert caught.value.known == ["default", "catalog", "shop"]
    assert total == 0


async def test_the_output_csv_has_a_column_per_further_variant_and_the_details(
    tmp_path: Path, origin: OriginServer
) -> None:
    async with Engine(config_for(tmp_path)) as engine:
        urls = photo_urls(origin, 2)
        request_id = await engine.submit_csv(make_csv([urls]), preset="catalog")
        await run_until_done(engine, request_id)
        (product,) = await engine.products(request_id)
        text = b"".join([chunk async for chunk in await engine.output_csv(request_id)]).decode()
    header, row = list(csv.reader(io.StringIO(text)))
    assert header[3:] == [
        "Output Image Urls",
        "Output Image Urls (medium)",
        "Output Image Urls (thumb)",
        "Source Sizes",
        "Source SHA-256",
        "Output Sizes (large)",
        "Output Sizes (medium)",
        "Output Sizes (thumb)",
        "Output Bytes (large)",
        "Output Bytes (medium)",
        "Output Bytes (thumb)",
        "Errors",
    ]
    cells = dict(zip(header, row, strict=True))
    images = product.images
    assert cells["Output Image Urls"] == ",".join(i.variants[0].url for i in images)
    assert cells["Output Image Urls (thumb)"] == ",".join(i.variants[2].url for i in images)
    assert cells["Source Sizes"] == ",".join(f"{i.input_width}x{i.input_height}" for i in images)
    assert cells["Source SHA-256"] == ",".join(str(i.content_hash) for i in images)
    assert cells["Output Sizes (thumb)"] == "160x160,160x160"
    assert cells["Output Bytes (medium)"] == ",".join(str(i.variants[1].bytes) for i in images)


async def test_a_failed_image_of_a_preset_keeps_no_variant(
    tmp_path: Path, origin: OriginServer
) -> None:
    async with Engine(config_for(tmp_path)) as engine:
        urls = [*photo_urls(origin, 1), origin.url("/status/404")]
        request_id = await engine.submit_csv(make_csv([urls]), preset="catalog")
        info = await run_until_done(engine, request_id)
        (product,) = await engine.products(request_id)
    assert (info.done, info.failed) == (1, 1)
    done, failed = product.images
    assert failed.status is ImageStatus.FAILED
    assert failed.variants == ()
    assert stored_keys(engine.storage) == sorted(v.key for v in done.variants)


async def test_deleting_a_request_removes_every_variant(
    tmp_path: Path, origin: OriginServer
) -> None:
    async with Engine(config_for(tmp_path)) as engine:
        request_id = await engine.submit_csv(make_csv([photo_urls(origin, 2)]), preset="shop")
        await run_until_done(engine, request_id)
        assert len(stored_keys(engine.storage)) == 8
        assert await engine.delete_request(request_id)
        assert stored_keys(engine.storage) == []


async def test_deleting_a_request_removes_what_a_failed_images_late_attempt_stored(
    tmp_path: Path, origin: OriginServer
) -> None:
    async with Engine(config_for(tmp_path)) as engine:
        request_id = await engine.submit_csv(make_csv([[origin.url("/status/404")]]), preset="shop")
        await run_until_done(engine, request_id)
        (product,) = await engine.products(request_id)
        (image,) = product.images
        assert image.status is ImageStatus.FAILED
        # As an attempt still running on a lost lease when its image was cancelled leaves it.
        late = f"requests/{request_id}/{image.id}.jpg"
        await engine.storage.put(late, b"\xff\xd8\xff late", content_type="image/jpeg")
        assert stored_keys(engine.storage) == [late]
        assert await engine.delete_request(request_id)
        assert stored_keys(engine.storage) == []


async def test_default_writes_one_variant_at_the_images_key(
    tmp_path: Path, origin: OriginServer
) -> None:
    async with Engine(config_for(tmp_path)) as engine:
        request_id = await engine.submit_csv(make_csv([photo_urls(origin, 1)]))
        info = await run_until_done(engine, request_id)
        (product,) = await engine.products(request_id)
    (image,) = product.images
    assert info.preset == "default"
    assert [(v.name, v.key) for v in image.variants] == [("full", image.storage_key)]
    assert image.storage_key == f"requests/{request_id}/{image.id}.jpg"
