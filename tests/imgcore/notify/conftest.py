"""A real webhook receiver on 127.0.0.1 that answers from a script and records every POST."""

from __future__ import annotations

import sys
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import msgspec
import pytest

SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
OTHER_SECRET = "whsec_bm90IHRoZSBzYW1lIHNlY3JldCBhdCBhbGw="


class Received(msgspec.Struct, frozen=True):
    """One POST as the receiver saw it, and the status it answered."""

    path: str
    headers: dict[str, str]
    body: bytes
    status: int


class _Handler(BaseHTTPRequestHandler):
    server: _Server

    def do_POST(self) -> None:
        receiver = self.server.receiver
        body = self.rfile.read(int(self.headers.get("content-length") or 0))
        status = receiver.next_status()
        receiver.arrived.set()
        if status == 0:  # stall: no answer until released (or the test ends)
            receiver.release.wait(10)
            status = 204
        receiver.record(
            Received(
                path=self.path,
                headers={k.lower(): v for k, v in self.headers.items()},
                body=body,
                status=status,
            )
        )
        self.send_response(status)
        if 300 <= status < 400:
            self.send_header("Location", receiver.redirect_to)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"ok")

    def log_message(self, *args: Any) -> None:
        pass


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    receiver: Receiver

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A client that gave up on a stalled answer closes first: expected, not a failure.
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)


class Receiver:
    """Answers POSTs with ``statuses`` in turn (the last one repeats); 0 means stall."""

    def __init__(self, port: int = 0, statuses: tuple[int, ...] = (204,)) -> None:
        self.statuses = list(statuses)
        self.redirect_to = "http://127.0.0.1:9/elsewhere"
        self.release = threading.Event()
        self.arrived = threading.Event()  # set by the first POST, before it is answered
        self.received: list[Received] = []
        self._lock = threading.Lock()
        self._server = _Server(("127.0.0.1", port), _Handler)
        self._server.receiver = self
        self.port: int = self._server.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}/hook"
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()

    def answer(self, *statuses: int) -> None:
        """Answer the next POSTs with ``statuses`` (the last one repeats)."""
        with self._lock:
            self.statuses = list(statuses)

    def next_status(self) -> int:
        with self._lock:
            return self.statuses.pop(0) if len(self.statuses) > 1 else self.statuses[0]

    def record(self, received: Received) -> None:
        with self._lock:
            self.received.append(received)

    def close(self) -> None:
        self.release.set()
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(5)


@pytest.fixture
def receivers() -> Iterator[Callable[..., Receiver]]:
    """Start receivers: ``receivers(port=0, statuses=(204,))``; all stop after the test."""
    started: list[Receiver] = []

    def start(port: int = 0, statuses: tuple[int, ...] = (204,)) -> Receiver:
        receiver = Receiver(port, statuses)
        started.append(receiver)
        return receiver

    yield start
    for receiver in started:
        receiver.close()


@pytest.fixture
def receiver(receivers: Callable[..., Receiver]) -> Receiver:
    """One receiver answering 204 (see :meth:`Receiver.answer` to script it)."""
    return receivers()
