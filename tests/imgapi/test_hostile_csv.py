"""Hostile CSVs against the real server process: each is refused whole with a problem
document naming row and column, nothing is stored, and the server keeps working.

One ``imgapi serve`` runs for the module; every case is checked against what the database
and the media directory held just before it.
"""

from __future__ import annotations

import csv
import io
import sqlite3
import time
import uuid
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from support.csvgen import make_csv, photo_urls
from support.hostile import FORMULA_NAMES, HostileCsv, endless_csv, hostile_csvs
from support.memory import PeakRss
from support.origin import OriginServer
from support.server import ApiServer, server_env

PROBLEM = "application/problem+json"
MAX_UPLOAD = 32_000_000  # above the 10 MB cell, so the CSV parser is what refuses it
GIB = 1 << 30
MIB = 1 << 20
BOUNDARY = "hostile-boundary"
CASES = hostile_csvs()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ApiServer]:
    root = tmp_path_factory.mktemp("hostile")
    env = server_env(
        root,
        IMGCORE_WORKERS="1",
        IMGCORE_COMPRESS_POOL="thread",
        IMGAPI_MAX_UPLOAD_BYTES=str(MAX_UPLOAD),
    )
    with ApiServer(env=env, cwd=root, startup_timeout=90) as running:
        yield running


def stored_rows(root: Path) -> tuple[int, int, int]:
    """Rows in requests, products and images, read with sqlite3 (not through the app)."""
    with sqlite3.connect(root / "imgcore.sqlite3") as db:
        return tuple(  # type: ignore[return-value]
            db.execute(f"SELECT count(*) FROM {table}").fetchone()[0]
            for table in ("requests", "products", "images")
        )


def stray_media(root: Path) -> list[Path]:
    """Files in the media directory that belong to no stored request."""
    media = root / "media"
    if not media.exists():
        return []
    with sqlite3.connect(root / "imgcore.sqlite3") as db:
        known = {str(uuid.UUID(str(row[0]))) for row in db.execute("SELECT id FROM requests")}
    return [
        path
        for path in media.rglob("*")
        if path.is_file() and _request_dir(path.relative_to(media).parts) not in known
    ]


def _request_dir(parts: tuple[str, ...]) -> str | None:
    # Stored files are requests/<request id>/<image id>.<ext>.
    try:
        return str(uuid.UUID(parts[1])) if len(parts) == 3 else None
    except ValueError:
        return None


def multipart(chunks: Iterable[bytes]) -> Iterator[bytes]:
    """A multipart/form-data body around ``chunks``, made as it is sent."""
    yield (
        f"--{BOUNDARY}\r\n"
        'Content-Disposition: form-data; name="file"; filename="hostile.csv"\r\n'
        "Content-Type: text/csv\r\n\r\n"
    ).encode()
    yield from chunks
    yield f"\r\n--{BOUNDARY}--\r\n".encode()


def upload(server: ApiServer, body: bytes | Iterator[bytes], transport: str) -> httpx.Response:
    if transport == "multipart":
        content: Any = multipart([body] if isinstance(body, bytes) else body)
        content_type = f"multipart/form-data; boundary={BOUNDARY}"
    else:
        content, content_type = body, "text/csv"
    return httpx.post(
        server.url("/upload"), content=content, headers={"Content-Type": content_type}, timeout=60
    )


def assert_good_upload_is_accepted(server: ApiServer, origin: OriginServer) -> None:
    """The server is still up and still takes uploads (the image 404s: no media)."""
    assert server.process is not None and server.process.poll() is None, server.logs()
    csv_body = make_csv([[origin.url("/status/404")]])
    response = httpx.post(
        server.url("/upload"), files={"file": ("good.csv", csv_body, "text/csv")}, timeout=30
    )
    assert response.status_code == 202, response.text


def poll_until_finished(server: ApiServer, request_id: str, timeout: float = 30) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        body = httpx.get(server.url(f"/status/{request_id}")).json()
        if body["status"] in ("Completed", "Failed"):
            return body
        assert time.monotonic() < deadline, f"still {body['status']} after {timeout} s"
        time.sleep(0.05)


@pytest.mark.parametrize("transport", ["multipart", "text/csv"])
@pytest.mark.parametrize("case", CASES, ids=[case.id for case in CASES])
def test_a_hostile_csv_is_refused_with_its_row_and_column_and_nothing_is_stored(
    server: ApiServer, origin: OriginServer, case: HostileCsv, transport: str
) -> None:
    before = stored_rows(server.cwd)
    response = upload(server, case.body, transport)

    assert response.status_code == 400, response.text
    assert response.headers["content-type"] == PROBLEM
    problem = response.json()
    assert (problem["status"], problem["reason"]) == (400, "invalid_csv")
    assert problem["type"] == "urn:imgapi:problem:invalid_csv"
    where = [(issue["row"], issue["column"], issue["reason"]) for issue in problem["errors"]]
    assert (case.row, case.column, case.reason) in where
    if case.row is not None:
        assert f"row {case.row}" in problem["detail"]
    if case.column is not None:
        assert f"column {case.column!r}" in problem["detail"]
    # The rest of the body is not read just to be discarded.
    assert response.headers["connection"] == "close"

    assert stored_rows(server.cwd) == before
    assert stray_media(server.cwd) == []
    assert_good_upload_is_accepted(server, origin)


@pytest.mark.parametrize("transport", ["multipart", "text/csv"])
def test_a_1_gb_upload_is_refused_at_the_limit_while_it_streams(
    server: ApiServer, origin: OriginServer, transport: str
) -> None:
    sent = 0

    def counted(chunks: Iterator[bytes]) -> Iterator[bytes]:
        nonlocal sent
        for chunk in chunks:
            sent += len(chunk)
            yield chunk

    before = stored_rows(server.cwd)
    assert server.process is not None
    # Chunked transfer encoding: no Content-Length, so only counting the bytes can stop it.
    with PeakRss(server.process.pid) as rss:
        response = upload(server, counted(endless_csv(GIB)), transport)

    assert response.status_code == 413, response.text
    assert response.headers["content-type"] == PROBLEM
    assert response.json()["reason"] == "upload_too_large"
    # Answered once the limit was passed, long before the client had sent the gigabyte.
    assert MAX_UPLOAD < sent < 4 * MAX_UPLOAD
    # A server that buffered the body would have grown by about a gigabyte.
    assert rss.growth < 200 * MIB, f"server RSS grew by {rss.growth / MIB:.0f} MiB"
    assert stored_rows(server.cwd) == before
    assert stray_media(server.cwd) == []
    assert_good_upload_is_accepted(server, origin)


def test_formula_names_are_accepted_and_neutralised_in_the_output_csv(
    server: ApiServer, origin: OriginServer
) -> None:
    # A product may well be called "-20% sale": such names are data, not errors. What must
    # not happen is a spreadsheet running them, so the output CSV prefixes a quote.
    missing = origin.url("/status/404")
    body = "S. No.,Product Name,Input Image Urls\r\n" + "".join(
        f'{serial},"{name.replace(chr(34), chr(34) * 2)}",{missing}\r\n'
        for serial, name in enumerate(FORMULA_NAMES, start=1)
    )
    response = httpx.post(
        server.url("/upload"), files={"file": ("f.csv", body.encode(), "text/csv")}, timeout=30
    )
    assert response.status_code == 202, response.text
    poll_until_finished(server, response.json()["request_id"])
    output = httpx.get(response.json()["output_csv_url"])
    names = [row["Product Name"] for row in csv.DictReader(io.StringIO(output.text))]
    assert names == [f"'{name}" for name in FORMULA_NAMES]


def test_after_the_hostile_corpus_a_good_upload_is_processed_end_to_end(
    server: ApiServer, origin: OriginServer
) -> None:
    [url] = photo_urls(origin, 1, "after-hostile")
    response = httpx.post(
        server.url("/upload"),
        files={"file": ("p.csv", make_csv([[url, origin.url("/status/404")]]), "text/csv")},
        timeout=30,
    )
    assert response.status_code == 202, response.text
    body = poll_until_finished(server, response.json()["request_id"])
    assert (body["status"], body["done"], body["failed"]) == ("Completed", 1, 1)
    image = body["products"][0]["images"][0]
    assert httpx.get(image["output_url"]).headers["content-type"] == "image/jpeg"
    assert stray_media(server.cwd) == []
