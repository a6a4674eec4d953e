"""``imgapi keys`` and API clients, against a real server: keys are stored hashed, belong to
named clients, may be several per client, and stop working the moment they are revoked."""

from __future__ import annotations

import hashlib
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from support.csvgen import make_csv, photo_urls
from support.origin import OriginServer
from support.server import ApiServer, server_env


def imgapi(tmp_path: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    import os

    return subprocess.run(
        [sys.executable, "-m", "imgapi", *args],
        cwd=tmp_path,
        env={**os.environ, **server_env(tmp_path), "IMGAPI_LOG_FORMAT": "none", **env},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def create_key(tmp_path: Path, name: str) -> str:
    done = imgapi(tmp_path, "keys", "create", name)
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


@pytest.fixture
def server(tmp_path: Path) -> Iterator[ApiServer]:
    with ApiServer(env=server_env(tmp_path, IMGAPI_API_KEYS="env-key"), cwd=tmp_path) as server:
        yield server


def upload(server: ApiServer, origin: OriginServer, key: str) -> httpx.Response:
    return httpx.post(
        server.url("/upload"),
        files={"file": ("p.csv", make_csv([photo_urls(origin, 1)]), "text/csv")},
        headers={"Authorization": f"Bearer {key}"},
    )


def test_keys_create_prints_the_key_alone_and_stores_only_its_hash(tmp_path: Path) -> None:
    done = imgapi(tmp_path, "keys", "create", "shop-1")
    assert done.returncode == 0, done.stderr
    key = done.stdout.removesuffix("\n")
    assert "\n" not in key and key.startswith("imgapi_") and len(key) >= 40
    with sqlite3.connect(tmp_path / "imgcore.sqlite3") as db:
        rows = db.execute("SELECT key_hash, prefix FROM api_keys").fetchall()
    assert rows == [(hashlib.sha256(key.encode()).hexdigest(), key[:12])]


def test_keys_list_shows_clients_and_key_prefixes_never_keys(tmp_path: Path) -> None:
    first = create_key(tmp_path, "shop-1")
    second = create_key(tmp_path, "shop-1")
    create_key(tmp_path, "shop-2")
    listed = imgapi(tmp_path, "keys", "list")
    assert listed.returncode == 0
    assert "shop-1" in listed.stdout and "shop-2" in listed.stdout
    assert first[:12] in listed.stdout and second[:12] in listed.stdout
    assert first not in listed.stdout and second not in listed.stdout


@pytest.mark.parametrize("name", ["", "env:abc", "a b", "x" * 65, ".dot"])
def test_a_bad_client_name_is_refused(tmp_path: Path, name: str) -> None:
    done = imgapi(tmp_path, "keys", "create", name)
    assert done.returncode == 1
    assert "client name" in done.stderr and done.stdout == ""


def test_revoking_an_unknown_client_fails(tmp_path: Path) -> None:
    done = imgapi(tmp_path, "keys", "revoke", "nobody")
    assert done.returncode == 1
    assert "no client named 'nobody'" in done.stderr


def test_a_database_key_locks_the_api_and_names_its_client(
    tmp_path: Path, origin: OriginServer
) -> None:
    key = create_key(tmp_path, "shop-1")
    with ApiServer(env=server_env(tmp_path), cwd=tmp_path) as server:
        assert httpx.get(server.url("/requests")).status_code == 401
        assert upload(server, origin, "wrong").status_code == 401
        response = upload(server, origin, key)
        assert response.status_code == 202
        listed = httpx.get(server.url("/requests"), headers={"X-API-Key": key}).json()
        assert [r["request_id"] for r in listed["requests"]] == [response.json()["request_id"]]
        # Probes, metrics and media stay open.
        assert httpx.get(server.url("/healthz")).status_code == 200
        assert httpx.get(server.url("/metrics")).status_code == 200
    with sqlite3.connect(tmp_path / "imgcore.sqlite3") as db:
        assert db.execute("SELECT client FROM requests").fetchall() == [("shop-1",)]


def test_keys_of_one_client_share_its_requests_and_revoke_one_at_a_time(
    tmp_path: Path, origin: OriginServer, server: ApiServer
) -> None:
    old = create_key(tmp_path, "shop-1")
    new = create_key(tmp_path, "shop-1")
    request_id = upload(server, origin, old).json()["request_id"]
    assert httpx.get(server.url(f"/status/{request_id}"), headers={"X-API-Key": new}).is_success
    revoked = imgapi(tmp_path, "keys", "revoke", "shop-1", "--key", old[:12])
    assert revoked.returncode == 0 and "1 key(s)" in revoked.stdout
    assert upload(server, origin, old).status_code == 401
    assert upload(server, origin, new).status_code == 202


def test_a_revoked_key_answers_401_at_once(
    tmp_path: Path, origin: OriginServer, server: ApiServer
) -> None:
    key = create_key(tmp_path, "shop-1")
    status = httpx.get(server.url("/requests"), headers={"X-API-Key": key})
    assert status.status_code == 200
    assert imgapi(tmp_path, "keys", "revoke", "shop-1").returncode == 0
    response = httpx.get(server.url("/requests"), headers={"X-API-Key": key})
    assert response.status_code == 401
    assert response.headers["content-type"] == "application/problem+json"


def test_an_environment_key_is_a_client_of_its_own(
    tmp_path: Path, origin: OriginServer, server: ApiServer
) -> None:
    key = create_key(tmp_path, "shop-1")
    mine = upload(server, origin, "env-key").json()["request_id"]
    theirs = upload(server, origin, key).json()["request_id"]
    env_list = httpx.get(server.url("/requests"), headers={"X-API-Key": "env-key"}).json()
    assert [r["request_id"] for r in env_list["requests"]] == [mine]
    status = httpx.get(server.url(f"/status/{theirs}"), headers={"X-API-Key": "env-key"})
    assert status.status_code == 404


def test_revoking_every_key_does_not_open_the_api(tmp_path: Path) -> None:
    create_key(tmp_path, "shop-1")
    assert imgapi(tmp_path, "keys", "revoke", "shop-1").returncode == 0
    with ApiServer(env=server_env(tmp_path), cwd=tmp_path) as server:
        assert httpx.get(server.url("/requests")).status_code == 401
