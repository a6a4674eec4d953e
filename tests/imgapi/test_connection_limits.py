"""Connection limits of the real server (#16 findings 3 and 9): oversized and slow request
heads, stalled bodies, and the lingering close that lets every client read an early refusal.

One ``imgapi serve`` runs for the module, with one-second head and body timeouts.
"""

from __future__ import annotations

import json
import socket
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator

import httpx
import pytest
from support.server import ApiServer, server_env

TIMEOUT = 1.0  # IMGAPI_HEADER_TIMEOUT and IMGAPI_BODY_TIMEOUT here
MAX_HEADER = 65_536  # the default IMGAPI_MAX_HEADER_BYTES
MIB = 1 << 20
CSV_HEADER = b"S. No.,Product Name,Input Image Urls\n"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ApiServer]:
    root = tmp_path_factory.mktemp("limits")
    env = server_env(
        root,
        IMGCORE_WORKERS="1",
        IMGCORE_COMPRESS_POOL="thread",
        IMGAPI_HEADER_TIMEOUT=str(TIMEOUT),
        IMGAPI_BODY_TIMEOUT=str(TIMEOUT),
        IMGAPI_MAX_UPLOAD_BYTES=str(32 * MIB),
    )
    with ApiServer(env=env, cwd=root, startup_timeout=90) as running:
        yield running


def connect(server: ApiServer, timeout: float = 10) -> socket.socket:
    return socket.create_connection((server.host, server.port), timeout=timeout)


def read_until_closed(sock: socket.socket) -> bytes:
    """Everything the server sends until it closes (a reset after an answer ends it too)."""
    received = b""
    while True:
        try:
            chunk = sock.recv(65536)
        except ConnectionResetError:
            return received
        if not chunk:
            return received
        received += chunk


def status_and_problem(response: bytes) -> tuple[int, dict[str, object]]:
    head, _, body = response.partition(b"\r\n\r\n")
    return int(head.split(b" ", 2)[1]), json.loads(body)


def healthz_seconds(server: ApiServer) -> float:
    started = time.monotonic()
    assert httpx.get(server.url("/healthz"), timeout=10).status_code == 200
    return time.monotonic() - started


def test_a_head_over_the_limit_gets_431(server: ApiServer) -> None:
    head = b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * MIB + b"\r\n\r\n"
    with connect(server) as sock:
        sock.sendall(head)
        status, problem = status_and_problem(read_until_closed(sock))
    assert status == 431
    assert problem["reason"] == "header_too_large"
    assert healthz_seconds(server) < 1


def test_a_head_at_the_limit_is_served(server: ApiServer) -> None:
    line = b"GET /healthz HTTP/1.1\r\nHost: x\r\n"
    filler = b"X-Fill: " + b"a" * (MAX_HEADER - len(line) - len(b"X-Fill: \r\n\r\n"))
    with connect(server) as sock:
        sock.sendall(line + filler + b"\r\n\r\n")
        assert sock.recv(100).startswith(b"HTTP/1.1 200 ")


def test_endless_heads_are_cut_off_while_healthz_answers(server: ApiServer) -> None:
    sent: list[int] = []

    def flood() -> None:
        total = 0
        chunk = b"a" * 65536
        with connect(server) as sock:
            try:
                sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nX-Big: ")
                while total < 64 * MIB:
                    sock.sendall(chunk)
                    total += len(chunk)
            except OSError:
                pass  # the server closed the connection: what this test wants
        sent.append(total)

    floods = [threading.Thread(target=flood) for _ in range(4)]
    for thread in floods:
        thread.start()
    latencies = [healthz_seconds(server) for _ in range(5)]
    for thread in floods:
        thread.join(30)
    # Each connection was closed after the lingering bytes (16 MiB), not read to the end.
    assert len(sent) == 4 and max(sent) < 64 * MIB
    assert max(latencies) < 1


def test_a_head_that_trickles_in_slower_than_the_timeout_is_closed(server: ApiServer) -> None:
    started = time.monotonic()
    with connect(server) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\n")
        try:
            # Bytes keep arriving, but the head does not end in time.
            for byte in b"X-Slow: " + b"a" * 40:
                sock.sendall(bytes([byte]))
                time.sleep(0.1)
        except OSError:
            pass
        response = read_until_closed(sock)
    assert time.monotonic() - started < TIMEOUT + 2
    assert status_and_problem(response)[0] == 408


def test_a_connection_that_sends_nothing_is_closed(server: ApiServer) -> None:
    started = time.monotonic()
    with connect(server) as sock:
        assert read_until_closed(sock) == b""
    assert time.monotonic() - started < TIMEOUT + 2


def test_a_body_that_stalls_is_closed_after_the_body_timeout(server: ApiServer) -> None:
    head = (
        b"POST /upload HTTP/1.1\r\nHost: x\r\nContent-Type: text/csv\r\n"
        b"Content-Length: 100000\r\n\r\n"
    )
    started = time.monotonic()
    with connect(server) as sock:
        sock.sendall(head + CSV_HEADER)  # then nothing more
        assert read_until_closed(sock) == b""
    assert TIMEOUT <= time.monotonic() - started < TIMEOUT + 2
    assert healthz_seconds(server) < 1


def test_a_slow_body_that_keeps_coming_is_read_to_the_end(server: ApiServer) -> None:
    rows = [b'%d,Product %d,"http://127.0.0.1:9/%d.jpg"\n' % (i, i, i) for i in range(1, 7)]
    body = CSV_HEADER + b"".join(rows)
    head = (
        b"POST /upload HTTP/1.1\r\nHost: x\r\nContent-Type: text/csv\r\n"
        b"Content-Length: %d\r\nConnection: close\r\n\r\n" % len(body)
    )
    with connect(server) as sock:
        sock.sendall(head + CSV_HEADER)
        for row in rows:  # longer in all than the body timeout, never idle that long
            time.sleep(TIMEOUT / 3)
            sock.sendall(row)
        assert read_until_closed(sock).startswith(b"HTTP/1.1 202 ")


def test_urllib_reads_the_400_of_an_upload_refused_early(server: ApiServer) -> None:
    # urllib sends the whole body before reading; a close with the body unread reset it.
    # The CSV is refused at its 10 MB cell's first 64 KiB.
    body = CSV_HEADER + b"1,Big,http://127.0.0.1/" + b"a" * 10_000_000 + b"\n"
    request = urllib.request.Request(
        server.url("/upload"), data=body, headers={"Content-Type": "text/csv"}
    )
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(request, timeout=30)
    assert refused.value.code == 400
    problem = json.loads(refused.value.read())
    assert problem["reason"] == "invalid_csv"
    assert "row 2" in problem["detail"]
