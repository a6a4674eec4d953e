"""The one guarded HTTP client, on both pools, against real servers on loopback only."""

from __future__ import annotations

import socket
from typing import Literal

import httpx
import pytest
from imgcore._http import guarded_client
from imgcore._netguard import AllowList
from imgcore.errors import BlockedAddressError, FetchError
from support.origin import OriginServer

pytestmark = pytest.mark.anyio

COFFEE = "/corpus/img/s03_coffee.jpg"
ONLY_FIRST = AllowList.parse("127.0.0.1/32")
POOLS: list[Literal["aiohttp", "httpcore"]] = ["aiohttp", "httpcore"]


@pytest.fixture(params=POOLS)
def pool(request: pytest.FixtureRequest) -> Literal["aiohttp", "httpcore"]:
    return request.param  # type: ignore[no-any-return]


async def test_an_allowed_address_is_reached(
    origin: OriginServer, pool: Literal["aiohttp", "httpcore"]
) -> None:
    async with guarded_client(ONLY_FIRST, pool=pool) as client:
        response = await client.get(origin.url(COFFEE))
    assert response.status_code == 200
    assert response.content.startswith(b"\xff\xd8\xff")


async def test_a_loopback_alias_outside_the_allow_list_is_never_connected_to(
    other_origin: OriginServer, pool: Literal["aiohttp", "httpcore"]
) -> None:
    async with guarded_client(ONLY_FIRST, pool=pool) as client:
        with pytest.raises(BlockedAddressError):
            await client.get(other_origin.url(COFFEE))
    assert other_origin.connections == 0


@pytest.mark.parametrize("host", ["2130706433", "0x7f.1", "127.1"])
async def test_a_legacy_ipv4_spelling_is_refused_even_when_allowed(
    origin: OriginServer, pool: Literal["aiohttp", "httpcore"], host: str
) -> None:
    async with guarded_client(AllowList.parse("127.0.0.0/8"), pool=pool) as client:
        with pytest.raises(FetchError) as caught:
            await client.get(f"http://{host}:{origin.port}{COFFEE}")
    assert caught.value.reason == "invalid_url"
    assert origin.connections == 0


async def test_a_host_name_resolving_to_a_blocked_address_is_refused(
    origin: OriginServer, pool: Literal["aiohttp", "httpcore"]
) -> None:
    async with guarded_client(AllowList(), pool=pool) as client:
        with pytest.raises(BlockedAddressError):
            await client.get(f"http://localhost:{origin.port}{COFFEE}")
    assert origin.connections == 0


async def test_every_redirect_hop_is_checked_when_httpx_follows_them(
    origin: OriginServer, other_origin: OriginServer, pool: Literal["aiohttp", "httpcore"]
) -> None:
    # The guard sits in the transport, which sees each hop: following redirects cannot skip it.
    async with guarded_client(ONLY_FIRST, pool=pool) as client:
        with pytest.raises(BlockedAddressError):
            await client.get(
                origin.url(f"/redirect?to={other_origin.url(COFFEE)}"), follow_redirects=True
            )
    assert other_origin.connections == 0


async def test_a_refused_connection_is_a_connect_error_not_a_timeout(
    pool: Literal["aiohttp", "httpcore"],
) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # closed again: nothing listens there
    async with guarded_client(ONLY_FIRST, pool=pool) as client:
        with pytest.raises(httpx.ConnectError):
            await client.get(f"http://127.0.0.1:{port}/x")


async def test_cookies_are_never_kept(
    origin: OriginServer, pool: Literal["aiohttp", "httpcore"]
) -> None:
    origin.route(
        "/set-cookie",
        lambda req: req.reply(200, b"ok", headers={"Set-Cookie": "session=1; Path=/"}),
    )
    async with guarded_client(ONLY_FIRST, pool=pool) as client:
        await client.get(origin.url("/set-cookie"))
        assert len(client.cookies.jar) == 0
