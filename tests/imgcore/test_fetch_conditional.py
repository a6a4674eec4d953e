"""Conditional re-fetch: validators kept from a download, a 304 instead of the body."""

from __future__ import annotations

import io
from typing import Any

import anyio
import pytest
from imgcore._fetch import Fetcher, FetchError, FetchOptions, Validators
from PIL import Image
from support.origin import OriginServer

pytestmark = pytest.mark.anyio

COFFEE = "img/s03_coffee.jpg"
PATH = f"/versioned/{COFFEE}"


def fetcher() -> Fetcher:
    return Fetcher(FetchOptions(allow=("127.0.0.1/32",), max_attempts=1))


async def changed(url: str, validators: Validators) -> Any:
    async with fetcher() as f:
        return await f.fetch_changed(url, validators)


async def test_a_download_keeps_the_origins_etag_and_last_modified(origin: OriginServer) -> None:
    async with fetcher() as f:
        fetched = await f.fetch(origin.url(PATH))
    assert fetched.etag is not None
    assert fetched.etag.startswith('"')
    assert fetched.last_modified is not None
    assert fetched.last_modified.endswith("GMT")


async def test_a_download_from_an_origin_without_validators_has_none(
    origin: OriginServer,
) -> None:
    async with fetcher() as f:
        fetched = await f.fetch(origin.url(f"/corpus/{COFFEE}"))
    assert (fetched.etag, fetched.last_modified) == (None, None)


async def test_a_matching_etag_is_answered_304_without_a_body(origin: OriginServer) -> None:
    async with fetcher() as f:
        first = await f.fetch(origin.url(PATH))
        while origin.completed(PATH) < 1:  # the origin counts once it has written the body
            await anyio.sleep(0.001)
        origin.reset()
        again = await f.fetch_changed(origin.url(PATH), Validators(etag=first.etag))
    assert again is None
    assert origin.not_modified(PATH) == 1
    assert origin.total_body_bytes() == 0


async def test_a_last_modified_alone_is_asked_with_if_modified_since(
    origin: OriginServer,
) -> None:
    async with fetcher() as f:
        first = await f.fetch(origin.url(PATH))
        again = await f.fetch_changed(
            origin.url(PATH), Validators(last_modified=first.last_modified)
        )
    assert again is None
    assert origin.not_modified(PATH) == 1


async def test_a_changed_source_is_sent_in_full_with_its_new_etag(origin: OriginServer) -> None:
    async with fetcher() as f:
        first = await f.fetch(origin.url(PATH))
        origin.bump(COFFEE)
        again = await f.fetch_changed(
            origin.url(PATH), Validators(etag=first.etag, last_modified=first.last_modified)
        )
    assert again is not None
    assert again.data != first.data
    assert again.etag != first.etag
    assert origin.not_modified(PATH) == 0


async def test_validators_that_do_not_match_get_the_body(origin: OriginServer) -> None:
    again = await changed(origin.url(PATH), Validators(etag='"something-else"'))
    assert again is not None
    assert again.data == (origin.corpus / COFFEE).read_bytes()


async def test_no_validators_is_a_plain_download(origin: OriginServer) -> None:
    again = await changed(origin.url(PATH), Validators())
    assert again is not None
    assert origin.not_modified(PATH) == 0


async def test_a_redirect_target_is_asked_without_the_validators(origin: OriginServer) -> None:
    async with fetcher() as f:
        first = await f.fetch(origin.url(PATH))
        again = await f.fetch_changed(
            origin.url(f"/redirect?to={PATH}"),
            Validators(etag=first.etag, last_modified=first.last_modified),
        )
    assert again is not None, "the validators describe the URL asked for, not its target"
    assert again.data == first.data
    assert origin.not_modified(PATH) == 0


async def test_a_304_to_a_plain_download_is_an_http_status_error(origin: OriginServer) -> None:
    origin.route("/always-304", lambda req: req.reply(304))
    async with fetcher() as f:
        with pytest.raises(FetchError) as caught:
            await f.fetch(origin.url("/always-304"))
    assert (caught.value.reason, caught.value.status) == ("http_status", 304)


async def test_a_bumped_source_has_other_bytes_of_the_same_picture(
    origin: OriginServer,
) -> None:
    async with fetcher() as f:
        first = await f.fetch(origin.url(PATH))
        origin.bump(COFFEE)
        second = await f.fetch(origin.url(PATH))
        origin.bump(COFFEE)
        third = await f.fetch(origin.url(PATH))
    assert len({first.data, second.data, third.data}) == 3
    assert len({first.etag, second.etag, third.etag}) == 3
    assert first.last_modified != second.last_modified
    pixels = {Image.open(io.BytesIO(data)).tobytes() for data in (first.data, third.data)}
    assert len(pixels) == 1


def test_validators_make_the_conditional_headers() -> None:
    both = Validators(etag='"a"', last_modified="Thu, 01 Jan 2026 00:00:00 GMT")
    assert both.headers() == {
        "If-None-Match": '"a"',
        "If-Modified-Since": "Thu, 01 Jan 2026 00:00:00 GMT",
    }
    assert Validators().headers() == {}
