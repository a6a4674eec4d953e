"""The real server process tried as an attacker would (issue #16): out-of-range numbers in
URLs, and a storage that cannot be written."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from support.csvgen import make_csv, photo_urls
from support.origin import OriginServer
from support.server import ApiServer, server_env

PASSWORD = "correct horse battery"
HUGE = "99999999999999999999"  # more than 64 bits
JUST_OVER = "2147484"  # the first page number past imgapi.routes.status.MAX_PAGE


def create_admin(env: dict[str, str], cwd: Path) -> None:
    subprocess.run(
        [sys.executable, "-m", "imgapi", "create-admin", "admin"],
        input=PASSWORD + "\n",
        text=True,
        env={**os.environ, **env},
        cwd=cwd,
        check=True,
        capture_output=True,
        timeout=60,
    )


def wait_finished(server: ApiServer, request_id: str, timeout: float = 30) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        body = httpx.get(server.url(f"/status/{request_id}")).json()
        if body["status"] in ("Completed", "Failed"):
            return body
        assert time.monotonic() < deadline, f"still {body['status']} after {timeout} s"
        time.sleep(0.05)


def upload(server: ApiServer, csv: bytes) -> str:
    response = httpx.post(server.url("/upload"), files={"file": ("p.csv", csv, "text/csv")})
    assert response.status_code == 202, response.text
    request_id: str = response.json()["request_id"]
    return request_id


# -- numbers out of range ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ApiServer]:
    root = tmp_path_factory.mktemp("limits")
    env = server_env(root, IMGAPI_LOG_FORMAT="none", IMGCORE_COMPRESS_POOL="thread")
    create_admin(env, root)
    with ApiServer(env=env, cwd=root) as running:
        yield running


@pytest.fixture(scope="module")
def finished(server: ApiServer, _origin_server: OriginServer) -> tuple[str, int]:
    """A completed request and the id of its done image."""
    request_id = upload(server, make_csv([photo_urls(_origin_server, 1, "limits")]))
    wait_finished(server, request_id)
    return request_id, 1


@pytest.fixture(scope="module")
def admin(server: ApiServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.base_url) as client:
        page = client.get("/admin/login").text
        match = re.search(r'name="csrf_token" value="([^"]+)"', page)
        assert match
        response = client.post(
            "/admin/login",
            data={"csrf_token": match.group(1), "username": "admin", "password": PASSWORD},
        )
        assert response.status_code == 303, response.text
        yield client


@pytest.mark.parametrize(
    "query", [f"page={HUGE}", f"page={JUST_OVER}", f"per_page={HUGE}", f"page=-{HUGE}"]
)
@pytest.mark.parametrize("template", ["/status/{}", "/api/status/{}/"])
def test_a_page_number_out_of_range_is_a_400_problem(
    server: ApiServer, finished: tuple[str, int], template: str, query: str
) -> None:
    response = httpx.get(server.url(template.format(finished[0]) + "?" + query))
    assert response.status_code == 400, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["errors"][0]["reason"] == "invalid_parameter"


def test_the_largest_page_number_is_an_empty_page(
    server: ApiServer, finished: tuple[str, int]
) -> None:
    response = httpx.get(server.url(f"/status/{finished[0]}?page=2147483&per_page=1000"))
    assert response.status_code == 200, response.text
    assert response.json()["products"] == []


@pytest.mark.parametrize(
    "path",
    [
        f"/admin?page={HUGE}",
        f"/admin?page={JUST_OVER}",
        "/admin/requests/{id}?page=" + HUGE,
        "/admin/requests/{id}/thumbs/" + HUGE,
        "/admin/requests/{id}/thumbs/0",
    ],
)
def test_an_admin_page_out_of_range_is_a_400_page(
    server: ApiServer, admin: httpx.Client, finished: tuple[str, int], path: str
) -> None:
    response = admin.get(path.replace("{id}", finished[0]))
    assert response.status_code == 400, response.text
    assert response.headers["content-type"].startswith("text/html")
    assert "Bad request" in response.text


def test_the_admin_status_json_out_of_range_is_a_400_problem(
    server: ApiServer, admin: httpx.Client, finished: tuple[str, int]
) -> None:
    response = admin.get(f"/admin/requests/{finished[0]}/status.json?page={HUGE}")
    assert response.status_code == 400, response.text
    assert response.headers["content-type"] == "application/problem+json"


def test_the_server_still_serves_after_the_refusals(
    server: ApiServer, admin: httpx.Client, finished: tuple[str, int]
) -> None:
    request_id, image_id = finished
    assert httpx.get(server.url(f"/status/{request_id}")).json()["done"] == 1
    thumbnail = admin.get(f"/admin/requests/{request_id}/thumbs/{image_id}")
    assert thumbnail.headers["content-type"] == "image/jpeg"
    assert "server.error" not in server.logs() and "Traceback" not in server.logs()


# -- a storage that cannot be written ----------------------------------------------------------


def test_readiness_and_the_status_say_when_the_storage_cannot_be_written(
    tmp_path: Path, origin: OriginServer
) -> None:
    # The storage root is a regular file: writes fail with ENOTDIR even for root, whom a
    # read-only directory (chmod) would not stop.
    media = tmp_path / "media"
    media.write_bytes(b"not a directory")
    env = server_env(
        tmp_path,
        IMGAPI_LOG_FORMAT="none",
        IMGCORE_COMPRESS_POOL="thread",
        IMGCORE_MAX_ATTEMPTS="2",
    )
    with ApiServer(env=env, cwd=tmp_path) as server:
        ready = httpx.get(server.url("/readyz"))
        assert ready.status_code == 503, ready.text
        assert ready.json()["reason"] == "storage_unavailable"
        assert httpx.get(server.url("/healthz")).status_code == 200  # alive, just not ready

        request_id = upload(server, make_csv([photo_urls(origin, 2, "readonly")]))
        body = wait_finished(server, request_id)
        assert (body["status"], body["failed"]) == ("Failed", 2)
        assert body["error"] == (
            "2 of 2 images failed: 2 storage_error (the storage could not be written)"
        )
        images = body["products"][0]["images"]
        assert {image["error_reason"] for image in images} == {"storage_error"}

        media.unlink()  # repaired: ready again once the last probe's outcome is stale
        deadline = time.monotonic() + 15
        while (ready := httpx.get(server.url("/readyz"))).status_code != 200:
            assert time.monotonic() < deadline, ready.text
            time.sleep(0.5)
        assert not [path for path in media.rglob("*") if path.is_file()], "probe deleted"
