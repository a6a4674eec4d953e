"""The caller's requests: ``GET /requests`` (a page of them), and ``POST …/retry``,
``POST …/cancel``, ``DELETE /requests/{id}``. Each client sees only its own requests."""

from __future__ import annotations

import base64
import binascii
from datetime import UTC, datetime
from typing import Annotated, Any
from urllib.parse import urlencode
from uuid import UUID

import msgspec
from imgcore.engine import Engine
from imgcore.models import RequestInfo
from imgcore.states import RequestStatus
from litestar import Request, Response, delete, get, post
from litestar.di import NamedDependency
from litestar.params import FromPath, QueryParameter

from imgapi.auth import SECURITY, require_api_key
from imgapi.problems import ProblemError, ProblemIssue, problem_responses
from imgapi.runtime import Runtime

__all__ = [
    "CancelOut",
    "RequestListOut",
    "RequestOut",
    "RetryOut",
    "cancel_request",
    "delete_request",
    "list_requests",
    "retry_request",
]

MAX_LIMIT = 100
#: A date, or a date and time with an optional UTC offset (ISO 8601, as Python reads it).
ISO_DATETIME = r"^\d{4}-\d{2}-\d{2}([T ]\d{2}:\d{2}(:\d{2}(\.\d{1,6})?)?(Z|[+-]\d{2}:?\d{2})?)?$"


class RequestOut(msgspec.Struct, frozen=True, kw_only=True):
    """One request in a list: its status and counts, without its products."""

    request_id: UUID
    status: str
    filename: str | None
    preset: str
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


class RequestListOut(msgspec.Struct, frozen=True, kw_only=True):
    """A page of the caller's requests, newest first; ``next``/``prev`` are URLs or null."""

    requests: list[RequestOut]
    next: str | None
    prev: str | None


class RetryOut(msgspec.Struct, frozen=True, kw_only=True):
    """The failed images were queued again (``retried`` of them)."""

    request_id: UUID
    retried: int
    status_url: str


class CancelOut(msgspec.Struct, frozen=True, kw_only=True):
    """The request is cancelled: ``cancelled`` pending images will not be processed; it ends
    ``Failed`` (error ``cancelled``) once the images in flight finish."""

    request_id: UUID
    cancelled: int
    status_url: str


def _request_out(info: RequestInfo, base: str) -> RequestOut:
    status_url = f"{base}/status/{info.request_id}"
    return RequestOut(
        request_id=info.request_id,
        status=info.status.value,
        filename=info.filename,
        preset=info.preset,
        total=info.total,
        done=info.done,
        failed=info.failed,
        pending=info.pending,
        error=info.error,
        created_at=info.created_at,
        updated_at=info.updated_at,
        finished_at=info.finished_at,
        status_url=status_url,
        output_csv_url=f"{status_url}/output.csv",
    )


def encode_cursor(info: RequestInfo) -> str:
    """An opaque place in the list: the request's creation time and id."""
    raw = f"{info.created_at.isoformat()}|{info.request_id}".encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(name: str, value: str | None) -> tuple[datetime, UUID] | None:
    """The place a cursor names; a 400 problem for one this API did not make."""
    if value is None:
        return None
    try:
        raw = base64.urlsafe_b64decode(value + "=" * (-len(value) % 4)).decode()
        at, _, rid = raw.partition("|")
        created = datetime.fromisoformat(at)
        return (created if created.tzinfo else created.replace(tzinfo=UTC)), UUID(rid)
    except (ValueError, binascii.Error, UnicodeDecodeError):
        raise _bad_parameter(name, "not a cursor from a next or prev link") from None


def _bad_parameter(name: str, message: str) -> ProblemError:
    text = f"{name}: {message}"
    return ProblemError(
        400,
        text,
        reason="invalid_parameter",
        errors=[ProblemIssue(reason="invalid_parameter", message=text)],
    )


def _parse_status(value: str | None) -> RequestStatus | None:
    if value is None:
        return None
    try:
        return RequestStatus(value)
    except ValueError:
        choices = ", ".join(repr(s.value) for s in RequestStatus)
        raise _bad_parameter("status", f"one of {choices}") from None


def _parse_time(name: str, value: str | None) -> datetime | None:
    if value is None:
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise _bad_parameter(name, f"not a date and time: {value!r}") from None
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)


@get(
    ["/requests", "/api/requests"],
    guards=[require_api_key],
    security=SECURITY,
    responses=problem_responses(400, 401),
    summary="The caller's requests, newest first",
    description=(
        "Filter by `status` and by creation time (`created_after` inclusive, `created_before` "
        "exclusive, ISO 8601; UTC when no offset is given). Pages hold up to `limit` requests; "
        "`next` and `prev` are the URLs of the neighbouring pages (keyset pagination: a page "
        "does not shift while new requests arrive)."
    ),
    tags=["requests"],
)
async def list_requests(
    request: Request[Any, Any, Any],
    runtime: NamedDependency[Runtime],
    engine: NamedDependency[Engine],
    caller: NamedDependency[str | None],
    status: Annotated[
        str | None,
        QueryParameter(description="Only requests with this status (Pending, In Process, …)"),
    ] = None,
    created_after: Annotated[
        str | None,
        QueryParameter(
            pattern=ISO_DATETIME, description="Only requests created at or after this (ISO 8601)"
        ),
    ] = None,
    created_before: Annotated[
        str | None,
        QueryParameter(
            pattern=ISO_DATETIME, description="Only requests created before this (ISO 8601)"
        ),
    ] = None,
    limit: Annotated[int, QueryParameter(ge=1, le=MAX_LIMIT, description="Requests per page")] = 50,
    after: Annotated[
        str | None, QueryParameter(description="Cursor: the page after (from a `next` link)")
    ] = None,
    before: Annotated[
        str | None, QueryParameter(description="Cursor: the page before (from a `prev` link)")
    ] = None,
) -> Response[RequestListOut]:
    """List the caller's requests."""
    if after is not None and before is not None:
        raise _bad_parameter("after", "give 'after' or 'before', not both")
    chosen = _parse_status(status)
    after_at = decode_cursor("after", after)
    before_at = decode_cursor("before", before)
    rows, more = await engine.requests_page(
        client=caller,
        status=chosen,
        created_after=_parse_time("created_after", created_after),
        created_before=_parse_time("created_before", created_before),
        after=after_at,
        before=before_at,
        limit=limit,
    )
    base = runtime.settings.base_url
    filters = {
        key: value
        for key, value in (
            ("status", status),
            ("created_after", request.query_params.get("created_after")),
            ("created_before", request.query_params.get("created_before")),
            ("limit", str(limit) if limit != 50 else None),
        )
        if value is not None
    }

    def link(key: str, info: RequestInfo) -> str:
        return f"{base}{request.url.path}?{urlencode({**filters, key: encode_cursor(info)})}"

    # Reading forwards, a next page exists when more rows came; a previous one whenever this
    # page was reached through a cursor. Reading backwards (before=), the reverse.
    has_next = more if before_at is None else True
    has_prev = (after_at is not None) if before_at is None else more
    document = RequestListOut(
        requests=[_request_out(info, base) for info in rows],
        next=link("after", rows[-1]) if rows and has_next else None,
        prev=link("before", rows[0]) if rows and has_prev else None,
    )
    links = [
        f'<{url}>; rel="{rel}"'
        for rel, url in (("next", document.next), ("prev", document.prev))
        if url
    ]
    headers = {"Cache-Control": "no-store"}
    if links:
        headers["Link"] = ", ".join(links)
    return Response(document, headers=headers)


@post(
    ["/requests/{request_id:str}/retry", "/api/requests/{request_id:str}/retry"],
    status_code=202,
    guards=[require_api_key],
    security=SECURITY,
    responses=problem_responses(400, 401, 404, 409),
    summary="Queue a request's failed images again",
    description=(
        "For a request that has ended (Completed or Failed): its failed images go back to "
        "the queue (202). 409 while it is still running."
    ),
    tags=["requests"],
)
async def retry_request(
    request_id: FromPath[str],
    runtime: NamedDependency[Runtime],
    engine: NamedDependency[Engine],
    caller: NamedDependency[str | None],
) -> RetryOut:
    """Retry a request's failed images."""
    count = await engine.retry_failed(request_id, client=caller)
    info = await engine.status(request_id, client=caller)
    return RetryOut(
        request_id=info.request_id,
        retried=count,
        status_url=f"{runtime.settings.base_url}/status/{info.request_id}",
    )


@post(
    ["/requests/{request_id:str}/cancel", "/api/requests/{request_id:str}/cancel"],
    status_code=202,
    guards=[require_api_key],
    security=SECURITY,
    responses=problem_responses(400, 401, 404, 409),
    summary="Cancel a running request",
    description=(
        "Its pending images are cancelled; images being processed finish. The request then "
        'ends Failed with `error: "cancelled"` and its webhook is called once. 409 for a '
        "request that has already ended."
    ),
    tags=["requests"],
)
async def cancel_request(
    request_id: FromPath[str],
    runtime: NamedDependency[Runtime],
    engine: NamedDependency[Engine],
    caller: NamedDependency[str | None],
) -> CancelOut:
    """Cancel a request."""
    count = await engine.cancel(request_id, client=caller)
    info = await engine.status(request_id, client=caller)
    return CancelOut(
        request_id=info.request_id,
        cancelled=count,
        status_url=f"{runtime.settings.base_url}/status/{info.request_id}",
    )


@delete(
    ["/requests/{request_id:str}", "/api/requests/{request_id:str}"],
    status_code=204,
    guards=[require_api_key],
    security=SECURITY,
    responses=problem_responses(400, 401, 404, 409),
    summary="Delete a request, its rows and its stored images",
    description="204; the request then answers 404. 409 while it runs (cancel it first).",
    tags=["requests"],
)
async def delete_request(
    request_id: FromPath[str],
    engine: NamedDependency[Engine],
    caller: NamedDependency[str | None],
) -> None:
    """Delete a request."""
    await engine.delete_request(request_id, client=caller)
