"""A real HTTP origin server for tests: serves the corpus and misbehaves on request.

    with OriginServer(host="127.0.0.1") as origin:
        origin.url("/corpus/img/s03_coffee.jpg")
        origin.hits("/corpus/img/s03_coffee.jpg")

Routes (``<rel>`` is a path inside the corpus; ``?type=`` overrides the Content-Type):

- ``/corpus/<rel>``                     the file (no validators: never 304)
- ``/versioned/<rel>``                  the file with a strong ETag and a Last-Modified;
                                        304 to a matching If-None-Match (or, without one,
                                        If-Modified-Since); ``bump(rel)`` changes its bytes
- ``/status/<code>[?retry_after=S]``    that status with a short text body
- ``/flaky/<key>/<n>/<rel>[?status=500&retry_after=S]``
                                        the first n hits of <key> answer status, then the file
- ``/slow/<seconds>/<rel>``             waits before the headers, then the file
- ``/stall``                            headers and four bytes of a JPEG, then silence
- ``/trickle/<interval>``               chunked, one byte every <interval> seconds, forever
- ``/huge?mb=N[&chunked=1]``            N MiB of random bytes typed image/jpeg
- ``/nonimage``                         an HTML page that claims to be image/jpeg
- ``/redirect?to=<url>[&code=302]``     a redirect (relative targets allowed)
- ``/redirect-loop``                    redirects to itself
- ``/gzip-bomb[?mb=1024]``              Content-Encoding: gzip, ~1 KiB per MiB of zeros inflated
- ``/bomb.png``                         a valid 30000x30000 1-bit PNG (900 MP) of ~110 KiB
- ``/bomb-header.png?w=W&h=H``          a PNG whose header claims WxH (default 100000 x 100000)
                                        but whose pixel data is a few bytes
- ``/endless``                          chunked image/jpeg random bytes until the client leaves

Every request counts a hit for its path; ``completed(path)`` counts bodies written in
full, ``connections`` counts accepted TCP connections and ``max_in_flight`` the most
requests handled at once; ``not_modified(path)`` counts 304s and ``body_bytes(path)`` the
body bytes sent. ``route(path, handler)`` adds a custom route.
"""

from __future__ import annotations

import functools
import hashlib
import ipaddress
import mimetypes
import os
import socket
import socketserver
import struct
import sys
import threading
import time
import zlib
from collections import Counter, defaultdict
from collections.abc import Callable
from datetime import UTC, datetime
from email.utils import format_datetime, parsedate_to_datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import TracebackType
from typing import Any
from urllib.parse import parse_qs, urlsplit

CORPUS = Path(__file__).resolve().parents[1] / "data" / "corpus"
_MIB = 1 << 20

Handler = Callable[["OriginHandler"], None]


class OriginHandler(BaseHTTPRequestHandler):
    """One request; custom routes receive it and answer with :meth:`reply` or by hand."""

    protocol_version = "HTTP/1.1"  # keep-alive and chunked bodies, like real origins
    server: _Server
    timeout = 10  # idle keep-alive connections end on their own

    @property
    def origin(self) -> OriginServer:
        return self.server.origin

    @property
    def route_path(self) -> str:
        return urlsplit(self.path).path

    @property
    def query(self) -> dict[str, str]:
        return {k: v[-1] for k, v in parse_qs(urlsplit(self.path).query).items()}

    def log_message(self, format: str, *args: Any) -> None:
        pass  # tests read counters, not logs

    def reply(
        self,
        status: int,
        body: bytes = b"",
        content_type: str = "text/plain",
        headers: dict[str, str] | None = None,
    ) -> None:
        """Send a complete response with a Content-Length."""
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)
        self.origin._completed(self.route_path, status, 0 if self.command == "HEAD" else len(body))

    def send_chunk(self, data: bytes) -> None:
        """Write one chunk of a ``Transfer-Encoding: chunked`` body."""
        self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
        self.wfile.flush()

    def do_GET(self) -> None:
        path = self.route_path
        generation = self.origin._enter(path, self.path)
        try:
            self.origin._dispatch(self, path)
        finally:
            self.origin._leave(generation)

    do_HEAD = do_GET


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False  # stalled handlers end on their own when the origin stops
    origin: OriginServer

    def __init__(self, host: str, port: int, origin: OriginServer) -> None:
        self.address_family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self.origin = origin
        super().__init__((host, port), OriginHandler)

    def server_bind(self) -> None:
        # HTTPServer.server_bind asks reverse DNS for a name we never use.
        socketserver.TCPServer.server_bind(self)
        self.server_name, self.server_port = str(self.server_address[0]), self.server_address[1]

    def verify_request(self, request: Any, client_address: Any) -> bool:
        self.origin._connected()
        return True

    def handle_error(self, request: Any, client_address: Any) -> None:
        # Clients that hang up early (timeouts, size limits) are the point of many tests.
        error = sys.exc_info()[1]
        if not isinstance(error, ConnectionError | TimeoutError):
            super().handle_error(request, client_address)


class OriginServer:
    """A threaded HTTP server on a loopback address; a context manager."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0, corpus: Path = CORPUS) -> None:
        if not ipaddress.ip_address(host).is_loopback:
            raise ValueError(f"test origins listen on loopback only, not {host}")
        self.host = host
        self.corpus = corpus
        self._server = _Server(host, port, self)
        self.port: int = self._server.server_address[1]
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name=f"origin-{host}",
            daemon=True,
        )
        self._stopping = threading.Event()
        self._lock = threading.Lock()
        self._routes: dict[str, Handler] = {}
        self._generation = 0
        self.reset()

    # lifecycle

    def __enter__(self) -> OriginServer:
        self._thread.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def stop(self) -> None:
        """Stop serving and release the slow and stalled handlers."""
        self._stopping.set()
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    # addresses and counters

    @property
    def base_url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    def url(self, path: str) -> str:
        """The absolute URL of ``path`` on this origin."""
        return self.base_url + path

    def reset(self) -> None:
        """Forget hits, completions, connections, flaky counters and custom routes.

        Requests still running from before (stalled, slow) no longer count as in flight.
        """
        with self._lock:
            self._generation += 1
            self._hits: Counter[str] = Counter()
            self._done: Counter[str] = Counter()
            self._times: defaultdict[str, list[float]] = defaultdict(list)
            self._flaky: Counter[str] = Counter()
            self._in_flight = 0
            self._max_in_flight = 0
            self._connections = 0
            self._routes = {}
            self._not_modified: Counter[str] = Counter()
            self._body_bytes: Counter[str] = Counter()
            self._bumps: Counter[str] = Counter()

    def hits(self, path: str) -> int:
        """Requests received for ``path``; with a ``?query`` only those with that exact query."""
        with self._lock:
            return self._hits[path]

    def total_hits(self) -> int:
        """Requests received, all paths together."""
        with self._lock:
            return sum(n for target, n in self._hits.items() if "?" not in target)

    def completed(self, path: str) -> int:
        """Responses to ``path`` whose body was written in full."""
        with self._lock:
            return self._done[path]

    def not_modified(self, path: str) -> int:
        """304 answers sent for ``path``."""
        with self._lock:
            return self._not_modified[path]

    def total_not_modified(self) -> int:
        """304 answers sent, all paths together."""
        with self._lock:
            return sum(self._not_modified.values())

    def body_bytes(self, path: str) -> int:
        """Body bytes sent in full responses to ``path``."""
        with self._lock:
            return self._body_bytes[path]

    def total_body_bytes(self) -> int:
        """Body bytes sent in full responses, all paths together."""
        with self._lock:
            return sum(self._body_bytes.values())

    def bump(self, rel: str) -> None:
        """From now on ``/versioned/<rel>`` (a JPEG) serves other bytes of the same picture
        (one more comment segment), a new ETag and a Last-Modified a second later."""
        if not (self.corpus / rel).read_bytes().startswith(b"\xff\xd8"):
            raise ValueError(f"only JPEGs can be bumped, not {rel}")
        with self._lock:
            self._bumps[rel] += 1

    def hit_times(self, path: str) -> list[float]:
        """``time.monotonic()`` of each request for ``path``."""
        with self._lock:
            return list(self._times[path])

    @property
    def connections(self) -> int:
        """TCP connections accepted."""
        with self._lock:
            return self._connections

    @property
    def max_in_flight(self) -> int:
        """The most requests being handled at the same moment."""
        with self._lock:
            return self._max_in_flight

    def route(self, path: str, handler: Handler) -> None:
        """Answer requests for exactly ``path`` with ``handler(request)`` (until reset)."""
        with self._lock:
            self._routes[path] = handler

    # server side

    def _enter(self, path: str, target: str) -> int:
        with self._lock:
            self._hits[path] += 1
            if target != path:
                self._hits[target] += 1
            self._times[path].append(time.monotonic())
            self._in_flight += 1
            self._max_in_flight = max(self._max_in_flight, self._in_flight)
            return self._generation

    def _leave(self, generation: int) -> None:
        with self._lock:
            if generation == self._generation:
                self._in_flight -= 1

    def _completed(self, path: str, status: int = 200, size: int = 0) -> None:
        with self._lock:
            self._done[path] += 1
            self._body_bytes[path] += size
            if status == 304:
                self._not_modified[path] += 1

    def _connected(self) -> None:
        with self._lock:
            self._connections += 1

    def _dispatch(self, req: OriginHandler, path: str) -> None:
        with self._lock:
            custom = self._routes.get(path)
        if custom is not None:
            custom(req)
            return
        head, _, rest = path.lstrip("/").partition("/")
        route = getattr(self, "_route_" + head.replace("-", "_").replace(".", "_"), None)
        if route is None:
            req.reply(404, b"no such route")
            return
        route(req, rest)

    def send_file(self, req: OriginHandler, rel: str) -> None:
        """Answer with the corpus file ``rel`` (404 if absent); for custom routes too."""
        file = (self.corpus / rel).resolve()
        if not file.is_relative_to(self.corpus.resolve()) or not file.is_file():
            req.reply(404, b"no such file")
            return
        guessed = mimetypes.guess_type(file.name)[0] or "application/octet-stream"
        req.reply(200, file.read_bytes(), req.query.get("type", guessed))

    def _route_corpus(self, req: OriginHandler, rest: str) -> None:
        self.send_file(req, rest)

    def _route_versioned(self, req: OriginHandler, rest: str) -> None:
        file = (self.corpus / rest).resolve()
        if not file.is_relative_to(self.corpus.resolve()) or not file.is_file():
            req.reply(404, b"no such file")
            return
        with self._lock:
            bumps = self._bumps[rest]
        body = file.read_bytes()
        if bumps:
            comment = f"bump {bumps}".encode()
            body = body[:2] + b"\xff\xfe" + struct.pack(">H", len(comment) + 2) + comment + body[2:]
        etag = '"' + hashlib.sha256(body).hexdigest()[:16] + '"'
        modified = _EPOCH + bumps
        validators = {
            "ETag": etag,
            "Last-Modified": format_datetime(datetime.fromtimestamp(modified, UTC), usegmt=True),
        }
        if _not_modified(req, etag, modified):
            req.reply(304, b"", headers=validators)
            return
        guessed = mimetypes.guess_type(file.name)[0] or "application/octet-stream"
        req.reply(200, body, guessed, headers=validators)

    def _route_status(self, req: OriginHandler, rest: str) -> None:
        headers = {"Retry-After": req.query["retry_after"]} if "retry_after" in req.query else {}
        req.reply(int(rest), f"status {rest}".encode(), headers=headers)

    def _route_flaky(self, req: OriginHandler, rest: str) -> None:
        key, failures, rel = rest.split("/", 2)
        with self._lock:
            self._flaky[key] += 1
            failing = self._flaky[key] <= int(failures)
        if failing:
            self._route_status(req, req.query.get("status", "500"))
        else:
            self.send_file(req, rel)

    def _route_slow(self, req: OriginHandler, rest: str) -> None:
        seconds, rel = rest.split("/", 1)
        req.close_connection = True
        if not self._stopping.wait(float(seconds)):
            self.send_file(req, rel)

    def _route_stall(self, req: OriginHandler, rest: str) -> None:
        req.send_response(200)
        req.send_header("Content-Type", "image/jpeg")
        req.send_header("Content-Length", "100000")
        req.end_headers()
        req.close_connection = True
        req.wfile.write(b"\xff\xd8\xff\xe0")
        req.wfile.flush()
        self._stopping.wait(60)

    def _route_trickle(self, req: OriginHandler, rest: str) -> None:
        req.send_response(200)
        req.send_header("Content-Type", "image/jpeg")
        req.send_header("Transfer-Encoding", "chunked")
        req.end_headers()
        req.close_connection = True
        req.send_chunk(b"\xff\xd8")
        while not self._stopping.wait(float(rest)):
            req.send_chunk(b"\x00")

    def _route_huge(self, req: OriginHandler, rest: str) -> None:
        size = int(req.query.get("mb", "100")) * _MIB
        chunked = req.query.get("chunked") == "1"
        block = _random_block()
        req.send_response(200)
        req.send_header("Content-Type", "image/jpeg")
        if chunked:
            req.send_header("Transfer-Encoding", "chunked")
        else:
            req.send_header("Content-Length", str(size))
        req.end_headers()
        for _ in range(size // len(block)):
            if chunked:
                req.send_chunk(block)
            else:
                req.wfile.write(block)
        if chunked:
            req.wfile.write(b"0\r\n\r\n")
        self._completed(req.route_path)

    def _route_nonimage(self, req: OriginHandler, rest: str) -> None:
        page = b"<!doctype html><title>Not found</title><p>This is not an image.</p>"
        req.reply(200, page, req.query.get("type", "image/jpeg"))

    def _route_redirect(self, req: OriginHandler, rest: str) -> None:
        code = int(req.query.get("code", "302"))
        req.reply(code, b"", headers={"Location": req.query["to"]})

    def _route_redirect_loop(self, req: OriginHandler, rest: str) -> None:
        req.reply(302, b"", headers={"Location": "/redirect-loop"})

    def _route_gzip_bomb(self, req: OriginHandler, rest: str) -> None:
        mib = int(req.query.get("mb", "1024"))
        head, block, tail = gzip_bomb_parts()
        req.send_response(200)
        req.send_header("Content-Type", "image/png")
        req.send_header("Content-Encoding", "gzip")
        req.send_header("Content-Length", str(len(head) + (mib - 1) * len(block) + len(tail) + 8))
        req.end_headers()
        req.wfile.write(head)
        batch = 64  # ~64 KiB per write, like a real server's buffers
        for done in range(0, mib - 1, batch):
            req.wfile.write(block * min(batch, mib - 1 - done))
        req.wfile.write(tail + struct.pack("<II", _zeros_crc32(mib), (mib * _MIB) & 0xFFFFFFFF))
        self._completed(req.route_path)

    def _route_bomb_png(self, req: OriginHandler, rest: str) -> None:
        req.reply(200, png_bomb(), "image/png")

    def _route_bomb_header_png(self, req: OriginHandler, rest: str) -> None:
        width = int(req.query.get("w", "100000"))
        height = int(req.query.get("h", "100000"))
        req.reply(200, png_header_bomb(width, height), "image/png")

    def _route_endless(self, req: OriginHandler, rest: str) -> None:
        block = _random_block()[: 64 * 1024]
        req.send_response(200)
        req.send_header("Content-Type", "image/jpeg")
        req.send_header("Transfer-Encoding", "chunked")
        req.end_headers()
        req.close_connection = True
        req.send_chunk(b"\xff\xd8\xff\xe0")
        while not self._stopping.is_set():
            req.send_chunk(block)  # ConnectionError once the client hangs up


# Last-Modified of every /versioned/ file before any bump (2026-01-01, whole seconds).
_EPOCH = 1_767_225_600


def _not_modified(req: OriginHandler, etag: str, modified: int) -> bool:
    """Whether the request's conditional headers match (RFC 9110: If-None-Match, weak
    comparison, wins over If-Modified-Since)."""
    if_none_match = req.headers.get("If-None-Match")
    if if_none_match is not None:
        tags = {tag.strip().removeprefix("W/") for tag in if_none_match.split(",")}
        return "*" in tags or etag in tags
    since = req.headers.get("If-Modified-Since")
    if since is None:
        return False
    try:
        return parsedate_to_datetime(since).timestamp() >= modified
    except (TypeError, ValueError):
        return False


@functools.cache
def _random_block() -> bytes:
    return os.urandom(_MIB)


@functools.cache
def gzip_bomb_parts() -> tuple[bytes, bytes, bytes]:
    """Gzip member pieces: header+first MiB of zeros, each further MiB, the final block.

    After a full flush the compressor forgets its history, so every further MiB of zeros
    compresses to the same ~1 KiB and a 1 GiB bomb costs nothing to build.
    """
    zeros = bytes(_MIB)
    compressor = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    head = compressor.compress(zeros) + compressor.flush(zlib.Z_FULL_FLUSH)
    block = compressor.compress(zeros) + compressor.flush(zlib.Z_FULL_FLUSH)
    final = zlib.compressobj(9, zlib.DEFLATED, -zlib.MAX_WBITS).flush()  # empty last block
    return head, block, final


@functools.cache
def _zeros_crc32(mib: int) -> int:
    crc, zeros = 0, bytes(_MIB)
    for _ in range(mib):
        crc = zlib.crc32(zeros, crc)
    return crc


def png_header_bomb(width: int, height: int) -> bytes:
    """A PNG whose IHDR claims ``width`` x ``height`` RGB pixels, followed by a few bytes of
    pixel data: refusing it must not depend on decoding anything."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
        )

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(bytes(64)))
        + chunk(b"IEND", b"")
    )


@functools.cache
def png_bomb(width: int = 30000, height: int = 30000) -> bytes:
    """A valid, all-black 1-bit grayscale PNG: tiny on the wire, huge once decoded."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
        )

    row = bytes(1 + (width + 7) // 8)  # filter byte 0, then the packed pixels
    compressor = zlib.compressobj(9)
    rows_per_piece = 1000
    piece = row * rows_per_piece
    parts = [compressor.compress(piece) for _ in range(height // rows_per_piece)]
    parts.append(compressor.compress(row * (height % rows_per_piece)))
    parts.append(compressor.flush())
    header = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", b"".join(parts))
        + chunk(b"IEND", b"")
    )
