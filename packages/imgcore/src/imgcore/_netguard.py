"""Which network addresses imgcore may reach (the SSRF rules), for downloads and webhooks alike.

Only public unicast addresses are reachable unless an :class:`AllowList` names
the address or host. :func:`check_url` is the rule for a URL (scheme, credentials, port,
IP literals, legacy IPv4 spellings), :func:`resolve_checked` the rule for a host name's
addresses; :mod:`imgcore._http` makes every connection go through both. Everything here is
pure except :func:`resolve_checked` and :func:`validate_webhook_url`, which ask the system
resolver.
"""

from __future__ import annotations

import re
import socket
from collections.abc import Iterable
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv4Network, IPv6Address, IPv6Network, ip_address, ip_network
from urllib.parse import urlsplit

import anyio
from yarl import URL

from imgcore.errors import BlockedAddressError, FetchError, WebhookURLError

__all__ = [
    "AllowList",
    "BlockedAddressError",
    "FetchError",
    "check_addresses",
    "check_host",
    "check_ip",
    "check_url",
    "invalid_url",
    "is_public_address",
    "resolve_checked",
    "validate_webhook_url",
]

IPAddress = IPv4Address | IPv6Address
IPNetwork = IPv4Network | IPv6Network


# Ranges that are never public, beyond what the ipaddress properties already say
# (their coverage differs between Python versions, so the list is explicit).
_BLOCKED_V4 = tuple(
    IPv4Network(n)
    for n in (
        "0.0.0.0/8",  # "this network", unspecified
        "10.0.0.0/8",  # private
        "100.64.0.0/10",  # carrier-grade NAT
        "127.0.0.0/8",  # loopback
        "169.254.0.0/16",  # link-local, cloud metadata (169.254.169.254)
        "172.16.0.0/12",  # private
        "192.0.0.0/24",  # IETF protocol assignments
        "192.0.2.0/24",  # documentation
        "192.88.99.0/24",  # 6to4 relay anycast
        "192.168.0.0/16",  # private
        "198.18.0.0/15",  # benchmarking
        "198.51.100.0/24",  # documentation
        "203.0.113.0/24",  # documentation
        "224.0.0.0/4",  # multicast
        "240.0.0.0/4",  # reserved, broadcast
    )
)
_BLOCKED_V6 = tuple(
    IPv6Network(n)
    for n in (
        "::/128",  # unspecified
        "::1/128",  # loopback
        "64:ff9b:1::/48",  # local-use NAT64
        "100::/64",  # discard
        "2001::/23",  # IETF protocol assignments, incl. Teredo 2001::/32
        "2001:db8::/32",  # documentation
        "3fff::/20",  # documentation
        "5f00::/16",  # segment routing
        "fc00::/7",  # unique local
        "fe80::/10",  # link-local
        "fec0::/10",  # site-local (deprecated)
        "ff00::/8",  # multicast
    )
)
_NAT64 = IPv6Network("64:ff9b::/96")
_V4_COMPATIBLE = IPv6Network("::/96")


def _embedded_v4(ip: IPv6Address) -> IPv4Address | None:
    """The IPv4 address that packets to ``ip`` end up at, for the forms that carry one."""
    if ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    if ip.sixtofour is not None:
        return ip.sixtofour
    if ip in _NAT64 or (ip in _V4_COMPATIBLE and int(ip) > 1):
        return IPv4Address(int(ip) & 0xFFFFFFFF)
    return None


def is_public_address(ip: IPAddress) -> bool:
    """Whether ``ip`` is a public unicast address (when in doubt: not public)."""
    if isinstance(ip, IPv6Address):
        embedded = _embedded_v4(ip)
        if embedded is not None:
            return is_public_address(embedded)
        blocked: tuple[IPNetwork, ...] = _BLOCKED_V6
    else:
        blocked = _BLOCKED_V4
    if any(ip in net for net in blocked):
        return False
    return not (
        ip.is_private
        or ip.is_loopback
        or ip.is_link_local
        or ip.is_multicast
        or ip.is_reserved
        or ip.is_unspecified
        or not ip.is_global
    )


_HOST_LABEL = re.compile(r"(?!-)[a-z0-9-]{1,63}(?<!-)\Z")


def _host_name(entry: str) -> str | None:
    name = entry.lower().rstrip(".")
    labels = name.split(".")
    if len(name) > 253 or not all(_HOST_LABEL.match(label) for label in labels):
        return None
    # An all-digit last label is a mistyped IP address, not a host name.
    return None if labels[-1].isdigit() else name


@dataclass(frozen=True)
class AllowList:
    """Networks and host names reachable although they are not public."""

    networks: tuple[IPNetwork, ...] = ()
    hosts: frozenset[str] = frozenset()

    @classmethod
    def parse(cls, spec: str | Iterable[str]) -> AllowList:
        """Read ``"127.0.0.0/8,::1,intranet.local"`` (or its items); ValueError on junk."""
        items = spec.split(",") if isinstance(spec, str) else spec
        networks: list[IPNetwork] = []
        hosts: set[str] = set()
        for item in items:
            entry = item.strip().strip("[]")
            if not entry:
                continue
            try:
                networks.append(ip_network(entry))
                continue
            except ValueError:
                pass
            name = _host_name(entry)
            if name is None:
                raise ValueError(f"not a CIDR, IP address or host name: {item.strip()!r}")
            hosts.add(name)
        return cls(tuple(networks), frozenset(hosts))

    def allows_ip(self, ip: IPAddress) -> bool:
        """Whether ``ip`` (IPv4-mapped IPv6 counts as its IPv4) is in an allowed network."""
        if isinstance(ip, IPv6Address) and ip.ipv4_mapped is not None:
            ip = ip.ipv4_mapped
        return any(ip.version == net.version and ip in net for net in self.networks)

    def allows_host(self, host: str) -> bool:
        """Whether the host name itself is allowed (exact match, case-insensitive)."""
        return host.lower().rstrip(".") in self.hosts


def _reachable(ip: IPAddress | str, allow: AllowList) -> bool:
    address = ip_address(ip) if isinstance(ip, str) else ip
    return allow.allows_ip(address) or is_public_address(address)


def check_ip(ip: IPAddress | str, allow: AllowList) -> None:
    """Raise :class:`BlockedAddressError` unless ``ip`` is public or allowed."""
    if not _reachable(ip, allow):
        raise BlockedAddressError(f"blocked: {ip} is neither public nor allowed")


async def resolve_checked(host: str, port: int, allow: AllowList) -> list[str]:
    """Resolve ``host`` and return its addresses, all checked; one blocked blocks the host.

    The system resolver also reads odd IPv4 notations (``2130706433``, ``0x7f.1``,
    ``127.1``), so the check sees the address a connection would really reach.
    """
    name = host.strip("[]")
    try:
        infos = await anyio.getaddrinfo(name, port, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        # A name that does not exist will not start existing on retry; other failures may.
        missing = exc.errno in (socket.EAI_NONAME, getattr(socket, "EAI_NODATA", None))
        raise FetchError(
            f"cannot resolve {name!r}: {exc}", reason="connect_error", transient=not missing
        ) from exc
    return check_addresses(name, [str(info[4][0]) for info in infos], allow)


def check_addresses(host: str, addresses: Iterable[str], allow: AllowList) -> list[str]:
    """The distinct ``addresses`` of ``host``, or :class:`BlockedAddressError` if any is blocked.

    One blocked address blocks the host: picking the good ones would let a name that
    mixes public and private answers steer a later connection inside.
    """
    unique = list(dict.fromkeys(addresses))
    if not unique:
        raise FetchError(f"{host!r} has no address", reason="connect_error", transient=False)
    if allow.allows_host(host):
        return unique
    for address in unique:
        if not _reachable(address, allow):
            raise BlockedAddressError(
                f"blocked: {host!r} resolves to {address}, neither public nor allowed"
            )
    return unique


def invalid_url(url: str, why: str) -> FetchError:
    """The error for a URL the guard refuses as malformed (reason ``invalid_url``)."""
    return FetchError(f"{why}: {url}", reason="invalid_url", url=url)


def check_host(host: str, url: str, allow: AllowList) -> None:
    """Check a URL's host before connecting: IP literals against the rules, odd IPv4 refused.

    An IP literal is connected to without resolving, so it is checked here; a host name is
    left to :func:`resolve_checked`. Legacy IPv4 spellings (``2130706433``, ``0x7f.1``,
    ``127.1``, ``0177.0.0.1``) are invalid URLs, allowed or not.
    """
    try:
        literal = ip_address(host.strip("[]"))
    except ValueError:
        pass
    else:
        try:
            check_ip(literal, allow)
        except BlockedAddressError as exc:
            raise BlockedAddressError(f"{exc.message}: {url}", url=url) from None
        return
    try:
        socket.inet_aton(host)
    except OSError:
        return  # a host name: its addresses are checked when it is resolved
    # What each of these means depends on who parses it, so no parser gets to decide.
    raise invalid_url(url, f"{host!r} is not a canonical IPv4 address")


def check_url(url: str | URL, allow: AllowList) -> URL:
    """``url`` parsed as the HTTP client will use it; ``invalid_url`` or blocked literals raise.

    Raises :class:`FetchError` (reason ``invalid_url``) for anything but http(s) with a host,
    no credentials and a valid port, and :class:`BlockedAddressError` for a blocked IP literal.
    """
    try:
        parsed = url if isinstance(url, URL) else URL(url)
        port = parsed.port
    except (ValueError, TypeError) as exc:
        raise invalid_url(str(url), f"invalid URL ({exc})") from None
    text = str(url)
    if parsed.scheme not in ("http", "https"):
        raise invalid_url(text, "only http and https URLs can be fetched")
    host = parsed.raw_host
    if not host:
        raise invalid_url(text, "URL has no host")
    if parsed.raw_user is not None or parsed.raw_password is not None:
        raise invalid_url(text, "URL carries credentials")
    if port is not None and not 0 < port < 65536:
        raise invalid_url(text, "URL port out of range")
    check_host(host, text, allow)
    return parsed


async def validate_webhook_url(url: str, *, allow: tuple[str, ...] = ()) -> None:
    """Raise :class:`WebhookURLError` unless ``url`` is http(s) to an allowed address.

    The same rules as a download's URL (:func:`check_host`, :func:`resolve_checked`), so a
    webhook cannot reach what an image URL cannot.
    """
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise WebhookURLError(f"invalid webhook URL: {exc}") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise WebhookURLError("the webhook URL must be an http:// or https:// URL with a host")
    if parts.username or parts.password:
        raise WebhookURLError("the webhook URL must not carry credentials")
    if len(url) > 2048:
        raise WebhookURLError("the webhook URL is longer than 2048 characters")
    default_port = 443 if parts.scheme == "https" else 80
    allowed = AllowList.parse(allow)
    try:
        check_host(parts.hostname, url, allowed)
        await resolve_checked(parts.hostname, port or default_port, allowed)
    except FetchError as exc:
        raise WebhookURLError(f"webhook URL not allowed: {exc}") from None
