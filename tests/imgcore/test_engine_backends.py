"""The whole pipeline on each real database: submit, process with two engines, settle once."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import anyio
import pytest
from imgcore import Config, ConfigError, Engine
from imgcore.states import RequestStatus
from support.csvgen import PHOTOS
from support.origin import OriginServer
from support.services import SERVERS, migrate, require, scratch_database
from support.stored import stored_keys

pytestmark = pytest.mark.anyio


@pytest.fixture(params=sorted(SERVERS))
def server_url(request: pytest.FixtureRequest) -> Iterator[str]:
    name, url = SERVERS[request.param]
    require(name, url)
    with scratch_database(url) as scratch:
        yield scratch


async def migrated(server_url: str, tmp_path: Path) -> Config:
    """The server database migrated, and a config on it (one compression worker, local
    origin allowed, media under tmp_path)."""
    await migrate(server_url)
    return Config(
        database_url=server_url,
        storage_url=f"file://{tmp_path}/media",
        fetch_allow=("127.0.0.1/32",),
        poll_interval=0.05,
        workers=1,
    )


async def test_a_server_database_must_be_migrated_first(server_url: str, tmp_path: Path) -> None:
    config = Config(database_url=server_url, storage_url=f"file://{tmp_path}/media")
    with pytest.raises(ConfigError, match="imgcore db upgrade"):
        async with Engine(config):
            pass


async def test_two_engines_process_a_request_once_on_a_server_database(
    server_url: str, tmp_path: Path, origin: OriginServer
) -> None:
    config = await migrated(server_url, tmp_path)
    urls = [origin.url(f"/corpus/img/{PHOTOS[i % 4]}?b{i}") for i in range(30)]
    lines = ["S. No.,Product Name,Input Image Urls"]
    lines += [
        f'{k + 1},P{k + 1},"{",".join(urls[i : i + 3])}"' for k, i in enumerate(range(0, 30, 3))
    ]
    async with Engine(config) as first, Engine(config) as second:
        request_id = await first.submit_csv("\n".join(lines).encode())
        async with first.running(), second.running():
            with anyio.fail_after(60):
                info = await first.wait(request_id, interval=0.05)
        assert (info.status, info.done, info.failed) == (RequestStatus.COMPLETED, 30, 0)
        for url in urls:
            assert origin.hits(url.removeprefix(origin.base_url)) == 1
        keys = stored_keys(first.storage)
        assert len(keys) == 30  # an output per image (thumbnails come when first shown)
        data = b"".join([chunk async for chunk in await second.output_csv(request_id)])
        assert data.count(b"\n") == 11


async def test_a_preset_is_recorded_and_its_variants_listed_on_a_server_database(
    server_url: str, tmp_path: Path, origin: OriginServer
) -> None:
    config = await migrated(server_url, tmp_path)
    urls = [origin.url(f"/corpus/img/{PHOTOS[i]}?preset{i}") for i in range(2)]
    csv = f'S. No.,Product Name,Input Image Urls\n1,P1,"{",".join(urls)}"\n'
    async with Engine(config) as engine:
        request_id = await engine.submit_csv(csv.encode(), preset="catalog")
        async with engine.running():
            with anyio.fail_after(60):
                info = await engine.wait(request_id, interval=0.05)
        (product,) = await engine.products(request_id)
        assert (info.status, info.preset) == (RequestStatus.COMPLETED, "catalog")
        names = [[v.name for v in image.variants] for image in product.images]
        assert names == [["large", "medium", "thumb"]] * 2
        assert all(image.content_hash and len(image.content_hash) == 64 for image in product.images)
        assert stored_keys(engine.storage) == sorted(
            v.key for image in product.images for v in image.variants
        )
        assert await engine.delete_request(request_id)
        assert stored_keys(engine.storage) == []


async def test_two_engines_reimporting_the_same_sources_keep_one_set_of_objects_on_a_server(
    server_url: str, tmp_path: Path, origin: OriginServer
) -> None:
    config = await migrated(server_url, tmp_path)
    # Slow and without validators: both engines hold downloads of the same source at once,
    # so some images record a rendition the other engine made a moment before.
    urls = [origin.url(f"/slow/0.2/img/{PHOTOS[i % 4]}?twin{i}") for i in range(12)]
    csv = f'S. No.,Product Name,Input Image Urls\n1,P1,"{",".join(urls)}"\n'.encode()
    async with Engine(config) as first, Engine(config) as second:
        a = await first.submit_csv(csv)
        b = await second.submit_csv(csv)
        async with first.running(), second.running():
            with anyio.fail_after(60):
                done = [await first.wait(a, interval=0.05), await second.wait(b, interval=0.05)]
        assert [info.status for info in done] == [RequestStatus.COMPLETED] * 2
        (one,), (two,) = await first.products(a), await first.products(b)
        assert [i.storage_key for i in one.images] == [i.storage_key for i in two.images]
        assert stored_keys(first.storage) == sorted(str(i.storage_key) for i in one.images)
        assert await first.delete_request(a)
        assert stored_keys(first.storage) == sorted(str(i.storage_key) for i in two.images)
        assert await first.delete_request(b)
        assert stored_keys(first.storage) == []
