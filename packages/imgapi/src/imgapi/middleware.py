"""One ASGI middleware around every route: request id, access log line, HTTP metrics."""

from __future__ import annotations

import logging
import re
import time
import uuid

from litestar.enums import ScopeType
from litestar.types import ASGIApp, Message, Receive, ReceiveMessage, Scope, Send

from imgapi.logs import http_request_id
from imgapi.metrics import Metrics

__all__ = ["REQUEST_ID_HEADER", "RequestContextMiddleware"]

REQUEST_ID_HEADER = "x-request-id"
# An id a proxy or client sent is reused when it is short and plain (it goes into logs).
_INCOMING_ID = re.compile(r"[A-Za-z0-9._:-]{1,128}")
# Probes and scrapes come every few seconds; their lines would drown the rest.
_QUIET = frozenset({"/healthz", "/readyz", "/metrics"})

log = logging.getLogger("imgapi.access")


def _incoming_id(scope: Scope) -> str | None:
    for name, value in scope.get("headers", ()):
        if name == REQUEST_ID_HEADER.encode():
            text = value.decode("latin-1")
            return text if _INCOMING_ID.fullmatch(text) else None
    return None


class RequestContextMiddleware:
    """Gives each HTTP request an id (``X-Request-ID``), logs it and counts it."""

    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != ScopeType.HTTP:
            await self.app(scope, receive, send)
            return
        rid = _incoming_id(scope) or uuid.uuid4().hex
        token = http_request_id.set(rid)
        started = time.perf_counter()
        status = 500
        received = sent = 0

        async def counting_receive() -> ReceiveMessage:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
            return message

        async def tagging_send(message: Message) -> None:
            nonlocal status, sent
            if message["type"] == "http.response.start":
                status = message["status"]
                headers = list(message.get("headers", ()))
                headers.append((REQUEST_ID_HEADER.encode(), rid.encode()))
                message = {**message, "headers": headers}
            elif message["type"] == "http.response.body":
                sent += len(message.get("body", b""))
            await send(message)

        self.metrics.http_in_flight.inc()
        try:
            await self.app(scope, counting_receive, tagging_send)
        finally:
            self.metrics.http_in_flight.dec()
            seconds = time.perf_counter() - started
            route = str(scope.get("path_template") or "unmatched")
            method = scope["method"]
            self.metrics.http_requests.labels(method, route, str(status)).inc()
            self.metrics.http_duration.labels(method, route).observe(seconds)
            self.metrics.http_bytes.labels("in").inc(received)
            self.metrics.http_bytes.labels("out").inc(sent)
            log.log(
                logging.DEBUG if route in _QUIET and status < 500 else logging.INFO,
                "%s %s %d",
                method,
                scope["path"],
                status,
                extra={
                    "method": method,
                    "path": scope["path"],
                    "route": route,
                    "status": status,
                    "duration_ms": round(seconds * 1000, 2),
                    "bytes_in": received,
                    "bytes_out": sent,
                },
            )
            http_request_id.reset(token)
