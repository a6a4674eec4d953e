"""Fair share through the real server: while client A's 30,000-image request runs, client
B's 30-image request reaches Completed within 5 s plus its own processing time."""

from __future__ import annotations

import time
from pathlib import Path

import httpx
import pytest
from support.csvgen import make_csv
from support.origin import OriginServer
from support.server import ApiServer, server_env

KEY_A, KEY_B = "fair-key-a", "fair-key-b"


def upload(server: ApiServer, urls: list[str], key: str) -> str:
    response = httpx.post(
        server.url("/upload"),
        files={"file": ("p.csv", make_csv([[url] for url in urls]), "text/csv")},
        headers={"X-API-Key": key},
        timeout=120,
    )
    assert response.status_code == 202, response.text
    request_id: str = response.json()["request_id"]
    return request_id


def status(server: ApiServer, request_id: str, key: str) -> dict:  # type: ignore[type-arg]
    response = httpx.get(
        server.url(f"/status/{request_id}?per_page=1"), headers={"X-API-Key": key}, timeout=30
    )
    body: dict = response.json()  # type: ignore[type-arg]
    return body


def seconds_to_complete(server: ApiServer, urls: list[str], key: str) -> float:
    started = time.monotonic()
    request_id = upload(server, urls, key)
    while (body := status(server, request_id, key))["status"] != "Completed":
        assert body["status"] != "Failed", body
        assert time.monotonic() - started < 120, body
        time.sleep(0.05)
    return time.monotonic() - started


@pytest.mark.slow
def test_a_small_request_is_not_delayed_by_another_clients_huge_one(
    tmp_path: Path, origin: OriginServer
) -> None:
    env = server_env(tmp_path, IMGAPI_API_KEYS=f"{KEY_A},{KEY_B}")
    small = [origin.url(f"/corpus/img/s03_coffee.jpg?b{i}") for i in range(30)]
    with ApiServer(env=env, cwd=tmp_path, startup_timeout=120) as server:
        alone = seconds_to_complete(server, small, KEY_B)
        huge = [origin.url(f"/corpus/img/s03_coffee.jpg?a{i}") for i in range(30_000)]
        a_request = upload(server, huge, KEY_A)
        while status(server, a_request, KEY_A)["done"] < 20:
            time.sleep(0.05)
        shared = seconds_to_complete(server, [url + "x" for url in small], KEY_B)
        a_status = status(server, a_request, KEY_A)
    assert a_status["status"] == "In Process"
    assert shared <= alone + 5, f"B took {shared:.1f} s beside A, {alone:.1f} s alone"
