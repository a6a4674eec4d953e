"""POST /upload: streamed multipart or text/csv in, 202 with a request id, or a problem."""

from __future__ import annotations

from pathlib import Path

import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient
from support.csvgen import make_csv, photo_urls
from support.origin import OriginServer
from support.server import stored_requests

pytestmark = pytest.mark.anyio

Client = AsyncTestClient[Litestar]
PROBLEM = "application/problem+json"


@pytest.mark.parametrize("path", ["/upload", "/upload/", "/api/upload", "/api/upload/"])
async def test_a_valid_csv_is_accepted_on_every_upload_path(
    client: Client, origin: OriginServer, path: str
) -> None:
    csv = make_csv([photo_urls(origin, 2)])
    response = await client.post(path, files={"file": ("p.csv", csv, "text/csv")})
    assert response.status_code == 202
    request_id = response.json()["request_id"]
    assert response.headers["location"] == f"http://127.0.0.1:8000/status/{request_id}"


async def test_an_accepted_upload_is_stored_with_its_totals(
    client: Client, origin: OriginServer
) -> None:
    urls = photo_urls(origin, 3)
    csv = make_csv([urls[:2], urls[2:]])
    response = await client.post("/upload", files={"file": ("shop.csv", csv, "text/csv")})
    status = (await client.get(f"/status/{response.json()['request_id']}")).json()
    assert (status["total"], status["page"]["total_products"]) == (3, 2)
    assert status["filename"] == "shop.csv"
    assert [i["input_url"] for i in status["products"][0]["images"]] == urls[:2]


async def test_a_bare_text_csv_body_is_accepted(client: Client, origin: OriginServer) -> None:
    csv = make_csv([photo_urls(origin, 1)])
    response = await client.post(
        "/upload?filename=raw.csv", content=csv, headers={"Content-Type": "text/csv"}
    )
    assert response.status_code == 202
    status = (await client.get(f"/status/{response.json()['request_id']}")).json()
    assert status["filename"] == "raw.csv"


async def test_csv_problems_are_listed_with_row_and_column(
    client: Client, origin: OriginServer, tmp_path: Path
) -> None:
    good = photo_urls(origin, 1)
    csv = make_csv([good, ["ftp://example.com/x.jpg"], good])
    response = await client.post("/upload", files={"file": ("p.csv", csv, "text/csv")})
    assert response.status_code == 400
    assert response.headers["content-type"] == PROBLEM
    problem = response.json()
    assert problem["reason"] == "invalid_csv"
    assert problem["type"] == "urn:imgapi:problem:invalid_csv"
    found = {(e["row"], e["column"], e["reason"]) for e in problem["errors"]}
    assert (3, "Input Image Urls", "unsupported_scheme") in found
    assert (4, "S. No.", "duplicate_serial") not in found  # serials differ: 1, 2, 3
    assert stored_requests(tmp_path) == 0


async def test_a_missing_column_is_reported_on_the_header_row(
    client: Client, tmp_path: Path
) -> None:
    csv = b"S. No.,Product Name\r\n1,A\r\n"
    response = await client.post("/upload", files={"file": ("p.csv", csv, "text/csv")})
    assert response.status_code == 400
    errors = response.json()["errors"]
    assert errors == [
        {
            "row": 1,
            "column": "Input Image Urls",
            "reason": "missing_column",
            "message": "the header has no 'Input Image Urls' column",
        }
    ]
    assert stored_requests(tmp_path) == 0


async def test_binary_junk_labelled_octet_stream_is_a_csv_problem(
    client: Client, tmp_path: Path, corpus_dir: Path
) -> None:
    junk = (corpus_dir / "img" / "s03_coffee.jpg").read_bytes()
    response = await client.post(
        "/upload", files={"file": ("p.csv", junk, "application/octet-stream")}
    )
    assert response.status_code == 400
    assert response.json()["errors"][0]["reason"] in {"encoding", "nul_byte"}
    assert stored_requests(tmp_path) == 0


async def test_a_file_part_that_is_not_csv_is_415(
    client: Client, tmp_path: Path, corpus_dir: Path
) -> None:
    photo = (corpus_dir / "img" / "s03_coffee.jpg").read_bytes()
    response = await client.post("/upload", files={"file": ("p.jpg", photo, "image/jpeg")})
    assert response.status_code == 415
    assert response.headers["content-type"] == PROBLEM
    assert stored_requests(tmp_path) == 0


async def test_a_body_that_is_neither_form_nor_csv_is_415(client: Client) -> None:
    response = await client.post("/upload", json={"file": "S. No.,Product Name"})
    assert response.status_code == 415
    assert response.json()["reason"] == "unsupported_media_type"


async def test_a_form_without_file_is_400(client: Client, tmp_path: Path) -> None:
    response = await client.post(
        "/upload", files={"csv": ("p.csv", b"x", "text/csv")}, data={"webhook_url": ""}
    )
    assert response.status_code == 400
    assert response.json()["reason"] == "missing_file"


async def test_a_multipart_content_type_without_boundary_is_400(client: Client) -> None:
    response = await client.post(
        "/upload", content=b"--x\r\n", headers={"Content-Type": "multipart/form-data"}
    )
    assert response.status_code == 400
    assert response.json()["reason"] == "invalid_multipart"


async def test_a_truncated_multipart_body_stores_nothing(
    client: Client, origin: OriginServer, tmp_path: Path
) -> None:
    csv = make_csv([photo_urls(origin, 1)])
    body = (
        b"--b0undary\r\n"
        b'Content-Disposition: form-data; name="file"; filename="p.csv"\r\n'
        b"Content-Type: text/csv\r\n\r\n" + csv  # no closing boundary
    )
    response = await client.post(
        "/upload", content=body, headers={"Content-Type": "multipart/form-data; boundary=b0undary"}
    )
    assert response.status_code == 400
    assert response.json()["reason"] == "invalid_multipart"
    assert stored_requests(tmp_path) == 0


async def test_a_declared_length_over_the_limit_is_413(client: Client, tmp_path: Path) -> None:
    body = b"x" * 1_000_001  # the fixture's limit is 1 MB
    response = await client.post("/upload", content=body, headers={"Content-Type": "text/csv"})
    assert response.status_code == 413
    assert response.json()["reason"] == "upload_too_large"
    assert stored_requests(tmp_path) == 0


async def test_a_webhook_url_that_is_not_http_is_400(
    client: Client, origin: OriginServer, tmp_path: Path
) -> None:
    csv = make_csv([photo_urls(origin, 1)])
    response = await client.post(
        "/upload",
        data={"webhook_url": "ftp://127.0.0.1/hook"},
        files={"file": ("p.csv", csv, "text/csv")},
    )
    assert response.status_code == 400
    assert response.json()["reason"] == "invalid_webhook_url"
    assert stored_requests(tmp_path) == 0


async def test_a_webhook_url_to_a_blocked_address_is_400(
    client: Client, origin: OriginServer, tmp_path: Path
) -> None:
    # 127.0.0.2 is loopback but outside the test allow-list (127.0.0.1/32): the SSRF guard
    # refuses it without connecting.
    csv = make_csv([photo_urls(origin, 1)])
    response = await client.post(
        "/upload",
        data={"webhook_url": "http://127.0.0.2:9/hook"},
        files={"file": ("p.csv", csv, "text/csv")},
    )
    assert response.status_code == 400
    assert response.json()["reason"] == "invalid_webhook_url"
    assert stored_requests(tmp_path) == 0


async def test_a_webhook_url_after_the_file_is_rejected_not_lost(
    client: Client, origin: OriginServer, tmp_path: Path
) -> None:
    csv = make_csv([photo_urls(origin, 1)])
    body = (
        b"--b0undary\r\n"
        b'Content-Disposition: form-data; name="file"; filename="p.csv"\r\n'
        b"Content-Type: text/csv\r\n\r\n" + csv + b"\r\n"
        b"--b0undary\r\n"
        b'Content-Disposition: form-data; name="webhook_url"\r\n\r\n'
        b"http://127.0.0.1:9/hook\r\n"
        b"--b0undary--\r\n"
    )
    response = await client.post(
        "/upload", content=body, headers={"Content-Type": "multipart/form-data; boundary=b0undary"}
    )
    assert response.status_code == 400
    assert response.json()["reason"] == "field_after_file"
    assert stored_requests(tmp_path) == 0


async def test_a_webhook_url_in_both_form_and_query_is_400(
    client: Client, origin: OriginServer
) -> None:
    csv = make_csv([photo_urls(origin, 1)])
    response = await client.post(
        "/upload?webhook_url=http://127.0.0.1:9/a",
        data={"webhook_url": "http://127.0.0.1:9/b"},
        files={"file": ("p.csv", csv, "text/csv")},
    )
    assert response.status_code == 400
    assert response.json()["reason"] == "duplicate_field"


async def test_two_file_parts_are_400(client: Client, origin: OriginServer, tmp_path: Path) -> None:
    csv = make_csv([photo_urls(origin, 1)])
    response = await client.post(
        "/upload",
        files=[("file", ("a.csv", csv, "text/csv")), ("file", ("b.csv", csv, "text/csv"))],
    )
    assert response.status_code == 400
    assert response.json()["reason"] == "multiple_files"
    assert stored_requests(tmp_path) == 0


async def test_unknown_form_fields_are_ignored(client: Client, origin: OriginServer) -> None:
    csv = make_csv([photo_urls(origin, 1)])
    response = await client.post(
        "/upload", data={"note": "hello"}, files={"file": ("p.csv", csv, "text/csv")}
    )
    assert response.status_code == 202
