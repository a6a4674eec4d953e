"""Hostile URLs and bodies end to end through the Engine (SQLite, file storage, the local
executor, real origins on 127.0.0.1 and 127.0.0.2): every image fails with its stored reason,
the request ends, nothing hangs past the configured limits and memory stays bounded.

No traffic leaves loopback: addresses outside it are refused by the product's SSRF guard
before any connection, and ``connect_log`` below refuses (and records) any attempt that
would slip past it, so the tests prove the guard acted first.
"""

from __future__ import annotations

import io
import socket
import zipfile
from ipaddress import ip_address
from pathlib import Path
from typing import Any

import anyio
import pytest
from imgcore import Config, Engine
from imgcore._netguard import AllowList, BlockedAddressError, check_addresses, check_ip
from imgcore.states import ImageStatus, RequestStatus
from PIL import Image
from support.csvgen import make_csv
from support.images import encode, text_bomb_png
from support.memory import PeakRss
from support.origin import OriginServer, gzip_bomb_parts, png_bomb

pytestmark = pytest.mark.anyio

COFFEE = "/corpus/img/s03_coffee.jpg"
MIB = 1 << 20


def config_for(tmp_path: Path, **changes: Any) -> Config:
    """Small limits so every hostile case ends within seconds; one attempt per image."""
    return Config(
        database_url=f"sqlite+aiosqlite:///{tmp_path}/imgcore.sqlite3",
        storage_url=f"file://{tmp_path}/media",
        fetch_allow=("127.0.0.1/32",),
        fetch_connect_timeout=1.0,
        fetch_read_timeout=0.5,
        fetch_total_timeout=1.5,
        fetch_max_bytes=2 * MIB,
        fetch_max_redirects=3,
        fetch_max_attempts=1,
        max_attempts=1,
        poll_interval=0.05,
        lease_seconds=10,
        workers=2,
        compress_pool="thread",  # no worker processes to start, except where measured
    ).replace(**changes)


@pytest.fixture
def connect_log(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, int]]:
    """Every TCP connect made in this process; any to a non-loopback address is refused."""
    attempts: list[tuple[str, int]] = []
    real_connect = socket.socket.connect
    real_connect_ex = socket.socket.connect_ex

    def check(sock: socket.socket, address: Any) -> None:
        if sock.family in (socket.AF_INET, socket.AF_INET6):
            attempts.append((str(address[0]), int(address[1])))
            if not ip_address(str(address[0]).split("%")[0]).is_loopback:
                raise ConnectionRefusedError(f"test guard: no traffic to {address[0]}")

    def connect(self: socket.socket, address: Any) -> None:
        check(self, address)
        real_connect(self, address)

    def connect_ex(self: socket.socket, address: Any) -> int:
        check(self, address)
        return real_connect_ex(self, address)

    monkeypatch.setattr(socket.socket, "connect", connect)
    monkeypatch.setattr(socket.socket, "connect_ex", connect_ex)
    return attempts


async def run(config: Config, urls: list[str], timeout: float = 60) -> tuple[Any, list[Any]]:
    """Submit one product per URL, process until the request ends; (info, images in order)."""
    async with Engine(config) as engine:
        request_id = await engine.submit_csv(make_csv([[url] for url in urls]))
        async with engine.running():
            # A guard against hangs, far above every configured limit; not a speed check.
            with anyio.fail_after(timeout):
                info = await engine.wait(request_id, interval=0.05)
        images = [image for p in await engine.products(request_id) for image in p.images]
    return info, images


def assert_failed_with(images: list[Any], expected: list[tuple[str, str]]) -> None:
    got = [(image.input_url, image.status, image.error_reason) for image in images]
    assert got == [(url, ImageStatus.FAILED, reason) for url, reason in expected]
    assert all(image.error and image.storage_key is None for image in images)


def media_files(tmp_path: Path) -> list[Path]:
    media = tmp_path / "media"
    return [p for p in media.rglob("*") if p.is_file()] if media.exists() else []


# --- addresses ---------------------------------------------------------------------------------


async def test_loopback_spellings_outside_the_allow_list_are_blocked_before_connecting(
    tmp_path: Path,
    origin: OriginServer,
    other_origin: OriginServer,
    connect_log: list[tuple[str, int]],
) -> None:
    # Only 127.0.0.2 (other_origin) is allowed here; every URL below reaches 127.0.0.1 or ::1
    # under another name, so the origin on 127.0.0.1 must never see a connection.
    port = origin.port
    hostile = [
        # Legacy IPv4 spellings are refused outright, whatever they would reach.
        (f"http://2130706433:{port}{COFFEE}", "invalid_url"),  # decimal
        (f"http://0x7f.1:{port}{COFFEE}", "invalid_url"),  # hex, short form
        (f"http://017700000001:{port}{COFFEE}", "invalid_url"),  # octal
        (f"http://127.1:{port}{COFFEE}", "invalid_url"),
        (f"http://localhost:{port}{COFFEE}", "blocked_address"),
        (f"http://[::1]:{port}{COFFEE}", "blocked_address"),
        (f"http://[::ffff:127.0.0.1]:{port}{COFFEE}", "blocked_address"),  # IPv4-mapped
        (f"http://[::ffff:7f00:1]:{port}{COFFEE}", "blocked_address"),
        (other_origin.url(f"/redirect?to=http://0x7f.1:{port}{COFFEE}"), "invalid_url"),
        (other_origin.url(f"/redirect?to=http://localhost:{port}{COFFEE}"), "blocked_address"),
        # The cloud metadata service, plain and IPv4-mapped, and a private address.
        ("http://169.254.169.254/latest/meta-data/iam/", "blocked_address"),
        ("http://[::ffff:169.254.169.254]/latest/meta-data/", "blocked_address"),
        ("http://10.0.0.1/x.jpg", "blocked_address"),
    ]
    good = other_origin.url(COFFEE)
    config = config_for(tmp_path, fetch_allow=("127.0.0.2/32",))
    info, images = await run(config, [good] + [url for url, _ in hostile])

    assert info.status is RequestStatus.COMPLETED
    assert (info.done, info.failed) == (1, len(hostile))
    assert images[0].status is ImageStatus.DONE
    assert_failed_with(images[1:], hostile)
    metadata = next(i for i in images if i.input_url.startswith("http://169.254.169.254/"))
    assert "169.254.169.254 is neither public nor allowed" in metadata.error
    assert origin.connections == 0
    # The guard saw the allowed connections, so it would have seen any other attempt.
    assert ("127.0.0.2", other_origin.port) in connect_log
    assert {host for host, _ in connect_log} == {"127.0.0.2"}


async def test_redirects_out_of_bounds_and_loops_fail_with_their_reasons(
    tmp_path: Path,
    origin: OriginServer,
    other_origin: OriginServer,
    connect_log: list[tuple[str, int]],
) -> None:
    hostile = [
        (origin.url(f"/redirect?to={other_origin.url(COFFEE)}"), "blocked_address"),
        (origin.url(f"/redirect?to=http://[::1]:{origin.port}{COFFEE}"), "blocked_address"),
        (origin.url("/redirect?to=http://169.254.169.254/latest/meta-data/"), "blocked_address"),
        (origin.url("/redirect?to=file:///etc/passwd"), "invalid_url"),
        (origin.url("/redirect?to=gopher://127.0.0.1:70/_x"), "invalid_url"),
        (origin.url("/redirect-loop"), "too_many_redirects"),
    ]
    info, images = await run(config_for(tmp_path), [url for url, _ in hostile])

    assert info.status is RequestStatus.FAILED
    assert_failed_with(images, hostile)
    assert other_origin.connections == 0
    assert origin.hits("/redirect-loop") == 4  # the first request and three redirects
    assert {host for host, _ in connect_log} == {"127.0.0.1"}
    assert media_files(tmp_path) == []


# --- bodies ------------------------------------------------------------------------------------


def _truncated_png() -> bytes:
    data = encode(Image.effect_noise((64, 64), 50).convert("RGB"), "PNG")
    return data[: len(data) // 2]


async def test_slow_lying_and_broken_bodies_fail_with_their_reasons(
    tmp_path: Path, origin: OriginServer
) -> None:
    origin.route("/gif-script.gif", lambda r: r.reply(200, b"GIF89a=1;alert(1);//", "image/gif"))
    truncated = _truncated_png()
    origin.route("/truncated.png", lambda r: r.reply(200, truncated, "image/png"))
    hostile = [
        # Slow-loris (config: 0.5 s per read, 1.5 s in all): a byte a second trips the read
        # timeout; a byte every 50 ms never does, and is cut at the total one.
        (origin.url("/trickle/1"), "timeout"),
        (origin.url("/trickle/0.05"), "timeout"),
        (origin.url("/nonimage"), "not_an_image"),  # HTML served as image/jpeg
        (origin.url("/gif-script.gif"), "corrupt_image"),  # a GIF signature, then script
        (origin.url("/truncated.png"), "corrupt_image"),
        (origin.url("/corpus/special/truncated.jpg"), "corrupt_image"),
    ]
    info, images = await run(config_for(tmp_path), [url for url, _ in hostile])

    assert info.status is RequestStatus.FAILED
    assert_failed_with(images, hostile)
    assert "read timed out" in images[0].error
    assert "within 1.5 s" in images[1].error  # the total timeout
    assert media_files(tmp_path) == []


async def test_polyglots_are_re_encoded_so_their_payload_is_never_served(
    tmp_path: Path, origin: OriginServer
) -> None:
    # 10799 pixels wide: a GIF whose header reads "GIF89a/*", closed by "*/" after the
    # trailer, is also a script. Pillow reads the image and ignores the rest.
    gif_js = encode(Image.new("P", (10799, 4)), "GIF") + b"*/=1;alert(document.domain);//"
    assert gif_js[6:8] == b"/*"
    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("payload.txt", "not an image")
    jpeg_zip = encode(Image.effect_noise((64, 48), 40).convert("RGB"), "JPEG") + archive.getvalue()
    origin.route("/gif-js.gif", lambda r: r.reply(200, gif_js, "image/gif"))
    origin.route("/jpeg-zip.jpg", lambda r: r.reply(200, jpeg_zip, "image/jpeg"))

    config = config_for(tmp_path)
    info, images = await run(config, [origin.url("/gif-js.gif"), origin.url("/jpeg-zip.jpg")])

    assert info.status is RequestStatus.COMPLETED
    assert [image.status for image in images] == [ImageStatus.DONE, ImageStatus.DONE]
    for image in images:
        stored = (tmp_path / "media" / image.storage_key).read_bytes()
        assert stored.startswith(b"\xff\xd8\xff")  # a JPEG made by us
        assert b"alert(" not in stored
        assert b"PK\x03\x04" not in stored


async def test_bombs_and_endless_bodies_fail_and_memory_stays_bounded(
    tmp_path: Path, origin: OriginServer
) -> None:
    # Built before the origin is asked for them: building takes longer than the timeouts.
    png_bomb(), gzip_bomb_parts()
    text_bomb = text_bomb_png()
    origin.route("/text-bomb.png", lambda r: r.reply(200, text_bomb, "image/png"))
    hostile = [
        (origin.url("/gzip-bomb?mb=1024"), "too_large"),  # 1 GiB of zeros, gzip-encoded
        (origin.url("/endless"), "too_large"),
        (origin.url("/bomb-header.png?w=100000&h=100000"), "decompression_bomb"),
        (origin.url("/bomb.png"), "decompression_bomb"),  # 900 MP that inflate from 110 KiB
        (origin.url("/text-bomb.png"), "decompression_bomb"),  # a zTXt chunk of 4 MiB
    ]
    # Compression in threads: the downloads and the decoders all run in this process, so its
    # memory (with any children's) is the worker's.
    with PeakRss(tree=True, every=0.01) as rss:
        info, images = await run(config_for(tmp_path), [url for url, _ in hostile])

    assert info.status is RequestStatus.FAILED
    assert_failed_with(images, hostile)
    # Decoding the 900 MP bomb alone would take 900 MB, the header bomb 30 GB.
    assert rss.growth < 256 * MIB, f"RSS grew by {rss.growth / MIB:.0f} MiB"


# --- the address rules, pure (no traffic) ------------------------------------------------------

#: What a DNS answer for an attacker's name could hold to point the downloader inside.
PRIVATE_ANSWERS = [
    "10.1.2.3",
    "172.16.5.4",
    "192.168.0.10",
    "100.64.0.1",  # carrier-grade NAT
    "169.254.169.254",  # cloud metadata (AWS, GCP, Azure, OpenStack)
    "169.254.170.2",  # ECS task metadata
    "127.0.0.1",
    "0.0.0.0",
    "::1",
    "fd00:ec2::254",  # AWS metadata over IPv6
    "fe80::1",
    "::ffff:10.1.2.3",  # IPv4-mapped
    "::ffff:169.254.169.254",
    "64:ff9b::a9fe:a9fe",  # NAT64 of 169.254.169.254
    "2002:a9fe:a9fe::1",  # 6to4 of 169.254.169.254
]


@pytest.mark.parametrize("answer", PRIVATE_ANSWERS)
def test_a_name_resolving_to_a_private_address_is_blocked(answer: str) -> None:
    loopback_only = AllowList.parse("127.0.0.2/32")
    with pytest.raises(BlockedAddressError, match="neither public nor allowed"):
        check_addresses("images.attacker.example", [answer], loopback_only)
    # A public answer beside it does not help: one bad address blocks the name.
    with pytest.raises(BlockedAddressError):
        check_addresses("images.attacker.example", ["93.184.216.34", answer], loopback_only)


@pytest.mark.parametrize(
    "address", ["169.254.169.254", "::ffff:169.254.169.254", "64:ff9b::a9fe:a9fe"]
)
def test_the_metadata_address_stays_blocked_whatever_loopback_is_allowed(address: str) -> None:
    with pytest.raises(BlockedAddressError):
        check_ip(address, AllowList.parse("127.0.0.0/8,::1"))
