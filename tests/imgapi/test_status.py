"""GET /status/{id} and /status/{id}/output.csv: progress, pages, 404s, the CSV stream."""

from __future__ import annotations

import uuid

import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient
from support.csvgen import make_csv, photo_urls
from support.origin import OriginServer

pytestmark = pytest.mark.anyio

Client = AsyncTestClient[Litestar]


async def upload(client: Client, csv: bytes, filename: str = "p.csv") -> str:
    response = await client.post("/upload", files={"file": (filename, csv, "text/csv")})
    assert response.status_code == 202, response.text
    request_id: str = response.json()["request_id"]
    return request_id


@pytest.mark.parametrize(
    "template", ["/status/{}", "/status/{}/", "/api/status/{}", "/api/status/{}/"]
)
async def test_status_answers_on_every_path(
    client: Client, origin: OriginServer, template: str
) -> None:
    request_id = await upload(client, make_csv([photo_urls(origin, 1)]))
    response = await client.get(template.format(request_id))
    assert response.status_code == 200
    body = response.json()
    assert body["request_id"] == request_id
    assert body["status"] in {"Pending", "In Process", "Completed"}
    assert response.headers["cache-control"] == "no-store"


async def test_status_lists_counts_times_and_images(client: Client, origin: OriginServer) -> None:
    urls = photo_urls(origin, 2)
    request_id = await upload(client, make_csv([urls]))
    body = (await client.get(f"/status/{request_id}")).json()
    assert (body["total"], body["done"] + body["failed"] + body["pending"]) == (2, 2)
    assert body["created_at"].endswith("Z")
    assert body["output_csv_url"] == f"http://127.0.0.1:8000/status/{request_id}/output.csv"
    (product,) = body["products"]
    assert (product["serial"], product["name"]) == (1, "SKU1")
    assert [image["input_url"] for image in product["images"]] == urls
    assert set(product["images"][0]) == {
        "input_url",
        "output_url",
        "status",
        "error",
        "error_reason",
        "variants",
        "source_width",
        "source_height",
        "source_sha256",
        "reused",
    }
    assert body["deliveries"] == []


async def test_products_are_paged_with_a_next_link(client: Client, origin: OriginServer) -> None:
    urls = photo_urls(origin, 5)
    request_id = await upload(client, make_csv([[url] for url in urls]))
    first = await client.get(f"/status/{request_id}?per_page=2")
    page = first.json()["page"]
    assert [p["serial"] for p in first.json()["products"]] == [1, 2]
    assert (page["page"], page["pages"], page["total_products"]) == (1, 3, 5)
    assert page["next"] == f"http://127.0.0.1:8000/status/{request_id}?page=2&per_page=2"
    assert page["prev"] is None
    assert first.headers["link"] == f'<{page["next"]}>; rel="next"'
    last = (await client.get(f"/status/{request_id}?page=3&per_page=2")).json()
    assert [p["serial"] for p in last["products"]] == [5]
    assert last["page"]["next"] is None
    assert last["page"]["prev"].endswith("?page=2&per_page=2")


@pytest.mark.parametrize("query", ["page=0", "per_page=0", "per_page=1001", "page=x"])
async def test_out_of_range_paging_is_a_400_problem(
    client: Client, origin: OriginServer, query: str
) -> None:
    request_id = await upload(client, make_csv([photo_urls(origin, 1)]))
    response = await client.get(f"/status/{request_id}?{query}")
    assert response.status_code == 400
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["errors"][0]["reason"] == "invalid_parameter"


async def test_an_unknown_id_is_a_404_problem(client: Client) -> None:
    response = await client.get(f"/status/{uuid.uuid4()}")
    assert response.status_code == 404
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["reason"] == "not_found"


@pytest.mark.parametrize("bad_id", ["nope", "1234", "' OR 1=1 --", "%00", "x" * 300])
async def test_a_malformed_id_is_a_404_problem(client: Client, bad_id: str) -> None:
    response = await client.get(f"/api/status/{bad_id}/")
    assert response.status_code == 404
    assert response.json()["status"] == 404


async def test_the_output_csv_is_an_attachment_in_input_order(
    client: Client, origin: OriginServer
) -> None:
    urls = photo_urls(origin, 3)
    request_id = await upload(client, make_csv([urls[:2], urls[2:]]), filename="my shop.csv")
    response = await client.get(f"/api/status/{request_id}/output.csv")
    assert response.status_code == 200
    assert response.headers["content-type"] == "text/csv; charset=utf-8"
    assert response.headers["content-disposition"] == 'attachment; filename="my_shop-output.csv"'
    lines = response.text.splitlines()
    assert lines[0].startswith("S. No.,Product Name,Input Image Urls,Output Image Urls")
    assert [line.split(",")[0] for line in lines[1:]] == ["1", "2"]


async def test_the_output_csv_of_an_unknown_id_is_404(client: Client) -> None:
    response = await client.get(f"/status/{uuid.uuid4()}/output.csv")
    assert response.status_code == 404
    assert response.headers["content-type"] == "application/problem+json"


async def test_an_unknown_route_is_a_404_problem(client: Client) -> None:
    response = await client.get("/no/such/route")
    assert response.status_code == 404
    assert response.headers["content-type"] == "application/problem+json"
