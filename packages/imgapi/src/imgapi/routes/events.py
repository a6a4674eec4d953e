"""``GET /status/{id}/events``: a request's progress as Server-Sent Events."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import anyio
import msgspec
from imgcore.engine import Engine
from imgcore.models import RequestInfo
from litestar import Request, get
from litestar.di import NamedDependency
from litestar.params import FromPath
from litestar.response import Response, ServerSentEvent
from litestar.response.sse import ServerSentEventMessage

from imgapi.auth import SECURITY, require_api_key
from imgapi.problems import problem_responses
from imgapi.progress import ProgressHub, Watch
from imgapi.runtime import Runtime

__all__ = ["FINAL_EVENT_ID", "KEEPALIVE_SECONDS", "ProgressEvent", "events", "progress_events"]

KEEPALIVE_SECONDS = 15.0
"""An idle stream sends a comment this often, so that proxies keep it open."""
FINAL_EVENT_ID = "final"
"""The id of the last event, ``status``: a client resuming after it gets 204 (stop)."""


class ProgressEvent(msgspec.Struct, frozen=True, kw_only=True):
    """The data of a ``progress`` event and of the final ``status`` event."""

    request_id: str
    status: str
    total: int
    done: int
    failed: int
    pending: int
    error: str | None


def _event_id(info: RequestInfo) -> str:
    return f"{info.done}.{info.failed}.{info.status.name.lower()}"


def _message(event: str, event_id: str, info: RequestInfo) -> ServerSentEventMessage:
    data = ProgressEvent(
        request_id=str(info.request_id),
        status=info.status.value,
        total=info.total,
        done=info.done,
        failed=info.failed,
        pending=info.pending,
        error=info.error,
    )
    return ServerSentEventMessage(
        data=msgspec.json.encode(data).decode(), event=event, id=event_id, sep="\n"
    )


async def progress_events(
    hub: ProgressHub, info: RequestInfo, last_event_id: str | None
) -> AsyncIterator[ServerSentEventMessage]:
    """``progress`` as the counts change (at most once per poll), then ``status``, then end.

    A client resuming with ``Last-Event-ID`` is not sent the state it last saw again.
    """
    sent = last_event_id
    with hub.watch(info) as watch:
        current = info
        while True:
            event_id = _event_id(current)
            if event_id != sent:
                yield _message("progress", event_id, current)
                sent = event_id
            if current.status.is_terminal:
                yield _message("status", FINAL_EVENT_ID, current)
                return
            if not await _changed(watch, seen=watch.version):
                yield ServerSentEventMessage(data=None, comment="keepalive", sep="\n")
            current = watch.info


async def _changed(watch: Watch, *, seen: int) -> bool:
    """Wait until the watch moves past ``seen``; False after a keepalive interval without."""
    with anyio.move_on_after(KEEPALIVE_SECONDS):
        while watch.version == seen:
            await watch.changed.wait()
        return True
    return False


@get(
    ["/status/{request_id:str}/events", "/api/status/{request_id:str}/events"],
    guards=[require_api_key],
    security=SECURITY,
    media_type="text/event-stream",
    responses=problem_responses(400, 401, 404),
    summary="A request's progress as Server-Sent Events",
    description=(
        "`progress` events (data: request_id, status, total, done, failed, pending, error) as "
        "the counts change, at most about four a second; then one `status` event with the "
        "final state, and the stream ends. A comment line every 15 s keeps an idle stream "
        "open. Reconnecting with `Last-Event-ID` resumes: the state last seen is not sent "
        "again, and after the final event the answer is 204 (EventSource stops)."
    ),
    tags=["requests"],
)
async def events(
    request: Request[Any, Any, Any],
    request_id: FromPath[str],
    runtime: NamedDependency[Runtime],
    engine: NamedDependency[Engine],
    caller: NamedDependency[str | None],
) -> ServerSentEvent | Response[None]:
    """Stream a request's progress."""
    info = await engine.status(request_id, client=caller)
    last_event_id = request.headers.get("last-event-id")
    if last_event_id == FINAL_EVENT_ID and info.status.is_terminal:
        return Response(None, status_code=204)
    return ServerSentEvent(
        progress_events(runtime.progress, info, last_event_id),
        headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
    )
