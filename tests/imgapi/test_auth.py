"""API keys: Bearer or X-API-Key on upload and status routes; probes and media stay open."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import msgspec
import pytest
from imgapi import Settings, create_app
from imgapi.auth import key_matches, presented_key
from litestar import Litestar
from litestar.testing import AsyncTestClient
from support.csvgen import make_csv, photo_urls
from support.origin import OriginServer

pytestmark = pytest.mark.anyio

Client = AsyncTestClient[Litestar]
KEY = "k3y-for-tests"


@pytest.fixture
async def locked(settings: Settings) -> AsyncIterator[Client]:
    """The app with two API keys configured."""
    app = create_app(msgspec.structs.replace(settings, api_keys=("other-key", KEY)))
    async with AsyncTestClient(app, base_url="http://127.0.0.1:8000") as client:
        yield client


def csv_files(origin: OriginServer) -> dict[str, tuple[str, bytes, str]]:
    return {"file": ("p.csv", make_csv([photo_urls(origin, 1)]), "text/csv")}


async def test_an_upload_without_a_key_is_401(
    locked: Client, origin: OriginServer, tmp_path: Path
) -> None:
    response = await locked.post("/upload", files=csv_files(origin))
    assert response.status_code == 401
    assert response.headers["content-type"] == "application/problem+json"
    assert response.headers["www-authenticate"].startswith("Bearer")


async def test_an_upload_with_a_wrong_key_is_401(locked: Client, origin: OriginServer) -> None:
    response = await locked.post(
        "/upload", files=csv_files(origin), headers={"Authorization": f"Bearer {KEY}x"}
    )
    assert response.status_code == 401


async def test_a_bearer_key_is_accepted(locked: Client, origin: OriginServer) -> None:
    response = await locked.post(
        "/upload", files=csv_files(origin), headers={"Authorization": f"bearer {KEY}"}
    )
    assert response.status_code == 202


async def test_an_x_api_key_is_accepted(locked: Client, origin: OriginServer) -> None:
    response = await locked.post("/upload", files=csv_files(origin), headers={"X-API-Key": KEY})
    assert response.status_code == 202


@pytest.mark.parametrize("template", ["/status/{}", "/api/status/{}/", "/status/{}/output.csv"])
async def test_status_routes_need_a_key(locked: Client, template: str) -> None:
    path = template.format(uuid.uuid4())
    assert (await locked.get(path)).status_code == 401
    assert (await locked.get(path, headers={"X-API-Key": KEY})).status_code == 404


@pytest.mark.parametrize("path", ["/healthz", "/readyz", "/metrics", "/media/none.jpg"])
async def test_probes_metrics_and_media_stay_open(locked: Client, path: str) -> None:
    assert (await locked.get(path)).status_code in (200, 404)
    assert (await locked.get(path)).status_code != 401


def test_a_key_matches_only_exactly() -> None:
    keys = (b"alpha", b"beta")
    assert key_matches(b"beta", keys)
    assert not key_matches(b"bet", keys)
    assert not key_matches(b"betaa", keys)
    assert not key_matches(b"", keys)


def test_the_presented_key_comes_from_bearer_or_x_api_key() -> None:
    assert presented_key("Bearer abc", None) == b"abc"
    assert presented_key("Basic abc", "xyz") == b"xyz"
    assert presented_key(None, " xyz ") == b"xyz"
    assert presented_key("Bearer ", None) is None
    assert presented_key(None, None) is None


def test_a_non_ascii_key_is_compared_as_utf8_bytes() -> None:
    # Header values reach us decoded as latin-1; the key is configured as text.
    sent = "clé".encode().decode("latin-1")
    assert key_matches(presented_key(None, sent) or b"", ("clé".encode(),))
