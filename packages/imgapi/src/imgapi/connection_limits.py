"""The HTTP/1.1 connection ``imgapi serve`` runs: uvicorn's httptools protocol, with limits.

uvicorn bounds neither the size of a request head under httptools nor the time a client
takes to send a head or a body (its issue #157), and it closes a connection that still has
unread body bytes, which makes the kernel reset it: a client that sends its whole body
before reading (Python's urllib) then never sees the answer. :class:`LimitedHttpProtocol`
adds, per connection:

- a head larger than ``IMGAPI_MAX_HEADER_BYTES`` gets 431, counted as it arrives;
- a head not complete within ``IMGAPI_HEADER_TIMEOUT`` closes the connection (408);
- a body without a byte for ``IMGAPI_BODY_TIMEOUT`` while the server waits closes it;
- a close after an answer sent while the body still arrives lingers: the rest is read and
  discarded, up to ``IMGAPI_LINGER_BYTES`` and ``IMGAPI_LINGER_SECONDS``, then closed.

``imgapi serve`` selects it with uvicorn's ``http`` option; each process reads the limits
from the environment once, as it reads the app's settings.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Iterable
from dataclasses import dataclass
from http import HTTPStatus
from typing import Any

import httptools
import msgspec
from uvicorn.config import Config as UvicornConfig
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
from uvicorn.server import ServerState

from imgapi.problems import PROBLEM_MEDIA_TYPE, TYPE_PREFIX, Problem
from imgapi.settings import Settings

__all__ = ["ConnectionLimits", "LimitedHttpProtocol"]

log = logging.getLogger("imgapi.connection")


@dataclass(frozen=True, kw_only=True)
class ConnectionLimits:
    """The per-connection limits, as :class:`~imgapi.settings.Settings` gives them."""

    max_header_bytes: int
    header_timeout: float
    body_timeout: float
    linger_bytes: int
    linger_seconds: float

    @classmethod
    def from_settings(cls, settings: Settings) -> ConnectionLimits:
        """The limits ``settings`` set."""
        return cls(
            max_header_bytes=settings.max_header_bytes,
            header_timeout=settings.header_timeout,
            body_timeout=settings.body_timeout,
            linger_bytes=settings.linger_bytes,
            linger_seconds=settings.linger_seconds,
        )


@functools.cache
def _limits_from_env() -> ConnectionLimits:
    return ConnectionLimits.from_settings(Settings.from_env())


class _Transport(asyncio.Transport):
    """The socket's transport as uvicorn sees it: its ``close`` may linger first."""

    def __init__(self, raw: asyncio.Transport, protocol: LimitedHttpProtocol) -> None:
        super().__init__()
        self._raw = raw
        self._protocol = protocol

    def close(self) -> None:
        self._protocol._close_requested()

    def is_closing(self) -> bool:
        return self._protocol._lingering or self._raw.is_closing()

    def write(self, data: bytes | bytearray | memoryview[int]) -> None:
        self._raw.write(data)

    def writelines(self, list_of_data: Iterable[bytes | bytearray | memoryview[int]]) -> None:
        self._raw.writelines(list_of_data)

    def write_eof(self) -> None:
        self._raw.write_eof()

    def can_write_eof(self) -> bool:
        return self._raw.can_write_eof()

    def abort(self) -> None:
        self._raw.abort()

    def pause_reading(self) -> None:
        self._raw.pause_reading()

    def resume_reading(self) -> None:
        self._raw.resume_reading()

    def is_reading(self) -> bool:
        return self._raw.is_reading()

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return self._raw.get_extra_info(name, default)

    def get_write_buffer_size(self) -> int:
        return self._raw.get_write_buffer_size()

    def get_write_buffer_limits(self) -> tuple[int, int]:
        return self._raw.get_write_buffer_limits()

    def set_write_buffer_limits(self, high: int | None = None, low: int | None = None) -> None:
        self._raw.set_write_buffer_limits(high, low)

    def set_protocol(self, protocol: asyncio.BaseProtocol) -> None:
        self._raw.set_protocol(protocol)

    def get_protocol(self) -> asyncio.BaseProtocol:
        return self._raw.get_protocol()


class LimitedHttpProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with head size and time limits and a lingering close."""

    def __init__(
        self,
        config: UvicornConfig,
        server_state: ServerState,
        app_state: dict[str, Any],
        _loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        super().__init__(config, server_state, app_state, _loop)
        self.limits = _limits_from_env()
        self._raw: asyncio.Transport | None = None
        self._in_head = True  # waiting for a request head, or reading one
        self._head_bytes = 0
        self._in_body = False
        self._body_left: int | None = None  # declared by Content-Length, not yet received
        self._last_read = 0.0
        self._lingering = False
        self._linger_left = 0
        self._head_timer: asyncio.TimerHandle | None = None
        self._body_timer: asyncio.TimerHandle | None = None
        self._linger_timer: asyncio.TimerHandle | None = None

    # Connection events

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        self._raw = transport
        super().connection_made(_Transport(transport, self))
        # A connection that never sends a byte holds a socket too.
        self._head_timer = self.loop.call_later(self.limits.header_timeout, self._head_timed_out)

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_timers()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        self._last_read = self.loop.time()
        if self._lingering:
            self._discard(data)
            return
        while data and not self.transport.is_closing():
            if not self._in_head:
                super().data_received(data)
                return
            # Feed the parser no more of a head than the limit allows: httptools would
            # buffer a header of any size before calling us.
            room = self.limits.max_header_bytes - self._head_bytes
            if room <= 0:
                self._head_too_large()
                return
            piece, data = data[:room], data[room:]
            self._head_bytes += len(piece)
            super().data_received(piece)

    def shutdown(self) -> None:
        if self._lingering:
            self._close_now()
        else:
            super().shutdown()

    # Parser callbacks

    def on_message_begin(self) -> None:
        super().on_message_begin()
        if self._head_timer is None:
            self._head_timer = self.loop.call_later(
                self.limits.header_timeout, self._head_timed_out
            )

    def on_headers_complete(self) -> None:
        if self._lingering:
            return  # a request pipelined behind a refused one: not started
        self._cancel(self._head_timer)
        self._head_timer = None
        self._in_head = False
        self._in_body = True
        self._body_left = _content_length(self.headers)
        super().on_headers_complete()
        self._body_timer = self.loop.call_later(self.limits.body_timeout, self._body_timed_out)

    def on_body(self, body: bytes) -> None:
        if self._body_left is not None:
            self._body_left -= len(body)
        super().on_body(body)

    def on_message_complete(self) -> None:
        super().on_message_complete()
        self._in_body = False
        self._in_head = True
        self._head_bytes = 0
        self._cancel(self._body_timer)
        self._body_timer = None
        if self._lingering:
            self._close_now()  # the whole body is read: the client sees no reset

    # Limits

    def _head_timed_out(self) -> None:
        self._head_timer = None
        if self.transport.is_closing() or not self._in_head:
            return
        if self.flow.read_paused:
            # A pipelined request waits for the app, not for the client.
            self._head_timer = self.loop.call_later(
                self.limits.header_timeout, self._head_timed_out
            )
            return
        if self._head_bytes:
            log.info("request head not received in time", extra=self._log_extra())
            self._write_problem(
                408,
                f"the request head did not arrive within {self.limits.header_timeout:g} s",
                "header_timeout",
            )
        self._close_now()

    def _body_timed_out(self) -> None:
        self._body_timer = None
        if self.transport.is_closing() or not self._in_body:
            return
        now = self.loop.time()
        if self.flow.read_paused:
            self._last_read = now  # the server is not reading: the wait is not the client's
        left = self._last_read + self.limits.body_timeout - now
        if left > 0:
            self._body_timer = self.loop.call_later(left, self._body_timed_out)
            return
        log.info("request body stalled", extra=self._log_extra())
        # The app sees the client gone (http.disconnect), as if it had hung up.
        self._close_now()

    def _head_too_large(self) -> None:
        log.info("request head too large", extra=self._log_extra())
        self._write_problem(
            431,
            f"the request head is larger than {self.limits.max_header_bytes} bytes",
            "header_too_large",
        )
        self._linger()

    # Closing

    def _close_requested(self) -> None:
        """uvicorn closes the transport: linger if an answer went out before the body ended."""
        raw = self._raw
        if raw is None or raw.is_closing() or self._lingering:
            return
        answered = self.cycle is not None and self.cycle.response_complete
        if self._in_body and answered:
            self._linger()
        else:
            self._close_now()

    def _linger(self) -> None:
        assert self._raw is not None
        limits = self.limits
        unread_too_large = self._in_body and (self._body_left or 0) > limits.linger_bytes
        if limits.linger_bytes == 0 or limits.linger_seconds == 0 or unread_too_large:
            self._close_now()  # a reset cannot be avoided within the bounds: spare the work
            return
        self._lingering = True
        self._linger_left = limits.linger_bytes
        self._cancel_timers()
        # The answer ends here for the client; the socket stays open for what it still sends.
        if self._raw.can_write_eof():
            self._raw.write_eof()
        self.flow.resume_reading()
        self._linger_timer = self.loop.call_later(limits.linger_seconds, self._close_now)

    def _discard(self, data: bytes) -> None:
        self._linger_left -= len(data)
        if self._linger_left < 0:
            self._close_now()
            return
        if not self._in_body:
            return  # the rest of a refused head: nothing to parse
        try:
            self.parser.feed_data(data)  # to see where the body ends
        except (httptools.HttpParserError, httptools.HttpParserUpgrade):
            self._close_now()

    def _close_now(self) -> None:
        self._cancel_timers()
        if self._raw is not None and not self._raw.is_closing():
            self._raw.close()

    def _cancel_timers(self) -> None:
        for timer in (self._head_timer, self._body_timer, self._linger_timer):
            self._cancel(timer)
        self._head_timer = self._body_timer = self._linger_timer = None

    @staticmethod
    def _cancel(timer: asyncio.TimerHandle | None) -> None:
        if timer is not None:
            timer.cancel()

    def _write_problem(self, status: int, detail: str, reason: str) -> None:
        body = msgspec.json.encode(
            Problem(
                type=TYPE_PREFIX + reason,
                title=HTTPStatus(status).phrase,
                status=status,
                detail=detail,
                reason=reason,
            )
        )
        head = [f"HTTP/1.1 {status} {HTTPStatus(status).phrase}\r\n".encode()]
        defaults = self.server_state.default_headers  # the Date header
        head += [name + b": " + value + b"\r\n" for name, value in defaults]
        head += [
            f"content-type: {PROBLEM_MEDIA_TYPE}\r\n".encode(),
            f"content-length: {len(body)}\r\n".encode(),
            b"connection: close\r\n\r\n",
        ]
        assert self._raw is not None
        self._raw.write(b"".join(head) + body)

    def _log_extra(self) -> dict[str, Any]:
        client = f"{self.client[0]}:{self.client[1]}" if self.client else None
        return {"client": client, "head_bytes": self._head_bytes}


def _content_length(headers: list[tuple[bytes, bytes]]) -> int | None:
    for name, value in headers:
        if name == b"content-length" and value.isdigit():
            return int(value)
    return None
