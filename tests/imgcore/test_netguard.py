"""The SSRF address rules: pure classification, plus the system resolver on loopback only."""

from __future__ import annotations

from ipaddress import ip_address

import pytest
from imgcore._netguard import (
    AllowList,
    BlockedAddressError,
    FetchError,
    check_addresses,
    check_ip,
    check_url,
    is_public_address,
    resolve_checked,
    validate_webhook_url,
)
from imgcore.errors import WebhookURLError

NOTHING = AllowList()

NOT_PUBLIC = [
    "0.0.0.0",
    "0.1.2.3",
    "10.0.0.1",
    "10.255.255.255",
    "100.64.0.1",
    "100.127.255.254",
    "127.0.0.1",
    "127.0.0.2",
    "169.254.169.254",
    "172.16.0.1",
    "172.31.255.255",
    "192.0.0.8",
    "192.0.2.1",
    "192.88.99.1",
    "192.168.1.1",
    "198.18.0.1",
    "198.19.255.255",
    "198.51.100.7",
    "203.0.113.9",
    "224.0.0.1",
    "239.255.255.250",
    "240.0.0.1",
    "255.255.255.255",
    "::",
    "::1",
    "::ffff:10.0.0.1",
    "::ffff:127.0.0.1",
    "::ffff:169.254.169.254",
    "::10.0.0.1",
    "::127.0.0.1",
    "64:ff9b::a00:1",
    "64:ff9b::7f00:1",
    "64:ff9b:1::1",
    "2002:a00:1::",
    "2002:7f00:1::1",
    "2002:a9fe:a9fe::",
    "2001::1",
    "2001:0:4136:e378:8000:63bf:3fff:fdd2",
    "2001:db8::1",
    "3fff::1",
    "100::1",
    "fc00::1",
    "fd12:3456:789a::1",
    "fe80::1",
    "fe80::1%1",
    "fec0::1",
    "ff02::1",
    "ff05::1:3",
]

PUBLIC = [
    "93.184.216.34",
    "8.8.8.8",
    "1.1.1.1",
    "172.32.0.1",
    "100.128.0.1",
    "2606:4700::1",
    "2a00:1450:4001:82a::200e",
    "::ffff:93.184.216.34",
    "64:ff9b::5db8:d822",
    "2002:5db8:d822::1",
]


@pytest.mark.parametrize("address", NOT_PUBLIC)
def test_non_public_addresses_are_not_public(address: str) -> None:
    assert not is_public_address(ip_address(address))


@pytest.mark.parametrize("address", PUBLIC)
def test_public_addresses_are_public(address: str) -> None:
    assert is_public_address(ip_address(address))


def test_check_ip_blocks_cloud_metadata_address() -> None:
    with pytest.raises(BlockedAddressError) as caught:
        check_ip("169.254.169.254", NOTHING)
    assert caught.value.reason == "blocked_address"
    assert not caught.value.transient


def test_check_ip_lets_public_address_through() -> None:
    check_ip(ip_address("93.184.216.34"), NOTHING)


def test_check_ip_lets_allowed_network_through() -> None:
    check_ip("10.1.2.3", AllowList.parse("10.0.0.0/8"))


def test_allowed_ipv4_network_covers_its_ipv4_mapped_form() -> None:
    assert AllowList.parse("127.0.0.0/8").allows_ip(ip_address("::ffff:127.0.0.1"))


def test_allow_list_does_not_widen_past_its_networks() -> None:
    with pytest.raises(BlockedAddressError):
        check_ip("127.0.0.2", AllowList.parse("127.0.0.1/32"))


def test_blocked_address_error_is_a_fetch_error() -> None:
    assert issubclass(BlockedAddressError, FetchError)


def test_allow_list_parses_cidrs_ips_and_host_names() -> None:
    allow = AllowList.parse("127.0.0.0/8, ::1 ,intranet.local,")
    assert allow.allows_ip(ip_address("127.9.9.9"))
    assert allow.allows_ip(ip_address("::1"))
    assert allow.allows_host("intranet.local")
    assert not allow.allows_host("other.local")


def test_allow_list_accepts_an_iterable_of_entries() -> None:
    allow = AllowList.parse(["10.0.0.0/8", "[fd00::1]"])
    assert allow.allows_ip(ip_address("10.2.3.4"))
    assert allow.allows_ip(ip_address("fd00::1"))


def test_allow_list_host_names_match_case_insensitively_and_with_trailing_dot() -> None:
    assert AllowList.parse("Intranet.Local").allows_host("INTRANET.local.")


def test_empty_allow_list_allows_nothing() -> None:
    allow = AllowList.parse("")
    assert not allow.allows_ip(ip_address("127.0.0.1"))
    assert not allow.allows_host("localhost")


@pytest.mark.parametrize(
    "junk", ["10.0.0.0/33", "999.1.1.1", "10.0.0.1/8", "not a host", "-bad-.local", "a..b", "/8"]
)
def test_allow_list_rejects_junk(junk: str) -> None:
    with pytest.raises(ValueError, match="not a CIDR"):
        AllowList.parse(junk)


def test_one_blocked_address_blocks_the_whole_host() -> None:
    with pytest.raises(BlockedAddressError, match=r"10\.0\.0\.1"):
        check_addresses("mixed.example", ["93.184.216.34", "10.0.0.1"], NOTHING)


def test_check_addresses_returns_distinct_public_addresses_in_order() -> None:
    addresses = ["2606:4700::1", "93.184.216.34", "2606:4700::1"]
    assert check_addresses("ok.example", addresses, NOTHING) == ["2606:4700::1", "93.184.216.34"]


def test_allowed_host_name_skips_the_address_check() -> None:
    allow = AllowList.parse("intranet.local")
    assert check_addresses("intranet.local", ["10.0.0.5"], allow) == ["10.0.0.5"]


def test_host_without_addresses_is_a_permanent_connect_error() -> None:
    with pytest.raises(FetchError) as caught:
        check_addresses("empty.example", [], NOTHING)
    assert caught.value.reason == "connect_error"
    assert not caught.value.transient


LOOPBACK_SPELLINGS = ["127.0.0.1", "2130706433", "0x7f.1", "0x7f000001", "0177.0.0.1", "127.1"]


@pytest.mark.anyio
@pytest.mark.parametrize("host", LOOPBACK_SPELLINGS)
async def test_odd_spellings_of_loopback_are_blocked(host: str) -> None:
    with pytest.raises(BlockedAddressError, match=r"127\.0\.0\.1"):
        await resolve_checked(host, 80, NOTHING)


@pytest.mark.anyio
@pytest.mark.parametrize("host", LOOPBACK_SPELLINGS)
async def test_odd_spellings_of_loopback_resolve_to_127_0_0_1(host: str) -> None:
    assert await resolve_checked(host, 80, AllowList.parse("127.0.0.0/8")) == ["127.0.0.1"]


@pytest.mark.anyio
async def test_localhost_is_blocked() -> None:
    with pytest.raises(BlockedAddressError):
        await resolve_checked("localhost", 80, NOTHING)


@pytest.mark.anyio
async def test_bracketed_ipv4_mapped_loopback_is_blocked() -> None:
    with pytest.raises(BlockedAddressError):
        await resolve_checked("[::ffff:127.0.0.1]", 80, NOTHING)


@pytest.mark.anyio
async def test_ipv6_loopback_is_blocked() -> None:
    with pytest.raises(BlockedAddressError):
        await resolve_checked("::1", 80, NOTHING)


@pytest.mark.anyio
async def test_allowed_host_name_resolves_without_address_check() -> None:
    assert "127.0.0.1" in await resolve_checked("localhost", 80, AllowList.parse("localhost"))


# webhook URLs: the same rules as image URLs (issue #16, finding 7)

LEGACY_LOOPBACK = ["2130706433", "0x7f.1", "0x7f000001", "127.1", "0177.0.0.1"]


@pytest.mark.anyio
@pytest.mark.parametrize("host", LEGACY_LOOPBACK)
async def test_webhook_url_with_a_legacy_ipv4_spelling_is_refused_even_when_allowed(
    host: str,
) -> None:
    with pytest.raises(WebhookURLError, match="not a canonical IPv4 address"):
        await validate_webhook_url(f"http://{host}:9/hook", allow=("127.0.0.0/8",))


@pytest.mark.anyio
async def test_webhook_url_with_an_allowed_canonical_address_is_accepted() -> None:
    await validate_webhook_url("http://127.0.0.1:9/hook", allow=("127.0.0.0/8",))


@pytest.mark.anyio
async def test_webhook_url_with_a_blocked_ip_literal_is_refused() -> None:
    with pytest.raises(WebhookURLError, match="blocked"):
        await validate_webhook_url("http://[::ffff:127.0.0.2]:9/hook", allow=("127.0.0.1",))


@pytest.mark.parametrize("host", LEGACY_LOOPBACK)
def test_check_url_refuses_legacy_ipv4_spellings_as_invalid(host: str) -> None:
    with pytest.raises(FetchError) as caught:
        check_url(f"http://{host}/x.jpg", AllowList.parse("127.0.0.0/8"))
    assert caught.value.reason == "invalid_url"


def test_check_url_blocks_an_ip_literal_outside_the_allow_list() -> None:
    with pytest.raises(BlockedAddressError):
        check_url("http://127.0.0.2/x.jpg", AllowList.parse("127.0.0.1"))


def test_check_url_lets_host_names_through_to_resolution() -> None:
    assert check_url("http://localhost/x.jpg", NOTHING).raw_host == "localhost"
