"""Real servers for the API tests, all on 127.0.0.1.

``ApiServer`` runs ``python -m imgapi serve`` as a subprocess::

    with ApiServer(env={...}, cwd=tmp_path) as server:
        httpx.get(server.url("/healthz"))

Its port is chosen free beforehand so that ``IMGAPI_PUBLIC_URL`` (links, media URLs) can
name it; its output goes to ``cwd/server.log`` for failing tests to show.

``core_config`` and ``stored_requests`` set up and inspect
the API tests' data.

``WebhookReceiver`` is an http.server thread recording the webhook POSTs it receives::

    with WebhookReceiver() as hooks:
        hooks.url            # http://127.0.0.1:PORT/hook
        hooks.wait(1, 10)    # the deliveries so far, once there is one (10 s at most)
"""

from __future__ import annotations

import json
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import TracebackType
from typing import Any

import httpx
from imgcore.config import Config


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port


def server_env(root: Path, **extra: str) -> dict[str, str]:
    """The environment of a test server: SQLite and media under ``root``, downloads allowed
    from 127.0.0.1 with one attempt, a short poll interval; ``extra`` adds or overrides."""
    return {
        "IMGCORE_DATABASE_URL": f"sqlite+aiosqlite:///{root}/imgcore.sqlite3",
        "IMGCORE_STORAGE_URL": f"file:{root}/media",
        "IMGCORE_FETCH_ALLOW": "127.0.0.1",
        "IMGCORE_FETCH_MAX_ATTEMPTS": "1",
        "IMGCORE_POLL_INTERVAL": "0.05",
        **extra,
    }


class ApiServer:
    """``imgapi serve`` as a child process; a context manager that waits for /healthz."""

    def __init__(
        self,
        *,
        env: dict[str, str],
        cwd: Path,
        host: str = "127.0.0.1",
        startup_timeout: float = 30,
        command: Sequence[str] = (sys.executable, "-m", "imgapi"),
    ) -> None:
        self.command = list(command)
        self.host = host
        self.port = free_port(host)
        self.base_url = f"http://{host}:{self.port}"
        self.cwd = cwd
        self.log = cwd / "server.log"
        self.env = {
            **os.environ,
            "IMGAPI_PUBLIC_URL": self.base_url,
            "IMGAPI_LOG_FORMAT": "json",
            **env,
        }
        self.startup_timeout = startup_timeout
        self.process: subprocess.Popen[bytes] | None = None
        self.returncode: int | None = None

    def url(self, path: str) -> str:
        """The absolute URL of ``path`` on this server."""
        return self.base_url + path

    def logs(self) -> str:
        """What the server wrote to stderr so far."""
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def __enter__(self) -> ApiServer:
        with self.log.open("wb") as log:
            self.process = subprocess.Popen(
                [
                    *self.command,
                    "serve",
                    "--host",
                    self.host,
                    "--port",
                    str(self.port),
                ],
                cwd=self.cwd,
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + self.startup_timeout
        while True:
            if self.process.poll() is not None:
                raise RuntimeError(f"the server exited at start:\n{self.logs()}")
            try:
                if httpx.get(self.url("/healthz"), timeout=2).status_code == 200:
                    return self
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"the server did not come up:\n{self.logs()}")
            time.sleep(0.1)

    def stop(self, timeout: float = 20) -> int:
        """SIGTERM, then wait (SIGKILL after ``timeout``); returns the exit code."""
        if self.process is None:
            raise RuntimeError("not started")
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.returncode = self.process.returncode
        return self.returncode

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


class _Handler(BaseHTTPRequestHandler):
    server: _Server

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        self.send_response(204)
        self.send_header("Content-Length", "0")
        self.end_headers()
        self.server.receiver._record(dict(self.headers.items()), json.loads(body))

    def log_message(self, format: str, *args: Any) -> None:
        pass


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    receiver: WebhookReceiver


class WebhookReceiver:
    """Records every POST it receives; a context manager.

    ``port``: listen there (a receiver brought back up where a down one was); 0 picks one.
    """

    def __init__(self, port: int = 0) -> None:
        self._server = _Server(("127.0.0.1", port), _Handler)
        self._server.receiver = self
        self.port: int = self._server.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}/hook"
        self._lock = threading.Condition()
        self.deliveries: list[tuple[dict[str, str], Any]] = []
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def _record(self, headers: dict[str, str], payload: Any) -> None:
        with self._lock:
            self.deliveries.append((headers, payload))
            self._lock.notify_all()

    def wait(self, count: int = 1, timeout: float = 10) -> list[tuple[dict[str, str], Any]]:
        """Block until ``count`` deliveries arrived (AssertionError after ``timeout``)."""
        deadline = time.monotonic() + timeout
        with self._lock:
            while len(self.deliveries) < count:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"{len(self.deliveries)} webhook(s), expected {count}")
                self._lock.wait(left)
            return list(self.deliveries)

    def __enter__(self) -> WebhookReceiver:
        self._thread.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)


def core_config(tmp_path: Path, **changes: Any) -> Config:
    """imgcore on a tmp SQLite file and tmp media directory, tuned for quick tests."""
    return Config(
        database_url=f"sqlite+aiosqlite:///{tmp_path}/imgcore.sqlite3",
        storage_url=f"file://{tmp_path}/media",
        public_url="http://127.0.0.1:8000/media",
        api_url="http://127.0.0.1:8000",
        fetch_allow=("127.0.0.1/32",),
        fetch_max_attempts=1,
        fetch_read_timeout=5,
        poll_interval=0.5,  # the executor is woken on submit; rarer idle polls
        lease_seconds=5,
        max_attempts=2,
        workers=2,
        webhook_retry_schedule=(0.2,),
    ).replace(**changes)


def stored_requests(tmp_path: Path) -> int:
    """Requests in the tmp database, read with the sqlite3 module (not through the app)."""
    with sqlite3.connect(tmp_path / "imgcore.sqlite3") as db:
        count: int = db.execute("SELECT count(*) FROM requests").fetchone()[0]
    return count
