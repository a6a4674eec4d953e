"""URL rules: how a cell lists image URLs, and which URLs a row may name."""

from __future__ import annotations

import ipaddress
import re
from typing import Final

from imgcore._csvio.limits import CsvLimits, Problem, shown

__all__ = ["UrlRules", "split_urls", "url_problem"]

_LABEL: Final = r"[A-Za-z0-9_](?:[A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?"
_HOST_LABEL: Final = re.compile(_LABEL)
_SCHEME: Final = re.compile(r"([A-Za-z][A-Za-z0-9+.-]*):")
_BAD_CHAR: Final = re.compile(r"[\s\x00-\x1f\x7f]")
_AUTHORITY: Final = re.compile(r"[^/?#]*")
_PLAIN_SCHEMES: Final = ("http:", "https:")
# Bounds the memory a file of distinct host names can take; past it hosts are judged each time.
_AUTHORITY_CACHE_SIZE: Final = 4096


def split_urls(cell: str) -> list[str]:
    """The URLs of a cell: split on commas, whitespace around each and empty items dropped."""
    urls = [url.strip() for url in cell.split(",")]
    if "" in urls:
        urls = [url for url in urls if url]
    return urls


def url_problem(url: str, good_authorities: set[str] | None = None) -> Problem | None:
    """Why ``url`` is not an acceptable image URL; None if it is.

    ``good_authorities`` remembers the host[:port] parts already judged acceptable, so that a
    file naming one host a million times judges it once.
    """
    if good_authorities is not None:
        # "https://host:port/path" -> ["https:", "", "host:port", "path"]
        parts = url.split("/", 3)
        if (
            len(parts) > 2
            and parts[2] in good_authorities
            and parts[0] in _PLAIN_SCHEMES
            and not parts[1]
            and url.isprintable()
            and " " not in url
        ):
            # The checks below would pass: this scheme and host passed them before, and
            # isprintable() is, space aside, false for every character _BAD_CHAR finds.
            return None
    scheme = _SCHEME.match(url)
    if scheme is None:
        return "invalid_url", f"{shown(url)} is not an absolute http(s) URL"
    if scheme[1].lower() not in ("http", "https"):
        return "unsupported_scheme", f"{shown(url)}: only http and https URLs are accepted"
    if _BAD_CHAR.search(url):
        return "invalid_url", f"{shown(url)} contains spaces or control characters"
    start = scheme.end() + 2
    if not url.startswith("//", scheme.end()):
        return "invalid_url", f"{shown(url)} has no host"
    authority = _AUTHORITY.match(url, start)
    assert authority is not None  # the pattern matches the empty string
    hostport = authority[0]
    problem = _authority_problem(url, hostport)
    if (
        problem is None
        and good_authorities is not None
        and len(good_authorities) < _AUTHORITY_CACHE_SIZE
    ):
        good_authorities.add(hostport)
    return problem


def _authority_problem(url: str, hostport: str) -> Problem | None:
    """Why the host[:port] part of ``url`` is not acceptable; None if it is."""
    if "@" in hostport:
        return "url_credentials", f"{shown(url)} carries credentials; they are not accepted"
    if hostport.startswith("["):
        host, bracket, port_part = hostport[1:].partition("]")
        if not bracket or (port_part and not port_part.startswith(":")):
            return "invalid_url", f"{shown(url)} has a malformed IPv6 host"
        port = port_part[1:] if port_part else None
    else:
        host, colon, port_str = hostport.partition(":")
        port = port_str if colon else None
    if port is not None and not (
        port.isascii() and port.isdigit() and len(port) <= 5 and 0 < int(port) <= 65535
    ):
        return "invalid_url", f"{shown(url)} has an invalid port"
    if not host:
        return "invalid_url", f"{shown(url)} has no host"
    if hostport.startswith("["):
        try:
            ipaddress.IPv6Address(host)
        except ValueError:
            return "invalid_url", f"{shown(url)} has an invalid IPv6 host"
        return None
    try:
        ascii_host = host.encode("idna").decode("ascii")
    except UnicodeError:
        return "invalid_url", f"{shown(url)} has an invalid host name"
    labels = ascii_host.removesuffix(".").split(".")
    if not all(_HOST_LABEL.fullmatch(label) for label in labels):
        return "invalid_url", f"{shown(url)} has an invalid host name"
    return None


class UrlRules:
    """The URL rules of a data row under ``limits``, remembering the hosts judged acceptable."""

    def __init__(self, limits: CsvLimits) -> None:
        self.limits = limits
        self._good_authorities: set[str] = set()

    def problems(self, urls: list[str]) -> list[Problem]:
        """Why the URLs of one row (as ``split_urls`` gives them) are not acceptable."""
        limits = self.limits
        if not urls:
            return [("no_urls", "the row has no image URL")]
        if len(urls) > limits.max_urls_per_row:
            allowed = limits.max_urls_per_row
            message = f"the row has {len(urls)} URLs; at most {allowed} are allowed"
            return [("too_many_urls", message)]
        problems: list[Problem] = []
        max_length = limits.max_url_length
        good = self._good_authorities
        for url in urls:
            if len(url) > max_length:
                problems.append(
                    ("url_too_long", f"{shown(url)} is longer than {max_length} characters")
                )
            elif (problem := url_problem(url, good)) is not None:
                problems.append(problem)
        return problems
