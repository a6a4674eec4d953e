"""Re-imports through the API: each image's ``reused`` in the status, the request's count,
and the metrics of reused images and bytes not downloaded."""

from __future__ import annotations

import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient
from support.csvgen import PHOTOS, make_csv
from support.origin import OriginServer

from .test_flow import wait_until_finished

pytestmark = pytest.mark.anyio

Client = AsyncTestClient[Litestar]


async def upload(client: Client, urls: list[str]) -> dict[str, object]:
    response = await client.post("/upload", files={"file": ("p.csv", make_csv([urls]), "text/csv")})
    assert response.status_code == 202
    body: dict[str, object] = await wait_until_finished(client, response.json()["request_id"])
    return body


def metric(text: str, name: str) -> float:
    line = next(line for line in text.splitlines() if line.startswith(name + " "))
    return float(line.split()[-1])


async def test_the_status_says_which_images_were_reused_and_why(
    client: Client, origin: OriginServer
) -> None:
    urls = [origin.url(f"/versioned/img/{PHOTOS[i]}?api{i}") for i in range(2)]
    first = await upload(client, urls)
    origin.bump(f"img/{PHOTOS[1]}")
    second = await upload(client, urls)
    made = first["products"][0]["images"]  # type: ignore[index]
    again = second["products"][0]["images"]  # type: ignore[index]
    assert [image["reused"] for image in made] == [None, None]
    assert [image["reused"] for image in again] == ["not_modified", None]
    assert again[0]["output_url"] == made[0]["output_url"]
    assert again[1]["output_url"] != made[1]["output_url"]
    assert (first["reused"], second["done"], second["reused"]) == (0, 2, 1)


async def test_metrics_count_reused_images_and_the_bytes_not_downloaded(
    client: Client, origin: OriginServer
) -> None:
    urls = [origin.url(f"/versioned/img/{PHOTOS[i]}?m{i}") for i in range(2)]
    await upload(client, urls)
    await upload(client, urls)
    text = (await client.get("/metrics")).text
    sizes = sum(len((origin.corpus / "img" / PHOTOS[i]).read_bytes()) for i in range(2))
    assert 'imgcore_images_reused_total{reason="not_modified"} 2.0' in text
    assert metric(text, "imgcore_download_bytes_saved_total") == sizes
    downloaded = 'imgcore_image_bytes_total{direction="in"}'
    assert metric(text, downloaded) == sizes, "the reused images downloaded nothing"
