"""GET /media/{key}: stored files with type, ETag and long caching; nothing outside the root."""

from __future__ import annotations

from pathlib import Path

import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient

pytestmark = pytest.mark.anyio

Client = AsyncTestClient[Litestar]
KEY = "requests/0f1e2d3c-4b5a-6978-8695-a4b3c2d1e0f9/7.jpg"


@pytest.fixture
def stored(tmp_path: Path, corpus_dir: Path) -> bytes:
    """A JPEG stored under KEY in the app's media directory, and a secret beside the root."""
    data = (corpus_dir / "img" / "s03_coffee.jpg").read_bytes()
    path = tmp_path / "media" / KEY
    path.parent.mkdir(parents=True)
    path.write_bytes(data)
    (tmp_path / "media" / "requests" / ".tmp-partial").write_bytes(b"half")
    (tmp_path / "secret.txt").write_text("not for you")
    return data


async def test_a_stored_image_is_served_with_cache_headers(client: Client, stored: bytes) -> None:
    response = await client.get(f"/media/{KEY}")
    assert response.status_code == 200
    assert response.content == stored
    assert response.headers["content-type"] == "image/jpeg"
    assert response.headers["cache-control"] == "public, max-age=31536000, immutable"
    assert response.headers["etag"].startswith('"')
    assert response.headers["x-content-type-options"] == "nosniff"


async def test_a_matching_if_none_match_is_304(client: Client, stored: bytes) -> None:
    etag = (await client.get(f"/media/{KEY}")).headers["etag"]
    response = await client.get(f"/media/{KEY}", headers={"If-None-Match": f'"other", {etag}'})
    assert response.status_code == 304
    assert response.content == b""
    assert response.headers["etag"] == etag


async def test_a_stale_if_none_match_gets_the_file(client: Client, stored: bytes) -> None:
    response = await client.get(f"/media/{KEY}", headers={"If-None-Match": '"stale"'})
    assert response.status_code == 200


@pytest.mark.parametrize(
    "path",
    [
        "/media/requests/0f1e2d3c-4b5a-6978-8695-a4b3c2d1e0f9/8.jpg",
        "/media/requests/.tmp-partial",
        "/media/requests",
        "/media/../secret.txt",
        "/media/%2e%2e/secret.txt",
        "/media/requests/..%2f..%2fsecret.txt",
        "/media//etc/passwd",
        "/media/requests%5c..%5c..%5csecret.txt",
        "/media/%00",
    ],
)
async def test_missing_hidden_and_escaping_paths_are_404(
    client: Client, stored: bytes, path: str
) -> None:
    response = await client.get(path)
    assert response.status_code == 404
    assert b"not for you" not in response.content
