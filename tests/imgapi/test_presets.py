"""Presets over HTTP: GET /presets, choosing one at upload, and what status shows of it."""

from __future__ import annotations

import io
from collections.abc import AsyncIterator
from pathlib import Path

import anyio
import pytest
from imgapi import Settings, create_app
from litestar import Litestar
from litestar.testing import AsyncTestClient
from PIL import Image
from support.csvgen import make_csv, photo_urls
from support.origin import OriginServer
from support.server import core_config, stored_requests

pytestmark = pytest.mark.anyio

Client = AsyncTestClient[Litestar]


async def wait_done(client: Client, request_id: str) -> dict[str, object]:
    with anyio.fail_after(60):
        while True:
            body: dict[str, object] = (await client.get(f"/status/{request_id}")).json()
            if body["status"] in ("Completed", "Failed"):
                return body
            await anyio.sleep(0.05)


@pytest.mark.parametrize("path", ["/presets", "/api/presets"])
async def test_presets_lists_the_built_ins_with_their_variants(client: Client, path: str) -> None:
    response = await client.get(path)
    assert response.status_code == 200
    presets = response.json()["presets"]
    assert [p["name"] for p in presets] == ["default", "catalog"]
    catalog = presets[1]["variants"]
    assert [(v["name"], v["fit"], v["width"], v["height"], v["format"]) for v in catalog] == [
        ("large", "contain", 2048, 2048, "JPEG"),
        ("medium", "contain", 1000, 1000, "WEBP"),
        ("thumb", "pad", 160, 160, "JPEG"),
    ]
    assert catalog[2]["background"] == "#ffffff"


@pytest.mark.parametrize("where", ["form", "query"])
async def test_an_upload_chooses_a_preset_and_status_lists_each_variant(
    client: Client, origin: OriginServer, where: str
) -> None:
    csv = make_csv([photo_urls(origin, 1)])
    response = await client.post(
        "/upload" + ("?preset=catalog" if where == "query" else ""),
        data={"preset": "catalog"} if where == "form" else {},
        files={"file": ("p.csv", csv, "text/csv")},
    )
    assert response.status_code == 202
    body = await wait_done(client, response.json()["request_id"])
    assert body["preset"] == "catalog"
    (image,) = body["products"][0]["images"]  # type: ignore[index]
    variants = image["variants"]
    assert [(v["name"], v["format"]) for v in variants] == [
        ("large", "JPEG"),
        ("medium", "WEBP"),
        ("thumb", "JPEG"),
    ]
    assert image["output_url"] == variants[0]["url"]
    assert (variants[2]["width"], variants[2]["height"]) == (160, 160)
    assert all(v["bytes"] > 0 for v in variants)
    assert image["source_width"] > 0
    assert len(image["source_sha256"]) == 64
    thumb = await client.get(variants[2]["url"].removeprefix("http://127.0.0.1:8000"))
    assert thumb.status_code == 200
    assert thumb.headers["content-type"] == "image/jpeg"


async def test_a_text_csv_upload_takes_the_preset_in_the_query(
    client: Client, origin: OriginServer
) -> None:
    csv = make_csv([photo_urls(origin, 1)])
    response = await client.post(
        "/upload?preset=catalog", content=csv, headers={"Content-Type": "text/csv"}
    )
    assert response.status_code == 202
    status = (await client.get(f"/status/{response.json()['request_id']}")).json()
    assert status["preset"] == "catalog"


async def test_an_unknown_preset_is_400_with_the_known_names(
    client: Client, origin: OriginServer, tmp_path: Path
) -> None:
    csv = make_csv([photo_urls(origin, 1)])
    response = await client.post(
        "/upload", data={"preset": "zoom"}, files={"file": ("p.csv", csv, "text/csv")}
    )
    assert response.status_code == 400
    assert response.headers["content-type"] == "application/problem+json"
    problem = response.json()
    assert problem["reason"] == "unknown_preset"
    assert problem["presets"] == ["default", "catalog"]
    assert "zoom" in problem["detail"]
    assert stored_requests(tmp_path) == 0


async def test_a_preset_in_both_form_and_query_is_400(client: Client, origin: OriginServer) -> None:
    csv = make_csv([photo_urls(origin, 1)])
    response = await client.post(
        "/upload?preset=catalog",
        data={"preset": "default"},
        files={"file": ("p.csv", csv, "text/csv")},
    )
    assert response.status_code == 400
    assert response.json()["reason"] == "duplicate_field"


FORMATS = """
[[presets.formats.variants]]
name = "page"
width = 300
height = 300

[[presets.formats.variants]]
name = "page_webp"
width = 300
height = 300
format = "WEBP"

[[presets.formats.variants]]
name = "page_avif"
width = 300
height = 300
format = "AVIF"

[[presets.formats.variants]]
name = "thumb"
fit = "pad"
width = 100
height = 100
"""


@pytest.fixture
async def formats_client(tmp_path: Path) -> AsyncIterator[Client]:
    """The app with a preset that writes one picture as JPEG, WebP and AVIF."""
    (tmp_path / "presets.toml").write_text(FORMATS)
    core = core_config(tmp_path).replace(presets_file=str(tmp_path / "presets.toml"))
    app = create_app(Settings(core=core, log_format="none"))
    async with AsyncTestClient(app, base_url="http://127.0.0.1:8000") as client:
        yield client


async def formats_variants(client: Client, origin: OriginServer) -> dict[str, str]:
    csv = make_csv([photo_urls(origin, 1)])
    response = await client.post(
        "/upload?preset=formats", files={"file": ("p.csv", csv, "text/csv")}
    )
    body = await wait_done(client, response.json()["request_id"])
    (image,) = body["products"][0]["images"]  # type: ignore[index]
    return {v["name"]: v["url"].removeprefix("http://127.0.0.1:8000") for v in image["variants"]}


@pytest.mark.parametrize(
    ("accept", "served"),
    [
        ("image/avif,image/webp,image/apng,image/*,*/*;q=0.8", "image/avif"),
        ("image/webp,*/*", "image/webp"),
        ("image/avif;q=0,image/webp", "image/webp"),
        ("*/*", "image/jpeg"),
        (None, "image/jpeg"),
    ],
)
async def test_media_serves_the_best_format_the_client_accepts(
    formats_client: Client, origin: OriginServer, accept: str | None, served: str
) -> None:
    urls = await formats_variants(formats_client, origin)
    headers = {"Accept": accept} if accept is not None else {}
    response = await formats_client.get(urls["page"], headers=headers)
    assert response.status_code == 200
    assert response.headers["content-type"] == served
    assert response.headers["vary"] == "Accept"
    assert Image.open(io.BytesIO(response.content)).format == served.split("/")[1].upper()


async def test_media_serves_a_picture_written_in_one_format_as_it_is(
    formats_client: Client, origin: OriginServer
) -> None:
    urls = await formats_variants(formats_client, origin)
    response = await formats_client.get(urls["thumb"], headers={"Accept": "image/avif"})
    assert response.headers["content-type"] == "image/jpeg"
    assert "vary" not in response.headers
