"""The one HTTP client factory: httpx, behind the network guard, for downloads and webhooks.

httpx is the client API, and :func:`guarded_transport` the one way out. Webhooks send
through :func:`guarded_client` (an ``httpx.AsyncClient`` on it) over httpcore, httpx's own
pool: it reads the status of a sloppy answer (a 204 with a body) that aiohttp's strict
parser refuses, and only the status of a webhook answer matters. Downloads hand their
requests straight to the transport, over aiohttp: its C parser reads an image body for a
fraction of httpcore's CPU, and a download needs none of the client's per-request work (it
follows redirects by hand and keeps no cookies); docs/performance.md has the figures.

The guard's rules live in :mod:`imgcore._netguard`; this module makes every connection obey
them, through public seams only:

- Every request's URL is checked with :func:`check_url` before it is sent (IP literals
  against the rules, legacy IPv4 spellings refused). A redirect hop is a request of its
  own, so it is checked the same way.
- Host names resolve only through :func:`resolve_checked`, and the connection goes to one
  of the addresses it approved, whatever the DNS answers next: aiohttp's connector takes a
  resolver (:class:`GuardedResolver`), httpcore's pool a network backend.

Refusals raise :class:`BlockedAddressError` or :class:`FetchError` (``invalid_url``) from the
request. Proxies and ``.netrc`` from the environment are ignored (they would bypass the
guard), cookies are never kept, and redirects are not followed (follow them by hand).
"""

from __future__ import annotations

import contextlib
import functools
import socket
from collections.abc import AsyncIterable, AsyncIterator, Iterable, Iterator, Mapping
from http.cookiejar import CookieJar, DefaultCookiePolicy
from typing import Any, Literal

import aiohttp
import aiohttp.abc
import anyio
import httpcore
import httpx

from imgcore._netguard import AllowList, check_url, resolve_checked

__all__ = ["GuardedResolver", "guarded_client", "guarded_transport"]


class GuardedResolver(aiohttp.abc.AbstractResolver):
    """Resolves through :func:`resolve_checked`: the connector sees only approved addresses."""

    def __init__(self, allow: AllowList) -> None:
        self._allow = allow

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[aiohttp.abc.ResolveResult]:
        """Every address of ``host``, checked; one blocked address blocks the host."""
        addresses = await resolve_checked(host, port, self._allow)
        return [
            aiohttp.abc.ResolveResult(
                hostname=host,
                host=address,
                port=port,
                family=socket.AF_INET6 if ":" in address else socket.AF_INET,
                proto=0,
                flags=socket.AI_NUMERICHOST | socket.AI_NUMERICSERV,
            )
            for address in addresses
        ]

    async def close(self) -> None:
        """Nothing to release: resolution runs on anyio's resolver."""


def _transport_error(exc: aiohttp.ClientError | TimeoutError) -> httpx.TransportError:
    # httpx's exception for aiohttp's, most specific first, as httpx's own transport raises them.
    message = str(exc) or type(exc).__name__
    if isinstance(exc, aiohttp.ConnectionTimeoutError):
        return httpx.ConnectTimeout(message)
    if isinstance(exc, TimeoutError):
        return httpx.ReadTimeout(message)
    if isinstance(exc, aiohttp.ClientConnectorError):
        return httpx.ConnectError(message)
    if isinstance(exc, aiohttp.InvalidURL):
        return httpx.UnsupportedProtocol(message)
    if isinstance(exc, aiohttp.ClientResponseError):
        return httpx.RemoteProtocolError(message)
    if isinstance(exc, aiohttp.ClientConnectionError | aiohttp.ClientPayloadError):
        return httpx.ReadError(message)
    return httpx.TransportError(message)


@contextlib.contextmanager
def _aiohttp_errors() -> Iterator[None]:
    try:
        yield
    except (aiohttp.ClientError, TimeoutError) as exc:
        raise _transport_error(exc) from exc


class _AiohttpStream(httpx.AsyncByteStream):
    def __init__(self, response: aiohttp.ClientResponse) -> None:
        self._response = response

    def __aiter__(self) -> AsyncIterator[bytes]:
        return self

    async def __anext__(self) -> bytes:
        # Whatever has arrived, in one piece: a fixed chunk size would cost a trip through
        # every layer per 16 KiB of an image body (and an async generator, one more).
        try:
            chunk = await self._response.content.readany()
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise _transport_error(exc) from exc
        if not chunk:
            raise StopAsyncIteration
        return chunk

    async def aclose(self) -> None:
        # A body read to the end has already given its connection back; one cut short closes it.
        self._response.release()


@functools.lru_cache(maxsize=64)
def _client_timeout(connect: float | None, read: float | None) -> aiohttp.ClientTimeout:
    # One per distinct pair: every download asks with the same timeouts.
    return aiohttp.ClientTimeout(total=None, sock_connect=connect, sock_read=read)


class _AiohttpTransport(httpx.AsyncBaseTransport):
    """httpx on an aiohttp pool whose resolver is guarded (aiohttp's public seam)."""

    def __init__(self, allow: AllowList, limits: httpx.Limits) -> None:
        self._allow = allow
        self._limits = limits
        self._session: aiohttp.ClientSession | None = None

    def _open(self) -> aiohttp.ClientSession:
        # On the first request: a session belongs to the running loop.
        if self._session is None:
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(
                    limit=self._limits.max_connections or 0,
                    limit_per_host=0,
                    keepalive_timeout=self._limits.keepalive_expiry,
                    resolver=GuardedResolver(self._allow),
                    ssl=httpx.create_ssl_context(),
                ),
                # Bodies are read raw (decoded by the caller, under its limits); cookies never kept.
                auto_decompress=False,
                cookie_jar=aiohttp.DummyCookieJar(),
                trust_env=False,
            )
        return self._session

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        """Send ``request``; its ``timeout`` extension bounds connecting and each read."""
        timeout = request.extensions.get("timeout", {})
        try:
            body = request.content  # read already, as for every request without a stream
        except httpx.RequestNotRead:
            body = await request.aread()
        with _aiohttp_errors():
            response = await self._open().request(
                request.method,
                # As text, parsed as the guard parsed it (no parser may differ on the host).
                str(request.url),
                headers=request.headers.multi_items(),
                data=body or None,
                allow_redirects=False,
                compress=None,
                timeout=_client_timeout(timeout.get("connect"), timeout.get("read")),
            )
        return httpx.Response(
            status_code=response.status,
            headers=response.raw_headers,
            stream=_AiohttpStream(response),
            request=request,
            extensions={"http_version": b"HTTP/1.1"},
        )

    async def aclose(self) -> None:
        """Close the session and its connections."""
        if self._session is not None:
            session, self._session = self._session, None
            await session.close()


class _GuardedTransport(httpx.AsyncBaseTransport):
    """Checks each request's URL, then sends it on the inner transport."""

    def __init__(self, allow: AllowList, inner: httpx.AsyncBaseTransport) -> None:
        self._allow = allow
        self._inner = inner

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        """The answer to ``request``, if the guard lets its URL through."""
        check_url(str(request.url), self._allow)
        return await self._inner.handle_async_request(request)

    async def aclose(self) -> None:
        """Close the inner transport and its connections."""
        await self._inner.aclose()


class _GuardedBackend(httpcore.AnyIOBackend):
    """httpcore's network backend, connecting only to addresses :func:`resolve_checked` approved."""

    def __init__(self, allow: AllowList) -> None:
        self._allow = allow

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,  # noqa: ASYNC109 (httpcore's signature)
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        """A connection to the first approved address of ``host`` that answers."""
        try:
            with anyio.fail_after(timeout):
                addresses = await resolve_checked(host, port, self._allow)
                failure: httpcore.ConnectError | None = None
                for address in addresses:
                    try:
                        return await super().connect_tcp(
                            address,
                            port,
                            local_address=local_address,
                            socket_options=socket_options,
                        )
                    except httpcore.ConnectError as exc:
                        failure = exc
                assert failure is not None
                raise failure
        except TimeoutError as exc:
            raise httpcore.ConnectTimeout(f"connecting to {host}:{port} timed out") from exc


# Most specific first: the first match wins.
_HTTPCORE_ERRORS: tuple[tuple[type[Exception], type[httpx.TransportError]], ...] = (
    (httpcore.ConnectTimeout, httpx.ConnectTimeout),
    (httpcore.ReadTimeout, httpx.ReadTimeout),
    (httpcore.WriteTimeout, httpx.WriteTimeout),
    (httpcore.PoolTimeout, httpx.PoolTimeout),
    (httpcore.TimeoutException, httpx.TimeoutException),
    (httpcore.ConnectError, httpx.ConnectError),
    (httpcore.ReadError, httpx.ReadError),
    (httpcore.WriteError, httpx.WriteError),
    (httpcore.NetworkError, httpx.NetworkError),
    (httpcore.RemoteProtocolError, httpx.RemoteProtocolError),
    (httpcore.LocalProtocolError, httpx.LocalProtocolError),
    (httpcore.ProtocolError, httpx.ProtocolError),
    (httpcore.UnsupportedProtocol, httpx.UnsupportedProtocol),
)


@contextlib.contextmanager
def _httpcore_errors() -> Iterator[None]:
    # httpx's public exceptions for httpcore's, as httpx's own transport raises them.
    try:
        yield
    except Exception as exc:
        for core, public in _HTTPCORE_ERRORS:
            if isinstance(exc, core):
                raise public(str(exc)) from exc
        raise


class _CoreStream(httpx.AsyncByteStream):
    def __init__(self, inner: AsyncIterable[bytes]) -> None:
        self._inner = inner

    async def __aiter__(self) -> AsyncIterator[bytes]:
        with _httpcore_errors():
            async for part in self._inner:
                yield part

    async def aclose(self) -> None:
        close = getattr(self._inner, "aclose", None)
        if close is not None:
            await close()


class _HttpcoreTransport(httpx.AsyncBaseTransport):
    """httpx on an httpcore pool whose network backend is guarded (httpcore's public seam)."""

    def __init__(self, allow: AllowList, limits: httpx.Limits) -> None:
        self._pool = httpcore.AsyncConnectionPool(
            ssl_context=httpx.create_ssl_context(),
            max_connections=limits.max_connections,
            max_keepalive_connections=limits.max_keepalive_connections,
            keepalive_expiry=limits.keepalive_expiry,
            network_backend=_GuardedBackend(allow),
        )

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        """Send ``request`` on the pool; httpcore's errors become httpx's."""
        assert isinstance(request.stream, httpx.AsyncByteStream)
        core = httpcore.Request(
            method=request.method,
            url=httpcore.URL(
                scheme=request.url.raw_scheme,
                host=request.url.raw_host,
                port=request.url.port,
                target=request.url.raw_path,
            ),
            headers=request.headers.raw,
            content=request.stream,
            extensions=request.extensions,
        )
        with _httpcore_errors():
            response = await self._pool.handle_async_request(core)
        assert isinstance(response.stream, AsyncIterable)
        return httpx.Response(
            status_code=response.status,
            headers=response.headers,
            stream=_CoreStream(response.stream),
            extensions=response.extensions,
        )

    async def aclose(self) -> None:
        """Close the pool and its connections."""
        await self._pool.aclose()


def guarded_transport(
    allow: AllowList,
    *,
    limits: httpx.Limits | None = None,
    pool: Literal["aiohttp", "httpcore"] = "httpcore",
) -> httpx.AsyncBaseTransport:
    """An httpx transport that connects only to public or allowed addresses.

    ``pool`` is what carries the requests: ``httpcore`` (httpx's own, lenient) or
    ``aiohttp`` (fast bodies, strict parser: for downloads). On aiohttp, only
    ``limits.max_connections`` (None: unbounded) and ``keepalive_expiry`` apply.
    """
    limits = limits or httpx.Limits()
    inner: httpx.AsyncBaseTransport = (
        _AiohttpTransport(allow, limits) if pool == "aiohttp" else _HttpcoreTransport(allow, limits)
    )
    return _GuardedTransport(allow, inner)


def guarded_client(
    allow: AllowList,
    *,
    timeout: float | httpx.Timeout = 5.0,
    limits: httpx.Limits | None = None,
    headers: Mapping[str, str] | None = None,
    pool: Literal["aiohttp", "httpcore"] = "httpcore",
) -> httpx.AsyncClient:
    """An httpx client on :func:`guarded_transport` (``pool`` and ``limits`` are its)."""
    return httpx.AsyncClient(
        transport=guarded_transport(allow, limits=limits, pool=pool),
        timeout=timeout,
        headers=headers,
        cookies=CookieJar(DefaultCookiePolicy(allowed_domains=[])),
        follow_redirects=False,
        trust_env=False,
    )
