"""A Python client of the imgapi HTTP API (httpx), sync and async::

    from imgapi.client import Client

    with Client("https://images.example.com", api_key="imgapi_…") as api:
        accepted = api.upload("products.csv", webhook_url="https://example.com/hook")
        final = api.wait(accepted.request_id)
        for chunk in api.output_csv(accepted.request_id):
            ...

:class:`AsyncClient` has the same methods as coroutines (``output_csv`` and ``requests`` are
async iterators). Answers are typed (msgspec Structs); every error answer (a problem document)
raises an :class:`ApiError` subclass chosen by its status. This module needs only httpx and
msgspec: it imports nothing of the server.
"""

from __future__ import annotations

import csv
import io
import time
from collections.abc import AsyncIterator, Iterable, Iterator, Sequence
from datetime import datetime
from pathlib import Path
from types import TracebackType
from typing import IO, Any, TypeVar
from uuid import UUID

import anyio
import httpx
import msgspec

__all__ = [
    "Accepted",
    "ApiError",
    "AsyncClient",
    "CancelResult",
    "Client",
    "Conflict",
    "InvalidRequest",
    "NotFound",
    "PresetSpec",
    "Progress",
    "RequestPage",
    "RequestSummary",
    "RetryResult",
    "Status",
    "TooManyImages",
    "Unauthorized",
    "VariantSpec",
    "csv_of_rows",
]

T = TypeVar("T")
TERMINAL = ("Completed", "Failed")
Upload = str | Path | bytes | IO[bytes]
"""A CSV to upload: a path, its bytes, or a binary file object."""


class Accepted(msgspec.Struct, frozen=True):
    """An upload was stored (202)."""

    request_id: UUID
    status: str
    status_url: str
    output_csv_url: str


class Status(msgspec.Struct, frozen=True):
    """A request's status and counts (``GET /status/{id}`` without its products)."""

    request_id: UUID
    status: str
    total: int
    done: int
    failed: int
    pending: int
    error: str | None
    created_at: datetime
    updated_at: datetime
    finished_at: datetime | None
    output_csv_url: str
    filename: str | None = None
    preset: str = "default"

    @property
    def ended(self) -> bool:
        """True once the request is Completed or Failed."""
        return self.status in TERMINAL


class RequestSummary(msgspec.Struct, frozen=True):
    """One request of ``GET /requests``."""

    request_id: UUID
    status: str
    filename: str | None
    total: int
    done: int
    failed: int
    pending: int
    error: str | None
    created_at: datetime
    updated_at: datetime
    finished_at: datetime | None
    status_url: str
    output_csv_url: str
    preset: str = "default"


class VariantSpec(msgspec.Struct, frozen=True):
    """One variant of a preset: what each image is written as."""

    name: str
    fit: str
    width: int | None
    height: int | None
    format: str
    quality: int
    trim: bool
    background: str


class PresetSpec(msgspec.Struct, frozen=True):
    """A preset of ``GET /presets``: its name and variants (the first is ``output_url``)."""

    name: str
    variants: list[VariantSpec]


class _Presets(msgspec.Struct, frozen=True):
    presets: list[PresetSpec]


class RequestPage(msgspec.Struct, frozen=True):
    """A page of ``GET /requests``."""

    requests: list[RequestSummary]
    next: str | None
    prev: str | None


class RetryResult(msgspec.Struct, frozen=True):
    """``POST /requests/{id}/retry``: how many failed images were queued again."""

    request_id: UUID
    retried: int
    status_url: str


class CancelResult(msgspec.Struct, frozen=True):
    """``POST /requests/{id}/cancel``: how many pending images were cancelled."""

    request_id: UUID
    cancelled: int
    status_url: str


class Progress(msgspec.Struct, frozen=True):
    """The data of a ``progress`` or ``status`` event of ``GET /status/{id}/events``."""

    request_id: UUID
    status: str
    total: int
    done: int
    failed: int
    pending: int
    error: str | None


class _Problem(msgspec.Struct, frozen=True):
    title: str = ""
    status: int = 0
    detail: str | None = None
    reason: str | None = None
    errors: list[dict[str, Any]] | None = None


class ApiError(Exception):
    """An error answer: ``status``, ``reason`` (the problem's code), ``detail``, ``errors``."""

    def __init__(self, status: int, reason: str | None, detail: str | None, **extra: Any) -> None:
        super().__init__(f"{status} {reason or ''}: {detail or ''}".strip())
        self.status = status
        self.reason = reason
        self.detail = detail
        self.errors: list[dict[str, Any]] = extra.get("errors") or []
        self.retry_after: float | None = extra.get("retry_after")


class InvalidRequest(ApiError):
    """400, 413, 415: the upload or a parameter is invalid (``errors`` lists CSV problems)."""


class Unauthorized(ApiError):
    """401: no key, or a wrong or revoked one."""


class NotFound(ApiError):
    """404: no such request (or another client's)."""


class Conflict(ApiError):
    """409: the request's status does not allow this now (``still_running``…)."""


class TooManyImages(ApiError):
    """429: the client has too many unfinished images; wait ``retry_after`` seconds."""


_ERRORS: dict[int, type[ApiError]] = {
    400: InvalidRequest,
    401: Unauthorized,
    404: NotFound,
    409: Conflict,
    413: InvalidRequest,
    415: InvalidRequest,
    429: TooManyImages,
}


def _raise_for(response: httpx.Response) -> None:
    if response.status_code < 400:
        return
    try:
        problem = msgspec.json.decode(response.content, type=_Problem)
    except msgspec.DecodeError:
        problem = _Problem(detail=response.text[:500])
    retry_after = response.headers.get("retry-after")
    kind = _ERRORS.get(response.status_code, ApiError)
    raise kind(
        response.status_code,
        problem.reason,
        problem.detail,
        errors=problem.errors,
        retry_after=float(retry_after) if retry_after and retry_after.isdigit() else None,
    )


def _decode(response: httpx.Response, kind: type[T]) -> T:
    _raise_for(response)
    return msgspec.json.decode(response.content, type=kind)


def csv_of_rows(rows: Iterable[tuple[str, Sequence[str]]]) -> bytes:
    """A CSV of ``(product name, image URLs)`` rows, numbered from 1."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(["S. No.", "Product Name", "Input Image Urls"])
    for serial, (name, urls) in enumerate(rows, start=1):
        writer.writerow([serial, name, ",".join(urls)])
    return out.getvalue().encode()


def _fields(webhook_url: str | None, preset: str | None) -> dict[str, str] | None:
    fields = {"webhook_url": webhook_url, "preset": preset}
    return {name: value for name, value in fields.items() if value} or None


def _file_of(source: Upload, filename: str | None) -> tuple[str, Any, str]:
    if isinstance(source, str | Path):
        path = Path(source)
        return filename or path.name, path.read_bytes(), "text/csv"
    return filename or "upload.csv", source, "text/csv"


def _list_params(
    status: str | None, created_after: datetime | None, created_before: datetime | None, limit: int
) -> dict[str, str]:
    params = {"limit": str(limit)}
    if status is not None:
        params["status"] = status
    if created_after is not None:
        params["created_after"] = created_after.isoformat()
    if created_before is not None:
        params["created_before"] = created_before.isoformat()
    return params


class _SseParser:
    """Server-Sent Events from lines: ``feed(line)`` returns ``(event, data)`` when one ends."""

    def __init__(self) -> None:
        self.event = "message"
        self.data: list[str] = []

    def feed(self, line: str) -> tuple[str, str] | None:
        if not line:
            done = (self.event, "\n".join(self.data)) if self.data else None
            self.event, self.data = "message", []
            return done
        field, _, value = line.partition(":")
        value = value.removeprefix(" ")
        if field == "event":
            self.event = value
        elif field == "data":
            self.data.append(value)
        return None


class _Base:
    def __init__(self, base_url: str, api_key: str | None) -> None:
        self.base_url = base_url.rstrip("/")
        self.headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}


class Client(_Base):
    """The API over a synchronous httpx client; use as a context manager (or call close)."""

    def __init__(self, base_url: str, api_key: str | None = None, *, timeout: float = 60.0) -> None:
        super().__init__(base_url, api_key)
        self.http = httpx.Client(base_url=self.base_url, headers=self.headers, timeout=timeout)

    def __enter__(self) -> Client:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        """Close the connections."""
        self.http.close()

    def upload(
        self,
        source: Upload,
        *,
        filename: str | None = None,
        webhook_url: str | None = None,
        preset: str | None = None,
    ) -> Accepted:
        """Upload a CSV (a path, bytes or a binary file); ``preset`` names one of
        :meth:`presets` (None: ``default``)."""
        data = _fields(webhook_url, preset)
        response = self.http.post("/upload", files={"file": _file_of(source, filename)}, data=data)
        return _decode(response, Accepted)

    def upload_rows(
        self,
        rows: Iterable[tuple[str, Sequence[str]]],
        *,
        webhook_url: str | None = None,
        preset: str | None = None,
    ) -> Accepted:
        """Upload ``(product name, image URLs)`` rows as a CSV."""
        return self.upload(
            csv_of_rows(rows), filename="rows.csv", webhook_url=webhook_url, preset=preset
        )

    def presets(self) -> list[PresetSpec]:
        """The presets an upload may choose, with their variants (``GET /presets``)."""
        return _decode(self.http.get("/presets"), _Presets).presets

    def status(self, request_id: UUID | str) -> Status:
        """The request's status and counts."""
        return _decode(self.http.get(f"/status/{request_id}", params={"per_page": 1}), Status)

    def wait(
        self, request_id: UUID | str, *, timeout: float | None = None, poll: float = 1.0
    ) -> Status:
        """Block until the request ends; follows the event stream, polling if it fails.

        Raises :class:`TimeoutError` after ``timeout`` seconds.
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        try:
            with self.http.stream(
                "GET", f"/status/{request_id}/events", timeout=httpx.Timeout(30, read=None)
            ) as response:
                if response.status_code >= 400:
                    response.read()
                    _raise_for(response)
                parser = _SseParser()
                for line in response.iter_lines():
                    event = parser.feed(line)
                    if event is not None and event[0] == "status":
                        break
                    if deadline is not None and time.monotonic() > deadline:
                        raise TimeoutError(f"request {request_id} still running")
        except httpx.TransportError:
            pass  # no stream (a proxy in the way): poll below
        while True:
            info = self.status(request_id)
            if info.ended:
                return info
            if deadline is not None and time.monotonic() > deadline:
                raise TimeoutError(f"request {request_id} still running")
            time.sleep(poll)

    def output_csv(self, request_id: UUID | str) -> Iterator[bytes]:
        """The output CSV, streamed in chunks."""
        with self.http.stream("GET", f"/status/{request_id}/output.csv") as response:
            if response.status_code >= 400:
                response.read()
                _raise_for(response)
            yield from response.iter_bytes()

    def requests(
        self,
        *,
        status: str | None = None,
        created_after: datetime | None = None,
        created_before: datetime | None = None,
        limit: int = 50,
    ) -> Iterator[RequestSummary]:
        """The caller's requests, newest first, following ``next`` links to the end."""
        url: str | None = "/requests"
        params: dict[str, str] | None = _list_params(status, created_after, created_before, limit)
        while url is not None:
            page = _decode(self.http.get(url, params=params), RequestPage)
            yield from page.requests
            url, params = page.next, None

    def retry(self, request_id: UUID | str) -> RetryResult:
        """Queue an ended request's failed images again."""
        return _decode(self.http.post(f"/requests/{request_id}/retry"), RetryResult)

    def cancel(self, request_id: UUID | str) -> CancelResult:
        """Cancel a running request."""
        return _decode(self.http.post(f"/requests/{request_id}/cancel"), CancelResult)

    def delete(self, request_id: UUID | str) -> None:
        """Delete an ended request and its stored images."""
        _raise_for(self.http.delete(f"/requests/{request_id}"))


class AsyncClient(_Base):
    """The API over an asynchronous httpx client; ``async with AsyncClient(…) as api``."""

    def __init__(self, base_url: str, api_key: str | None = None, *, timeout: float = 60.0) -> None:
        super().__init__(base_url, api_key)
        self.http = httpx.AsyncClient(base_url=self.base_url, headers=self.headers, timeout=timeout)

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close the connections."""
        await self.http.aclose()

    async def upload(
        self,
        source: Upload,
        *,
        filename: str | None = None,
        webhook_url: str | None = None,
        preset: str | None = None,
    ) -> Accepted:
        """Upload a CSV (a path, bytes or a binary file); ``preset`` names one of
        :meth:`presets` (None: ``default``)."""
        data = _fields(webhook_url, preset)
        response = await self.http.post(
            "/upload", files={"file": _file_of(source, filename)}, data=data
        )
        return _decode(response, Accepted)

    async def upload_rows(
        self,
        rows: Iterable[tuple[str, Sequence[str]]],
        *,
        webhook_url: str | None = None,
        preset: str | None = None,
    ) -> Accepted:
        """Upload ``(product name, image URLs)`` rows as a CSV."""
        return await self.upload(
            csv_of_rows(rows), filename="rows.csv", webhook_url=webhook_url, preset=preset
        )

    async def presets(self) -> list[PresetSpec]:
        """The presets an upload may choose, with their variants (``GET /presets``)."""
        return _decode(await self.http.get("/presets"), _Presets).presets

    async def status(self, request_id: UUID | str) -> Status:
        """The request's status and counts."""
        response = await self.http.get(f"/status/{request_id}", params={"per_page": 1})
        return _decode(response, Status)

    async def progress(self, request_id: UUID | str) -> AsyncIterator[Progress]:
        """Every ``progress`` event, then the final ``status`` one, as they arrive."""
        async with self.http.stream(
            "GET", f"/status/{request_id}/events", timeout=httpx.Timeout(30, read=None)
        ) as response:
            if response.status_code >= 400:
                await response.aread()
                _raise_for(response)
            parser = _SseParser()
            async for line in response.aiter_lines():
                event = parser.feed(line)
                if event is not None:
                    yield msgspec.json.decode(event[1], type=Progress)
                    if event[0] == "status":
                        return

    async def wait(self, request_id: UUID | str, *, poll: float = 1.0) -> Status:
        """Wait until the request ends (wrap in a timeout); follows the event stream,
        polling if it fails."""
        try:
            async for _ in self.progress(request_id):
                pass
        except httpx.TransportError:
            pass  # no stream: poll below
        while True:
            info = await self.status(request_id)
            if info.ended:
                return info
            await anyio.sleep(poll)

    async def output_csv(self, request_id: UUID | str) -> AsyncIterator[bytes]:
        """The output CSV, streamed in chunks."""
        async with self.http.stream("GET", f"/status/{request_id}/output.csv") as response:
            if response.status_code >= 400:
                await response.aread()
                _raise_for(response)
            async for chunk in response.aiter_bytes():
                yield chunk

    async def requests(
        self,
        *,
        status: str | None = None,
        created_after: datetime | None = None,
        created_before: datetime | None = None,
        limit: int = 50,
    ) -> AsyncIterator[RequestSummary]:
        """The caller's requests, newest first, following ``next`` links to the end."""
        url: str | None = "/requests"
        params: dict[str, str] | None = _list_params(status, created_after, created_before, limit)
        while url is not None:
            page = _decode(await self.http.get(url, params=params), RequestPage)
            for summary in page.requests:
                yield summary
            url, params = page.next, None

    async def retry(self, request_id: UUID | str) -> RetryResult:
        """Queue an ended request's failed images again."""
        return _decode(await self.http.post(f"/requests/{request_id}/retry"), RetryResult)

    async def cancel(self, request_id: UUID | str) -> CancelResult:
        """Cancel a running request."""
        return _decode(await self.http.post(f"/requests/{request_id}/cancel"), CancelResult)

    async def delete(self, request_id: UUID | str) -> None:
        """Delete an ended request and its stored images."""
        _raise_for(await self.http.delete(f"/requests/{request_id}"))
