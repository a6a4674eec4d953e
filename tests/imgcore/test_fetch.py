"""The downloader against a real origin server on loopback (see support.origin)."""

from __future__ import annotations

import gzip
import pickle
import socket
import threading
import tracemalloc
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest
from imgcore._fetch import (
    BlockedAddressError,
    FetchedImage,
    Fetcher,
    FetchError,
    FetchOptions,
    parse_retry_after,
)
from imgcore._http import guarded_client
from imgcore._netguard import AllowList
from support.origin import OriginHandler, OriginServer, gzip_bomb_parts

pytestmark = pytest.mark.anyio

ALLOW_LOCAL = ("127.0.0.1/32",)
COFFEE = "img/s03_coffee.jpg"
MIB = 1 << 20


def options(**changes: Any) -> FetchOptions:
    """Small timeouts and backoff so every test stays fast; 127.0.0.1 allowed."""
    settings: dict[str, Any] = {
        "allow": ALLOW_LOCAL,
        "connect_timeout": 1.0,
        "read_timeout": 1.0,
        "total_timeout": 3.0,
        "backoff_base": 0.01,
        "backoff_max": 0.05,
    }
    return FetchOptions(**(settings | changes))


async def fetch(url: str, **changes: Any) -> FetchedImage:
    async with Fetcher(options(**changes)) as fetcher:
        return await fetcher.fetch(url)


async def fetch_error(url: str, **changes: Any) -> FetchError:
    with anyio.fail_after(10), pytest.raises(FetchError) as caught:
        await fetch(url, **changes)
    assert caught.value.url == url
    return caught.value


# success


async def test_image_is_fetched_with_its_bytes_and_format(
    origin: OriginServer, corpus_dir: Path
) -> None:
    url = origin.url(f"/corpus/{COFFEE}")
    image = await fetch(url)
    assert image.data == (corpus_dir / COFFEE).read_bytes()
    assert image.format == "JPEG"
    assert (image.url, image.final_url, image.status, image.attempts) == (url, url, 200, 1)
    assert image.content_type == "image/jpeg"


async def test_format_comes_from_magic_bytes_not_content_type(origin: OriginServer) -> None:
    image = await fetch(origin.url("/corpus/edge/png_photo.png?type=application/octet-stream"))
    assert image.format == "PNG"


async def test_truncated_jpeg_is_fetched_for_compress_to_judge(
    origin: OriginServer, corpus_dir: Path
) -> None:
    image = await fetch(origin.url("/corpus/special/truncated.jpg"))
    assert image.data == (corpus_dir / "special/truncated.jpg").read_bytes()


async def test_900_megapixel_png_bomb_downloads_because_it_is_small(origin: OriginServer) -> None:
    image = await fetch(origin.url("/bomb.png"))
    assert image.format == "PNG"
    assert len(image.data) < MIB


async def test_gzip_encoded_body_is_decoded(origin: OriginServer, corpus_dir: Path) -> None:
    original = (corpus_dir / COFFEE).read_bytes()
    origin.route(
        "/gzipped.jpg",
        lambda req: req.reply(
            200, gzip.compress(original), "image/jpeg", {"Content-Encoding": "gzip"}
        ),
    )
    assert (await fetch(origin.url("/gzipped.jpg"))).data == original


async def test_non_image_body_is_not_an_image(origin: OriginServer) -> None:
    error = await fetch_error(origin.url("/nonimage"))
    assert (error.reason, error.transient) == ("not_an_image", False)
    assert origin.hits("/nonimage") == 1


# statuses and retries


async def test_404_is_not_retried(origin: OriginServer) -> None:
    error = await fetch_error(origin.url("/status/404"))
    assert (error.reason, error.status, error.transient) == ("http_status", 404, False)
    assert origin.hits("/status/404") == 1


async def test_500_then_200_is_retried(origin: OriginServer) -> None:
    path = f"/flaky/once/1/{COFFEE}"
    image = await fetch(origin.url(path))
    assert image.attempts == 2
    assert origin.hits(path) == 2


async def test_500_forever_fails_after_max_attempts_as_transient(origin: OriginServer) -> None:
    error = await fetch_error(origin.url("/status/500"), max_attempts=3)
    assert (error.reason, error.status, error.transient, error.attempts) == (
        "http_status",
        500,
        True,
        3,
    )
    assert origin.hits("/status/500") == 3


async def test_429_waits_for_retry_after_before_retrying(origin: OriginServer) -> None:
    path = f"/flaky/limited/1/{COFFEE}"
    image = await fetch(origin.url(path + "?status=429&retry_after=1"), backoff_max=5.0)
    assert image.attempts == 2
    first, second = origin.hit_times(path)
    assert second - first >= 1.0  # backoff alone would wait at most 0.01 s


async def test_retry_after_is_capped_by_backoff_max(origin: OriginServer) -> None:
    path = f"/flaky/capped/1/{COFFEE}?status=429&retry_after=3600"
    with anyio.fail_after(5):
        image = await fetch(origin.url(path), backoff_max=0.05)
    assert image.attempts == 2


async def test_connection_refused_is_a_transient_connect_error(origin: OriginServer) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # closed again: nothing listens there
    error = await fetch_error(f"http://127.0.0.1:{port}/x.jpg", max_attempts=2)
    assert (error.reason, error.transient, error.attempts) == ("connect_error", True, 2)


# timeouts


async def test_slow_headers_past_the_read_timeout_time_out(origin: OriginServer) -> None:
    error = await fetch_error(origin.url(f"/slow/2/{COFFEE}"), read_timeout=0.2, max_attempts=1)
    assert (error.reason, error.transient) == ("timeout", True)


async def test_timeout_is_retried(origin: OriginServer) -> None:
    served = threading.Event()
    first_hit = threading.Event()

    def hang_once(req: OriginHandler) -> None:
        if not first_hit.is_set():
            first_hit.set()
            served.wait(2)  # the client gives up long before
            return
        origin.send_file(req, COFFEE)

    origin.route("/hang-once.jpg", hang_once)
    try:
        image = await fetch(origin.url("/hang-once.jpg"), read_timeout=0.2)
    finally:
        served.set()
    assert image.attempts == 2


async def test_stalled_body_is_cut_at_the_total_timeout(origin: OriginServer) -> None:
    error = await fetch_error(
        origin.url("/stall"), read_timeout=30.0, total_timeout=0.3, max_attempts=1
    )
    assert (error.reason, error.transient) == ("timeout", True)


async def test_trickling_body_is_cut_at_the_total_timeout(origin: OriginServer) -> None:
    error = await fetch_error(
        origin.url("/trickle/0.02"), read_timeout=30.0, total_timeout=0.3, max_attempts=1
    )
    assert error.reason == "timeout"


# size limits


async def test_declared_oversize_body_is_too_large_from_its_content_length(
    origin: OriginServer,
) -> None:
    released = threading.Event()

    def declare_and_stall(req: OriginHandler) -> None:
        req.send_response(200)
        req.send_header("Content-Type", "image/jpeg")
        req.send_header("Content-Length", str(64 * MIB))
        req.end_headers()
        req.wfile.write(b"\xff\xd8\xff\xe0")
        req.close_connection = True
        released.wait(2)  # a client that reads on would time out instead

    origin.route("/declared-huge.jpg", declare_and_stall)
    try:
        error = await fetch_error(origin.url("/declared-huge.jpg"), max_bytes=MIB)
    finally:
        released.set()
    assert (error.reason, error.transient) == ("too_large", False)


async def test_oversize_body_is_too_large_without_reading_it_all(origin: OriginServer) -> None:
    error = await fetch_error(origin.url("/huge?mb=64"), max_bytes=MIB)
    assert error.reason == "too_large"
    assert origin.completed("/huge") == 0


async def test_chunked_oversize_body_is_too_large_without_reading_it(
    origin: OriginServer,
) -> None:
    error = await fetch_error(origin.url("/huge?mb=64&chunked=1"), max_bytes=MIB)
    assert error.reason == "too_large"
    assert origin.completed("/huge") == 0


async def test_gzip_bomb_is_too_large_and_memory_stays_bounded(origin: OriginServer) -> None:
    gzip_bomb_parts()  # built before measuring
    tracemalloc.start()
    try:
        error = await fetch_error(origin.url("/gzip-bomb?mb=1024"), max_bytes=MIB)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert error.reason == "too_large"
    # Inflating one 64 KiB read of this bomb at once would take 64 MiB.
    assert peak < 16 * MIB


async def test_unsupported_content_encoding_is_a_protocol_error(origin: OriginServer) -> None:
    origin.route(
        "/brotli.jpg",
        lambda req: req.reply(200, b"\x1b\x00", "image/jpeg", {"Content-Encoding": "br"}),
    )
    error = await fetch_error(origin.url("/brotli.jpg"))
    assert (error.reason, error.transient) == ("protocol_error", False)


# redirects


@pytest.mark.parametrize("code", [301, 302, 303, 307, 308])
async def test_relative_redirect_is_followed(origin: OriginServer, code: int) -> None:
    url = origin.url(f"/redirect?code={code}&to=/corpus/{COFFEE}")
    image = await fetch(url)
    assert image.final_url == origin.url(f"/corpus/{COFFEE}")
    assert image.url == url
    assert origin.hits(f"/corpus/{COFFEE}") == 1


async def test_redirect_to_host_outside_allow_list_is_blocked_before_connecting(
    origin: OriginServer, other_origin: OriginServer
) -> None:
    error = await fetch_error(origin.url(f"/redirect?to={other_origin.url('/corpus/' + COFFEE)}"))
    assert isinstance(error, BlockedAddressError)
    assert (error.reason, error.transient) == ("blocked_address", False)
    assert other_origin.connections == 0
    assert other_origin.total_hits() == 0


async def test_redirect_to_allowed_second_host_is_followed(
    origin: OriginServer, other_origin: OriginServer
) -> None:
    target = other_origin.url(f"/corpus/{COFFEE}")
    image = await fetch(origin.url(f"/redirect?to={target}"), allow=("127.0.0.0/30",))
    assert image.final_url == target


async def test_redirect_loop_is_too_many_redirects(origin: OriginServer) -> None:
    error = await fetch_error(origin.url("/redirect-loop"), max_redirects=3)
    assert (error.reason, error.transient) == ("too_many_redirects", False)
    assert origin.hits("/redirect-loop") == 4


@pytest.mark.parametrize("target", ["file:///etc/passwd", "ftp://127.0.0.1/x.jpg"])
async def test_redirect_to_non_http_scheme_is_invalid_url(
    origin: OriginServer, target: str
) -> None:
    error = await fetch_error(origin.url(f"/redirect?to={target}"))
    assert error.reason == "invalid_url"


# the address guard


async def test_loopback_is_blocked_without_allow_list(origin: OriginServer) -> None:
    error = await fetch_error(origin.url(f"/corpus/{COFFEE}"), allow=())
    assert error.reason == "blocked_address"
    assert origin.connections == 0


async def test_ipv4_mapped_ipv6_loopback_is_blocked(origin: OriginServer) -> None:
    error = await fetch_error(f"http://[::ffff:127.0.0.1]:{origin.port}/corpus/{COFFEE}", allow=())
    assert error.reason == "blocked_address"
    assert origin.connections == 0


@pytest.mark.parametrize("host", ["2130706433", "0x7f.1", "0x7f000001", "127.1", "0177.0.0.1"])
@pytest.mark.parametrize("allow", [(), ALLOW_LOCAL])
async def test_legacy_spellings_of_ipv4_are_invalid_urls(
    origin: OriginServer, host: str, allow: tuple[str, ...]
) -> None:
    # Parsers disagree on what they mean, so no parser gets to decide: refused, allowed or not.
    error = await fetch_error(f"http://{host}:{origin.port}/corpus/{COFFEE}", allow=allow)
    assert (error.reason, error.transient) == ("invalid_url", False)
    assert origin.connections == 0


async def test_ipv6_loopback_is_blocked() -> None:
    error = await fetch_error("http://[::1]:9/x.jpg", allow=ALLOW_LOCAL)
    assert error.reason == "blocked_address"


async def test_host_name_resolving_to_loopback_is_blocked(origin: OriginServer) -> None:
    error = await fetch_error(f"http://localhost:{origin.port}/corpus/{COFFEE}", allow=())
    assert isinstance(error, BlockedAddressError)
    assert origin.connections == 0


async def test_allowed_host_name_reaches_the_origin(origin: OriginServer) -> None:
    image = await fetch(f"http://localhost:{origin.port}/corpus/{COFFEE}", allow=("localhost",))
    assert image.format == "JPEG"


# URLs


@pytest.mark.parametrize(
    "url",
    [
        "ftp://127.0.0.1/x.jpg",
        "file:///etc/passwd",
        "gopher://127.0.0.1:70/x",
        "javascript:alert(1)",
        "not a url",
        "http:///x.jpg",
        "http://127.0.0.1:99999/x.jpg",
    ],
)
async def test_non_http_or_malformed_urls_are_invalid(url: str) -> None:
    error = await fetch_error(url)
    assert (error.reason, error.transient) == ("invalid_url", False)


async def test_url_with_credentials_is_rejected(origin: OriginServer) -> None:
    error = await fetch_error(f"http://user:secret@127.0.0.1:{origin.port}/corpus/{COFFEE}")
    assert error.reason == "invalid_url"
    assert origin.connections == 0


# concurrency


async def _fetch_many(fetcher: Fetcher, url: str, count: int) -> None:
    async with anyio.create_task_group() as group:
        for _ in range(count):
            group.start_soon(fetcher.fetch, url)


async def test_per_host_limit_bounds_requests_in_flight(origin: OriginServer) -> None:
    async with Fetcher(options(per_host=2)) as fetcher:
        await _fetch_many(fetcher, origin.url(f"/slow/0.2/{COFFEE}"), 6)
    assert origin.max_in_flight == 2


async def test_overall_limit_bounds_requests_in_flight(origin: OriginServer) -> None:
    async with Fetcher(options(concurrency=3, per_host=8)) as fetcher:
        await _fetch_many(fetcher, origin.url(f"/slow/0.2/{COFFEE}"), 6)
    assert origin.max_in_flight == 3


# the pieces


def test_retry_after_seconds_are_read() -> None:
    assert parse_retry_after("7") == 7.0


def test_retry_after_http_date_is_read_relative_to_now() -> None:
    now = datetime(2025, 1, 1, 12, 0, 0, tzinfo=UTC)
    assert parse_retry_after("Wed, 01 Jan 2025 12:00:30 GMT", now=now) == 30.0


def test_retry_after_in_the_past_is_zero() -> None:
    now = datetime(2025, 1, 1, 12, 0, 0, tzinfo=UTC)
    assert parse_retry_after("Wed, 01 Jan 2025 11:00:00 GMT", now=now) == 0.0


@pytest.mark.parametrize("value", [None, "", "soon", "-5", "1.5e9"])
def test_unusable_retry_after_is_none(value: str | None) -> None:
    assert parse_retry_after(value) is None


def test_fetch_error_survives_pickling() -> None:
    error = FetchError(
        "HTTP 503", reason="http_status", url="http://x/", transient=True, status=503
    )
    copy = pickle.loads(pickle.dumps(error))
    assert (copy.message, copy.reason, copy.url, copy.transient, copy.status) == (
        "HTTP 503",
        "http_status",
        "http://x/",
        True,
        503,
    )


@pytest.mark.parametrize(
    "changes", [{"max_bytes": 0}, {"max_attempts": 0}, {"per_host": 0}, {"max_redirects": -1}]
)
def test_impossible_options_are_refused(changes: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        FetchOptions(**changes)


def test_junk_allow_list_is_refused() -> None:
    with pytest.raises(ValueError, match="not a CIDR"):
        FetchOptions(allow=("10.0.0.0/33",))


async def test_guarded_client_blocks_what_is_not_allowed(origin: OriginServer) -> None:
    async with guarded_client(AllowList()) as client:
        with pytest.raises(BlockedAddressError):
            await client.get(origin.url("/status/204"))
    assert origin.connections == 0


async def test_guarded_client_reaches_allowed_addresses(origin: OriginServer) -> None:
    async with guarded_client(AllowList.parse(ALLOW_LOCAL)) as client:
        response = await client.get(origin.url("/status/204"))
    assert response.status_code == 204
    assert isinstance(response, httpx.Response)
