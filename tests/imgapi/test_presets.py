"""Presets over HTTP: GET /presets, choosing one at upload, and what status shows of it."""

from __future__ import annotations

from pathlib import Path

import anyio
import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient
from support.csvgen import make_csv, photo_urls
from support.origin import OriginServer
from support.server import stored_requests

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
