"""The downloader: size and time limits, retries and redirects over the one guarded client.

Requests go through :func:`imgcore._http.guarded_transport`, the transport webhooks use too,
so the SSRF guard (:mod:`imgcore._netguard`) decides every hop: the transport checks each
request's URL before it connects. Redirects are followed by hand; a redirect's target is
checked as soon as it arrives, for the error to name it.
"""

from __future__ import annotations

import random
import ssl
import time
import zlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from types import TracebackType

import anyio
import httpx
import msgspec
from yarl import URL

from imgcore._compress import sniff_format
from imgcore._http import guarded_transport
from imgcore._netguard import AllowList, check_url, invalid_url
from imgcore._version import __version__
from imgcore.errors import BlockedAddressError, FetchError

__all__ = [
    "BlockedAddressError",
    "FetchError",
    "FetchOptions",
    "FetchedImage",
    "Fetcher",
    "Validators",
    "parse_retry_after",
]

_REDIRECTS = frozenset({301, 302, 303, 307, 308})


class FetchOptions(msgspec.Struct, frozen=True, kw_only=True):
    """Limits and policy of a :class:`Fetcher`; ValueError on impossible values."""

    allow: tuple[str, ...] = ()
    """Non-public CIDRs, IPs or host names that may be reached (empty: public only)."""
    max_bytes: int = 50_000_000
    """Largest body accepted, counted after any Content-Encoding is decoded."""
    connect_timeout: float = 5.0
    """Seconds to resolve and connect."""
    read_timeout: float = 15.0
    """Seconds to wait for each read (and write)."""
    total_timeout: float = 60.0
    """Seconds one attempt may take, all its redirect hops included; waiting for a free
    download slot does not count, and each retry gets the full amount again."""
    max_redirects: int = 5
    """Redirects followed per attempt."""
    max_attempts: int = 4
    """Attempts per download: the first one plus retries of transient failures."""
    backoff_base: float = 0.5
    """Seconds of the first retry's backoff ceiling; doubles each retry (full jitter)."""
    backoff_max: float = 20.0
    """Longest wait between attempts, also the cap on a server's Retry-After."""
    concurrency: int = 32
    """Requests in flight at once, over all hosts."""
    per_host: int = 8
    """Requests in flight at once to one host."""
    user_agent: str = f"imgcore/{__version__}"
    """The User-Agent header sent."""

    def __post_init__(self) -> None:
        positive = {
            "max_bytes": self.max_bytes,
            "connect_timeout": self.connect_timeout,
            "read_timeout": self.read_timeout,
            "total_timeout": self.total_timeout,
            "max_attempts": self.max_attempts,
            "concurrency": self.concurrency,
            "per_host": self.per_host,
        }
        for name, value in positive.items():
            if value <= 0:
                raise ValueError(f"{name} must be positive, not {value!r}")
        if self.max_redirects < 0 or self.backoff_base < 0 or self.backoff_max < 0:
            raise ValueError("max_redirects, backoff_base and backoff_max must not be negative")
        AllowList.parse(self.allow)


class FetchedImage(msgspec.Struct, frozen=True, kw_only=True):
    """A downloaded body whose magic bytes name an accepted image format."""

    url: str
    """The URL asked for."""
    final_url: str
    """The URL the body came from, after redirects."""
    data: bytes
    """The body, Content-Encoding decoded."""
    format: str
    """What the magic bytes say (``JPEG``, ``PNG``, ``WEBP``… see compress.sniff_format)."""
    content_type: str | None
    """The Content-Type header as sent (informative only)."""
    status: int
    """The HTTP status of the final response."""
    attempts: int
    """Attempts made, the successful one included."""
    elapsed: float
    """Seconds from the call to the result, retries and backoff included."""
    etag: str | None = None
    """The final response's ``ETag``, as sent."""
    last_modified: str | None = None
    """The final response's ``Last-Modified``, as sent."""


class Validators(msgspec.Struct, frozen=True, kw_only=True):
    """What an origin sent to identify a body (see :meth:`Fetcher.fetch_changed`)."""

    etag: str | None = None
    last_modified: str | None = None

    def headers(self) -> dict[str, str]:
        """The conditional request headers these validators make."""
        headers = {}
        if self.etag:
            headers["If-None-Match"] = self.etag
        if self.last_modified:
            headers["If-Modified-Since"] = self.last_modified
        return headers


def parse_retry_after(value: str | None, *, now: datetime | None = None) -> float | None:
    """Seconds a ``Retry-After`` header (seconds or HTTP-date) asks to wait; None if unusable."""
    if value is None:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - (now or datetime.now(UTC))).total_seconds())


@dataclass
class _HostSlots:
    semaphore: anyio.Semaphore
    users: int = 0


@dataclass(frozen=True)
class _Body:
    final_url: str
    data: bytes
    content_type: str | None
    status: int
    etag: str | None
    last_modified: str | None


_NOT_MODIFIED = object()
"""What an attempt answered with 304 to a conditional GET returns."""


def _too_large(url: str, limit: int) -> FetchError:
    return FetchError(f"body larger than {limit} bytes: {url}", reason="too_large", url=url)


def _inflate(decoder: zlib._Decompress, data: bytes, room: int, url: str) -> bytes:
    """Decode ``data`` but never produce more than ``room`` bytes (a gzip bomb stops here)."""
    parts: list[bytes] = []
    produced = 0
    while data:
        part = decoder.decompress(data, room - produced + 1)
        produced += len(part)
        if produced > room:
            raise _too_large(url, room)
        parts.append(part)
        data = decoder.unconsumed_tail
    return b"".join(parts)


def _image_format(body: _Body) -> str:
    # The magic bytes decide, whatever the Content-Type claims.
    image_format = sniff_format(body.data)
    if image_format is None:
        raise FetchError(f"body is not an accepted image: {body.final_url}", reason="not_an_image")
    return image_format


def _status_error(response: httpx.Response, url: httpx.URL) -> FetchError:
    status = response.status_code
    transient = status == 429 or status >= 500
    return FetchError(
        f"HTTP {status} from {url}",
        reason="http_status",
        status=status,
        transient=transient,
        retry_after=parse_retry_after(response.headers.get("retry-after")) if transient else None,
    )


def _deadline_error(url: str, errors: list[FetchError], *, in_flight: bool) -> FetchError:
    attempts = len(errors) + in_flight
    when = f"during attempt {attempts}" if in_flight else f"before attempt {attempts + 1}"
    last = f" (last error: {errors[-1]})" if errors else ""
    return FetchError(
        f"the image deadline passed {when}{last}: {url}",
        reason="deadline_exceeded",
        url=url,
        attempts=attempts,
    )


def _is_tls_failure(exc: BaseException) -> bool:
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, ssl.SSLError):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


class Fetcher:
    """Downloads images over one shared HTTP client; use ``async with Fetcher() as f``."""

    def __init__(self, options: FetchOptions | None = None) -> None:
        self.options = options or FetchOptions()
        self._allow = AllowList.parse(self.options.allow)
        self._http: httpx.AsyncBaseTransport | None = None
        # Built once: every request of a download carries the same headers and timeouts.
        self._headers = httpx.Headers(
            {
                "User-Agent": self.options.user_agent,
                "Accept": "image/avif,image/webp,image/*,*/*;q=0.8",
                "Accept-Encoding": "identity",
            }
        )
        opts = self.options
        self._timeouts = {
            "connect": opts.connect_timeout,
            "read": opts.read_timeout,
            "write": opts.read_timeout,
            "pool": opts.connect_timeout,
        }
        self._overall = anyio.Semaphore(self.options.concurrency)
        self._hosts: dict[str, _HostSlots] = {}

    def _transport(self) -> httpx.AsyncBaseTransport:
        if self._http is None:
            # Our semaphores bound the requests in flight, so the pool need not.
            self._http = guarded_transport(
                self._allow,
                limits=httpx.Limits(max_connections=None, keepalive_expiry=15.0),
                pool="aiohttp",  # its C parser reads a body for a fraction of httpcore's CPU
            )
        return self._http

    async def __aenter__(self) -> Fetcher:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close the shared transport and its connections."""
        if self._http is not None:
            transport, self._http = self._http, None
            await transport.aclose()

    async def fetch(self, url: str, *, deadline: float | None = None) -> FetchedImage:
        """Download ``url``, retrying transient failures; raises :class:`FetchError`.

        ``deadline`` (a :func:`time.monotonic` time) bounds everything — waiting for a slot,
        each attempt, the backoff between them: past it, or when a retry could not start
        before it, the download fails with reason ``deadline_exceeded``.
        """
        fetched = await self._fetch_within(url, deadline, self._headers)
        assert fetched is not None  # only a conditional GET is answered Not Modified
        return fetched

    async def fetch_changed(
        self, url: str, validators: Validators, *, deadline: float | None = None
    ) -> FetchedImage | None:
        """As :meth:`fetch`, but a conditional GET: None when the origin answers
        ``304 Not Modified`` to ``validators`` (``If-None-Match``, ``If-Modified-Since``),
        so the body it would send is the one they describe. They are sent to ``url`` only:
        a redirect's target is asked without them (and answers with its body)."""
        conditional = validators.headers()
        if not conditional:
            return await self.fetch(url, deadline=deadline)
        headers = self._headers.copy()
        headers.update(conditional)
        return await self._fetch_within(url, deadline, headers)

    async def _fetch_within(
        self, url: str, deadline: float | None, headers: httpx.Headers
    ) -> FetchedImage | None:
        if deadline is None:
            return await self._fetch(url, None, [], headers)
        errors: list[FetchError] = []
        with anyio.move_on_after(deadline - time.monotonic()):
            return await self._fetch(url, deadline, errors, headers)
        raise _deadline_error(url, errors, in_flight=True)

    async def _fetch(
        self, url: str, deadline: float | None, errors: list[FetchError], headers: httpx.Headers
    ) -> FetchedImage | None:
        started = time.monotonic()
        attempt = 0
        while True:
            attempt += 1
            try:
                # The transport's guard checks each hop's URL before it connects.
                body = await self._attempt(url, headers)
                if body is None:
                    return None
                image_format = _image_format(body)
            except FetchError as exc:
                exc.url = url
                exc.attempts = attempt
                errors.append(exc)
                if not exc.transient or attempt >= self.options.max_attempts:
                    raise
                backoff = self._backoff(attempt, exc.retry_after)
                if deadline is not None and time.monotonic() + backoff >= deadline:
                    # Waiting would only end in the deadline: say so now, with the cause.
                    raise _deadline_error(url, errors, in_flight=False) from exc
                await anyio.sleep(backoff)
                continue
            return FetchedImage(
                url=url,
                final_url=body.final_url,
                data=body.data,
                format=image_format,
                content_type=body.content_type,
                status=body.status,
                attempts=attempt,
                elapsed=time.monotonic() - started,
                etag=body.etag,
                last_modified=body.last_modified,
            )

    def _backoff(self, attempt: int, retry_after: float | None) -> float:
        opts = self.options
        if retry_after is not None:
            return min(retry_after, opts.backoff_max)
        ceiling = min(opts.backoff_max, opts.backoff_base * 2.0 ** min(attempt - 1, 60))
        return random.uniform(0.0, ceiling)

    async def _attempt(self, url: str, headers: httpx.Headers) -> _Body | None:
        budget = self.options.total_timeout
        current = url
        for _ in range(self.options.max_redirects + 1):
            try:
                request = httpx.Request(
                    "GET", current, headers=headers, extensions={"timeout": self._timeouts}
                )
            except httpx.InvalidURL as exc:
                raise invalid_url(current, f"invalid URL ({exc})") from None
            # The transport's guard checks the URL before it connects (as for every request).
            async with self._slot(request.url.host):
                hop_started = time.monotonic()
                try:
                    with anyio.fail_after(budget):
                        outcome = await self._get(request, headers)
                except TimeoutError:
                    raise FetchError(
                        f"no complete answer within {self.options.total_timeout} s: {current}",
                        reason="timeout",
                        transient=True,
                    ) from None
                budget -= time.monotonic() - hop_started
            if outcome is _NOT_MODIFIED:
                return None
            if isinstance(outcome, _Body):
                return outcome
            assert isinstance(outcome, str)
            current = outcome
            # Validators describe what the URL asked for served, not what a redirect names:
            # the next hop asks without them (a 304 there would be about another resource).
            headers = self._headers
        raise FetchError(
            f"more than {self.options.max_redirects} redirects: {url}",
            reason="too_many_redirects",
        )

    @asynccontextmanager
    async def _slot(self, host: str) -> AsyncIterator[None]:
        # Per host first: a request waiting for its host must not hold an overall slot.
        slots = self._hosts.get(host)
        if slots is None:
            slots = self._hosts[host] = _HostSlots(anyio.Semaphore(self.options.per_host))
        slots.users += 1
        try:
            async with slots.semaphore, self._overall:
                yield
        finally:
            slots.users -= 1
            if slots.users == 0:
                del self._hosts[host]

    async def _get(self, request: httpx.Request, headers: httpx.Headers) -> _Body | str | object:
        """One GET: the body, the URL a redirect points to, or :data:`_NOT_MODIFIED`."""
        opts = self.options
        url = request.url
        try:
            response = await self._transport().handle_async_request(request)
            try:
                location = response.headers.get("location")
                if response.status_code in _REDIRECTS and location:
                    return self._redirect_target(url, location)
                if response.status_code == 304 and headers is not self._headers:
                    return _NOT_MODIFIED  # only a conditional GET may be answered so
                if not 200 <= response.status_code < 300:
                    raise _status_error(response, url)
                return _Body(
                    final_url=str(url),
                    data=await self._read_body(response, url),
                    content_type=response.headers.get("content-type"),
                    status=response.status_code,
                    etag=response.headers.get("etag"),
                    last_modified=response.headers.get("last-modified"),
                )
            finally:
                await response.aclose()
        except httpx.ConnectTimeout as exc:
            raise FetchError(
                f"connect timed out after {opts.connect_timeout} s: {url}",
                reason="timeout",
                transient=True,
            ) from exc
        except httpx.TimeoutException as exc:
            raise FetchError(
                f"read timed out: nothing for {opts.read_timeout} s: {url}",
                reason="timeout",
                transient=True,
            ) from exc
        except httpx.ConnectError as exc:
            raise FetchError(
                f"cannot connect ({exc}): {url}",
                reason="connect_error",
                transient=not _is_tls_failure(exc),
            ) from exc
        except (httpx.InvalidURL, httpx.UnsupportedProtocol) as exc:
            raise invalid_url(str(url), f"invalid URL ({exc})") from exc
        except httpx.HTTPError as exc:
            raise FetchError(
                f"transfer failed ({exc!r}): {url}", reason="protocol_error", transient=True
            ) from exc

    def _redirect_target(self, url: httpx.URL, location: str) -> str:
        try:
            target = str(URL(str(url)).join(URL(location)))
        except (ValueError, TypeError) as exc:
            raise FetchError(
                f"invalid redirect Location {location!r} ({exc}) from {url}",
                reason="protocol_error",
            ) from None
        check_url(target, self._allow)
        return target

    async def _read_body(self, response: httpx.Response, url: httpx.URL) -> bytes:
        limit = self.options.max_bytes
        text = str(url)
        encoding = response.headers.get("content-encoding", "identity").strip().lower()
        if encoding not in ("", "identity", "gzip", "x-gzip", "deflate"):
            raise FetchError(
                f"unsupported Content-Encoding {encoding!r}: {text}", reason="protocol_error"
            )
        # We ask for identity; a server that compresses anyway is decoded under the limit
        # (wbits | 32 reads both the gzip and the zlib header).
        decoder = None if encoding in ("", "identity") else zlib.decompressobj(zlib.MAX_WBITS | 32)
        if decoder is None:
            declared = response.headers.get("content-length", "").strip()
            if declared.isdigit() and int(declared) > limit:
                raise _too_large(text, limit)
        parts: list[bytes] = []
        size = 0
        try:
            stream = response.stream
            assert isinstance(stream, httpx.AsyncByteStream)  # an async transport's
            async for raw in stream:
                chunk = raw if decoder is None else _inflate(decoder, raw, limit - size, text)
                size += len(chunk)
                if size > limit:
                    raise _too_large(text, limit)
                parts.append(chunk)
            if decoder is not None:
                tail = decoder.flush()
                if size + len(tail) > limit:
                    raise _too_large(text, limit)
                parts.append(tail)
        except zlib.error as exc:
            raise FetchError(
                f"bad {encoding} body ({exc}): {text}", reason="protocol_error"
            ) from exc
        return b"".join(parts)
