"""Re-imports do only new work: one download per source, conditional re-fetch, reuse, and
deletes that keep what other requests show. Through the Engine: SQLite, file storage, the
local executor, a real origin with validators (``/versioned/``) and one without (``/corpus/``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any
from uuid import UUID

import anyio
import pytest
import sqlalchemy as sa
from imgcore import Config, Engine
from imgcore._db.tables import renditions, sources
from imgcore.models import ImageInfo
from imgcore.states import RequestStatus
from support.csvgen import PHOTOS, make_csv
from support.origin import OriginServer
from support.stored import stored_keys

pytestmark = pytest.mark.anyio


def config_for(tmp_path: Path, **changes: Any) -> Config:
    return Config(
        database_url=f"sqlite+aiosqlite:///{tmp_path}/imgcore.sqlite3",
        storage_url=f"file://{tmp_path}/media",
        public_url="http://127.0.0.1:8000/media",
        fetch_allow=("127.0.0.1/32",),
        fetch_max_attempts=1,
        poll_interval=0.05,
        lease_seconds=5,
        workers=2,
    ).replace(**changes)


def versioned(origin: OriginServer, n: int) -> list[str]:
    """``n`` distinct photo URLs on the origin, each with an ETag and a Last-Modified."""
    return [origin.url(f"/versioned/img/{PHOTOS[i % len(PHOTOS)]}?v{i}") for i in range(n)]


def plain(origin: OriginServer, n: int) -> list[str]:
    """``n`` distinct photo URLs on the origin, without validators."""
    return [origin.url(f"/corpus/img/{PHOTOS[i % len(PHOTOS)]}?p{i}") for i in range(n)]


async def import_csv(engine: Engine, rows: list[list[str]], **options: Any) -> UUID:
    """Submit ``rows`` and process them until the request ends Completed."""
    request_id = await engine.submit_csv(make_csv(rows), **options)
    async with engine.running():
        with anyio.fail_after(60):
            info = await engine.wait(request_id, interval=0.05)
    assert info.status is RequestStatus.COMPLETED, info.error
    return request_id


async def images_of(engine: Engine, request_id: UUID) -> list[ImageInfo]:
    return [image for p in await engine.products(request_id) for image in p.images]


def keys_of(image: ImageInfo) -> list[str]:
    return [v.key for v in image.variants]


async def test_a_url_named_in_several_rows_is_downloaded_once(
    tmp_path: Path, origin: OriginServer
) -> None:
    (url,) = plain(origin, 1)
    (other,) = versioned(origin, 1)
    async with Engine(config_for(tmp_path)) as engine:
        request_id = await import_csv(engine, [[url, other], [url], [other, url]])
        found = await images_of(engine, request_id)
        info = await engine.status(request_id)
    assert origin.hits(url.removeprefix(origin.base_url)) == 1
    assert origin.hits(other.removeprefix(origin.base_url)) == 1
    assert (info.done, info.reused) == (5, 3)
    for each in (url, other):
        same = [image for image in found if image.input_url == each]
        assert sorted(str(image.reused) for image in same) == sorted(
            ["None"] + ["same_content"] * (len(same) - 1)
        )
        assert len({tuple(keys_of(image)) for image in same}) == 1, "every row shows one output"
    assert len(stored_keys(engine.storage)) == 2


async def test_a_reimport_answered_304_reuses_the_outputs_without_a_download(
    tmp_path: Path, origin: OriginServer
) -> None:
    urls = versioned(origin, 3)
    async with Engine(config_for(tmp_path)) as engine:
        first = await import_csv(engine, [urls])
        stored = stored_keys(engine.storage)
        origin.reset()
        second = await import_csv(engine, [urls])
        before, after = await images_of(engine, first), await images_of(engine, second)
        info = await engine.status(second)
    assert origin.total_not_modified() == 3
    assert origin.total_body_bytes() == 0
    assert [image.reused for image in after] == ["not_modified"] * 3
    assert [keys_of(image) for image in after] == [keys_of(image) for image in before]
    assert [image.content_hash for image in after] == [image.content_hash for image in before]
    assert (info.done, info.reused) == (3, 3)
    assert stored_keys(engine.storage) == stored, "nothing new was stored"


async def test_an_origin_without_validators_that_sends_the_same_bytes_is_reused(
    tmp_path: Path, origin: OriginServer
) -> None:
    urls = plain(origin, 2)
    async with Engine(config_for(tmp_path)) as engine:
        first = await import_csv(engine, [urls])
        stored = stored_keys(engine.storage)
        second = await import_csv(engine, [urls])
        before, after = await images_of(engine, first), await images_of(engine, second)
    assert all(origin.hits(url.removeprefix(origin.base_url)) == 2 for url in urls)
    assert [image.reused for image in after] == ["same_content"] * 2
    assert [keys_of(image) for image in after] == [keys_of(image) for image in before]
    assert stored_keys(engine.storage) == stored


async def test_only_the_bumped_source_is_processed_again_and_its_outputs_change(
    tmp_path: Path, origin: OriginServer
) -> None:
    urls = versioned(origin, 3)
    async with Engine(config_for(tmp_path)) as engine:
        first = await import_csv(engine, [urls])
        origin.bump(f"img/{PHOTOS[1]}")
        second = await import_csv(engine, [urls])
        before, after = await images_of(engine, first), await images_of(engine, second)
        stored = stored_keys(engine.storage)
    assert [image.reused for image in after] == ["not_modified", None, "not_modified"]
    assert after[1].content_hash != before[1].content_hash
    assert keys_of(after[1]) != keys_of(before[1]), "a new object, from the new bytes"
    assert keys_of(after[0]) == keys_of(before[0])
    assert set(keys_of(before[1]) + keys_of(after[1])) <= set(stored), "the first keeps its own"


async def test_within_the_max_age_the_origin_is_not_asked(
    tmp_path: Path, origin: OriginServer
) -> None:
    urls = versioned(origin, 2)
    async with Engine(config_for(tmp_path, reuse_max_age=3600)) as engine:
        await import_csv(engine, [urls])
        origin.reset()
        second = await import_csv(engine, [urls])
        after = await images_of(engine, second)
    assert origin.total_hits() == 0
    assert [image.reused for image in after] == ["max_age"] * 2


async def test_past_the_max_age_the_origin_is_asked_again(
    tmp_path: Path, origin: OriginServer
) -> None:
    urls = versioned(origin, 1)
    async with Engine(config_for(tmp_path, reuse_max_age=0.2)) as engine:
        await import_csv(engine, [urls])
        await anyio.sleep(0.3)
        origin.reset()
        second = await import_csv(engine, [urls])
        after = await images_of(engine, second)
    assert origin.total_not_modified() == 1
    assert [image.reused for image in after] == ["not_modified"]


async def test_with_reuse_off_every_import_downloads_and_processes(
    tmp_path: Path, origin: OriginServer
) -> None:
    urls = versioned(origin, 2)
    async with Engine(config_for(tmp_path, reuse=False)) as engine:
        first = await import_csv(engine, [urls, urls])
        second = await import_csv(engine, [urls])
        before, after = await images_of(engine, first), await images_of(engine, second)
    assert origin.total_not_modified() == 0
    assert all(origin.hits(url.removeprefix(origin.base_url)) == 3 for url in urls)
    assert [image.reused for image in before + after] == [None] * 6
    assert len({tuple(keys_of(image)) for image in before + after}) == 6


async def test_another_preset_of_the_same_source_is_made_not_reused(
    tmp_path: Path, origin: OriginServer
) -> None:
    urls = versioned(origin, 1)
    async with Engine(config_for(tmp_path)) as engine:
        await import_csv(engine, [urls])
        second = await import_csv(engine, [urls], preset="catalog")
        (image,) = await images_of(engine, second)
    assert image.reused is None
    assert [v.name for v in image.variants] == ["large", "medium", "thumb"]


async def test_another_clients_import_of_the_same_source_is_made_not_reused(
    tmp_path: Path, origin: OriginServer
) -> None:
    urls = versioned(origin, 1)
    async with Engine(config_for(tmp_path)) as engine:
        await import_csv(engine, [urls], client="shop-a")
        second = await import_csv(engine, [urls], client="shop-b")
        again = await import_csv(engine, [urls], client="shop-a")
        (other,), (same,) = await images_of(engine, second), await images_of(engine, again)
    assert other.reused is None
    assert same.reused == "not_modified"


async def test_deleting_a_request_keeps_the_outputs_another_request_reuses(
    tmp_path: Path, origin: OriginServer
) -> None:
    urls = versioned(origin, 2)
    async with Engine(config_for(tmp_path)) as engine:
        first = await import_csv(engine, [urls])
        second = await import_csv(engine, [urls])
        shown = sorted(key for image in await images_of(engine, second) for key in keys_of(image))
        await engine.delete_request(first)
        kept = stored_keys(engine.storage)
        await engine.delete_request(second)
        left = stored_keys(engine.storage)
        remaining = await engine.database.read(
            lambda conn: [
                conn.execute(sa.select(sa.func.count()).select_from(table)).scalar()
                for table in (renditions, sources)
            ]
        )
    assert kept == shown
    assert left == []
    assert remaining == [0, 0], "no rendition, and no source (URL, validators) is kept"


async def test_deleting_a_request_removes_what_a_reused_images_earlier_attempt_stored(
    tmp_path: Path, origin: OriginServer
) -> None:
    urls = versioned(origin, 1)
    async with Engine(config_for(tmp_path)) as engine:
        first = await import_csv(engine, [urls])
        second = await import_csv(engine, [urls])
        (image,) = await images_of(engine, second)
        # As an attempt that stored its own output and died before it found the reuse.
        own = f"requests/{second}/{image.id}.jpg"
        await engine.storage.put(own, b"an earlier attempt", content_type="image/jpeg")
        await engine.delete_request(second)
        left = stored_keys(engine.storage)
        (shown,) = await images_of(engine, first)
    assert image.reused == "not_modified"
    assert left == keys_of(shown)


async def test_a_delete_racing_a_reimport_leaves_every_output_shown_and_no_orphan(
    tmp_path: Path, origin: OriginServer
) -> None:
    n = 24
    # Slow, without validators: each reuse downloads first (same_content), so the delete
    # lands while the re-import is under way.
    urls = [origin.url(f"/slow/0.05/img/{PHOTOS[i % 4]}?race{i}") for i in range(n)]
    rows = [urls[i : i + 3] for i in range(0, n, 3)]
    async with Engine(config_for(tmp_path, workers=1, fetch_concurrency=1)) as engine:
        first = await import_csv(engine, rows)
        second = await engine.submit_csv(make_csv(rows))
        async with engine.running():
            with anyio.fail_after(60):
                while (await engine.status(second)).done < n // 3:
                    await anyio.sleep(0.01)
            await engine.delete_request(first)  # while the re-import goes on
            with anyio.fail_after(60):
                info = await engine.wait(second, interval=0.05)
        found = await images_of(engine, second)
        stored = stored_keys(engine.storage)
    assert (info.status, info.done) == (RequestStatus.COMPLETED, n)
    assert 0 < info.reused < n, "some images reused the deleted request's outputs, some not"
    shown = sorted(key for image in found for key in keys_of(image))
    assert stored == shown, "every output shown is stored, and nothing else is"


async def test_a_source_remembered_once_per_client_and_url(
    tmp_path: Path, origin: OriginServer
) -> None:
    urls = versioned(origin, 2)
    async with Engine(config_for(tmp_path)) as engine:
        await import_csv(engine, [urls, urls])
        await import_csv(engine, [urls])
        rows = await engine.database.read(
            lambda conn: conn.execute(sa.select(sources.c.url, sources.c.etag)).all()
        )
    assert sorted(url for url, _ in rows) == sorted(urls)
    assert all(etag for _, etag in rows)


async def test_two_engines_importing_the_same_new_sources_at_once_leave_one_set_of_objects(
    tmp_path: Path, origin: OriginServer
) -> None:
    n = 12
    urls = [origin.url(f"/slow/0.2/img/{PHOTOS[i % 4]}?twin{i}") for i in range(n)]
    config = config_for(tmp_path, workers=1)
    async with Engine(config) as first, Engine(config) as second:
        a = await first.submit_csv(make_csv([urls]))
        b = await second.submit_csv(make_csv([urls]))
        async with first.running(), second.running():
            with anyio.fail_after(60):
                await first.wait(a, interval=0.05)
                await second.wait(b, interval=0.05)
        found = await images_of(first, a) + await images_of(first, b)
        stored = stored_keys(first.storage)
        users = await first.database.read(
            lambda conn: conn.execute(sa.select(renditions.c.users)).scalars().all()
        )
    assert len(found) == 2 * n
    by_url: dict[str, set[tuple[str, ...]]] = {}
    for image in found:
        by_url.setdefault(image.input_url, set()).add(tuple(keys_of(image)))
    assert all(len(shown) == 1 for shown in by_url.values()), "one set of objects per source"
    assert stored == sorted(key for shown in by_url.values() for keys in shown for key in keys)
    assert sorted(users) == [2] * n
