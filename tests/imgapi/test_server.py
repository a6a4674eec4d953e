"""The real server process (``python -m imgapi serve``), driven like the seed's clients."""

from __future__ import annotations

import csv
import http.client
import io
import json
import signal
import socket
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import psutil
import pytest
from PIL import Image
from support.csvgen import make_csv, photo_urls
from support.origin import OriginServer
from support.server import ApiServer, WebhookReceiver, server_env

BOUNDARY = "imgapi-test-boundary"


def env_for(root: Path) -> dict[str, str]:
    return server_env(
        root,
        IMGCORE_WORKERS="2",
        IMGCORE_WEBHOOK_RETRY_SCHEDULE="0.2",
        IMGAPI_MAX_UPLOAD_BYTES="5000000",
    )


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ApiServer]:
    root = tmp_path_factory.mktemp("server")
    (root / "secret.txt").write_text("not for you")
    with ApiServer(env=env_for(root), cwd=root) as running:
        yield running


def poll_until_finished(server: ApiServer, request_id: str, timeout: float = 30) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        body = httpx.get(server.url(f"/api/status/{request_id}/")).json()
        if body["status"] in ("Completed", "Failed"):
            return body
        assert time.monotonic() < deadline, f"still {body['status']} after {timeout} s"
        time.sleep(0.05)


def test_the_seed_client_flow_works_end_to_end(
    server: ApiServer, origin: OriginServer, webhooks: WebhookReceiver
) -> None:
    urls = photo_urls(origin, 3, "flow")
    response = httpx.post(
        server.url("/api/upload/"),
        data={"webhook_url": webhooks.url},
        files={"file": ("products.csv", make_csv([urls[:2], urls[2:]]), "text/csv")},
    )
    assert response.status_code == 202, response.text
    request_id = response.json()["request_id"]

    body = poll_until_finished(server, request_id)
    assert (body["status"], body["done"]) == ("Completed", 3)

    (_, payload), *_ = webhooks.wait(1, 15)
    assert (payload["request_id"], payload["status"]) == (request_id, "Completed")
    assert payload["data"]["output_csv_url"] == server.url(f"/status/{request_id}/output.csv")

    output_url = body["products"][0]["images"][0]["output_url"]
    assert output_url.startswith(server.url("/media/requests/"))
    image = httpx.get(output_url)
    assert image.headers["content-type"] == "image/jpeg"
    assert Image.open(io.BytesIO(image.content)).format == "JPEG"

    output = httpx.get(payload["data"]["output_csv_url"])
    assert output.headers["content-disposition"] == 'attachment; filename="products-output.csv"'
    rows = list(csv.DictReader(io.StringIO(output.text)))
    assert rows[0]["Output Image Urls"].split(",")[0] == output_url


def test_log_lines_are_json_with_the_http_request_id(server: ApiServer) -> None:
    response = httpx.get(server.url(f"/status/{'0' * 32}"))
    rid = response.headers["x-request-id"]
    deadline = time.monotonic() + 5
    while True:
        lines = [json.loads(line) for line in server.logs().splitlines() if line.startswith("{")]
        access = [line for line in lines if line.get("http_request_id") == rid]
        if access or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    assert access[0]["logger"] == "imgapi.access"
    assert access[0]["status"] == 404


def test_an_invalid_csv_is_rejected_before_the_body_ends(server: ApiServer) -> None:
    # Announce 4 MB but send only the first 400 KB (imgcore parses 256 KB windows): a server
    # that buffered the body would wait for the rest; a streaming one answers from the start.
    head = (
        f"--{BOUNDARY}\r\n"
        'Content-Disposition: form-data; name="file"; filename="p.csv"\r\n'
        "Content-Type: text/csv\r\n\r\n"
        "Serial,Colour,Size\r\n"
    ).encode() + b"1,red,L\r\n" * 40_000
    with socket.create_connection(("127.0.0.1", server.port), timeout=15) as sock:
        sock.sendall(
            b"POST /upload HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            b"Content-Type: multipart/form-data; boundary=" + BOUNDARY.encode() + b"\r\n"
            b"Content-Length: 4000000\r\n\r\n" + head
        )
        response = http.client.HTTPResponse(sock)
        response.begin()
        assert response.status == 400
        problem = json.loads(response.read())
    assert {issue["reason"] for issue in problem["errors"]} == {"missing_column"}


def test_a_declared_body_over_the_limit_is_413_before_it_is_sent(server: ApiServer) -> None:
    with socket.create_connection(("127.0.0.1", server.port), timeout=15) as sock:
        sock.sendall(
            b"POST /api/upload/ HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            b"Content-Type: text/csv\r\nContent-Length: 5000001\r\n\r\n"
        )
        response = http.client.HTTPResponse(sock)
        response.begin()
        assert response.status == 413
        assert response.getheader("content-type") == "application/problem+json"


@pytest.mark.parametrize(
    "path",
    [
        "/media/../secret.txt",
        "/media/%2e%2e/secret.txt",
        "/media/requests/%2e%2e/%2e%2e/secret.txt",
        "/media/..%2fsecret.txt",
        "/media/%2fetc%2fpasswd",
    ],
)
def test_media_paths_that_escape_the_root_are_404(server: ApiServer, path: str) -> None:
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    try:
        connection.request("GET", path)  # sent as written: no client-side normalisation
        response = connection.getresponse()
        body = response.read()
    finally:
        connection.close()
    assert response.status == 404
    assert b"not for you" not in body


def test_sigterm_stops_the_server_and_returns_unfinished_images(
    tmp_path: Path, origin: OriginServer
) -> None:
    slow = [origin.url(f"/slow/2/img/s03_coffee.jpg?stop{i}") for i in range(4)]
    with ApiServer(env=env_for(tmp_path), cwd=tmp_path) as server:
        response = httpx.post(
            server.url("/upload"), files={"file": ("p.csv", make_csv([slow]), "text/csv")}
        )
        assert response.status_code == 202
        deadline = time.monotonic() + 10
        while origin.hits("/slow/2/img/s03_coffee.jpg") == 0:
            assert time.monotonic() < deadline, "no download started"
            time.sleep(0.02)
        code = server.stop(timeout=20)
    # uvicorn re-raises the signal once it has shut down; SIGKILL (-9) would mean it hung.
    assert code in (0, -signal.SIGTERM), server.logs()
    assert "Finished server process" in server.logs()
    assert "returned" in server.logs() and "unfinished images" in server.logs()
    assert "engine closed" in server.logs()


@pytest.mark.skipif(not Path("/proc/self/maps").exists(), reason="reads /proc/<pid>/maps")
def test_compression_workers_load_neither_the_web_and_database_stack_nor_an_unused_codec(
    tmp_path: Path, origin: OriginServer
) -> None:
    # A worker spawned by a console script re-imports that script first: whatever the CLI
    # module imports at the top is resident in every compression worker.
    command = Path(sys.executable).with_name("imgapi")
    env = {**env_for(tmp_path), "IMGCORE_CODEC": "vips"}
    with ApiServer(env=env, cwd=tmp_path, command=[str(command)]) as running:
        # Each worker compresses one image first: options and codecs load on first use.
        urls = photo_urls(origin, 4, "workers")
        response = httpx.post(
            running.url("/api/upload/"),
            files={"file": ("products.csv", make_csv([urls[:2], urls[2:]]), "text/csv")},
        )
        assert response.status_code == 202, response.text
        body = poll_until_finished(running, response.json()["request_id"])
        assert (body["status"], body["done"]) == ("Completed", 4)
        assert running.process is not None
        workers = [
            child
            for child in psutil.Process(running.process.pid).children(recursive=True)
            if "spawn_main" in " ".join(child.cmdline())
        ]
        assert len(workers) == 2
        for worker in workers:
            maps = Path(f"/proc/{worker.pid}/maps").read_text()
            libraries = ("sqlalchemy", "aiohttp", "cryptography", "/PIL/")  # Pillow: not chosen
            loaded = {name for name in libraries if name in maps}
            assert not loaded, f"worker {worker.pid} loaded {loaded}"
