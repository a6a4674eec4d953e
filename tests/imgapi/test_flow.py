"""The whole job through the app: upload with a webhook, processing, status, images, CSV."""

from __future__ import annotations

import csv
import io
from typing import Any
from urllib.parse import urlsplit

import anyio
import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient
from PIL import Image
from support.csvgen import make_csv, photo_urls
from support.origin import OriginServer
from support.server import WebhookReceiver

pytestmark = pytest.mark.anyio

Client = AsyncTestClient[Litestar]


async def wait_until_finished(client: Client, request_id: str, timeout: float = 30) -> Any:
    with anyio.fail_after(timeout):
        while True:
            body = (await client.get(f"/api/status/{request_id}/")).json()
            if body["status"] in ("Completed", "Failed"):
                return body
            await anyio.sleep(0.05)


async def test_an_upload_is_processed_and_its_webhook_called(
    client: Client, origin: OriginServer, webhooks: WebhookReceiver
) -> None:
    urls = photo_urls(origin, 3)
    response = await client.post(
        "/api/upload/",
        data={"webhook_url": webhooks.url},
        files={"file": ("p.csv", make_csv([urls[:2], urls[2:]]), "text/csv")},
    )
    request_id = response.json()["request_id"]
    body = await wait_until_finished(client, request_id)
    assert (body["status"], body["done"], body["failed"]) == ("Completed", 3, 0)
    assert body["finished_at"] is not None
    (headers, payload), *_ = await anyio.to_thread.run_sync(webhooks.wait, 1, 10)
    assert payload["request_id"] == request_id
    assert payload["status"] == "Completed"
    assert payload["data"]["status_url"] == f"http://127.0.0.1:8000/status/{request_id}"
    assert "webhook-id" in {name.lower() for name in headers}


async def test_a_finished_request_lists_its_delivery(
    client: Client, origin: OriginServer, webhooks: WebhookReceiver
) -> None:
    response = await client.post(
        f"/upload?webhook_url={webhooks.url}",
        files={"file": ("p.csv", make_csv([photo_urls(origin, 1)]), "text/csv")},
    )
    request_id = response.json()["request_id"]
    await wait_until_finished(client, request_id)
    await anyio.to_thread.run_sync(webhooks.wait, 1, 10)
    with anyio.fail_after(10):
        while not (body := (await client.get(f"/status/{request_id}")).json())["deliveries"] or (
            body["deliveries"][0]["status"] != "delivered"
        ):
            await anyio.sleep(0.05)
    (delivery,) = body["deliveries"]
    assert (delivery["notifier"], delivery["last_status_code"]) == ("webhook", 204)
    assert "target" not in delivery  # webhook URLs may carry tokens


async def test_output_urls_serve_the_compressed_images(
    client: Client, origin: OriginServer
) -> None:
    response = await client.post(
        "/upload", files={"file": ("p.csv", make_csv([photo_urls(origin, 2)]), "text/csv")}
    )
    body = await wait_until_finished(client, response.json()["request_id"])
    for image in body["products"][0]["images"]:
        assert image["status"] == "done"
        url = urlsplit(image["output_url"])
        assert (url.scheme, url.netloc) == ("http", "127.0.0.1:8000")
        served = await client.get(url.path)
        assert served.status_code == 200
        assert served.headers["content-type"] == "image/jpeg"
        assert Image.open(io.BytesIO(served.content)).format == "JPEG"


async def test_the_output_csv_names_every_output_url(client: Client, origin: OriginServer) -> None:
    urls = photo_urls(origin, 3)
    response = await client.post(
        "/upload", files={"file": ("p.csv", make_csv([urls[:2], urls[2:]]), "text/csv")}
    )
    request_id = response.json()["request_id"]
    body = await wait_until_finished(client, request_id)
    expected = [
        ",".join(image["output_url"] for image in product["images"]) for product in body["products"]
    ]
    text = (await client.get(f"/status/{request_id}/output.csv")).text
    rows = list(csv.DictReader(io.StringIO(text)))
    assert [row["Input Image Urls"] for row in rows] == [",".join(urls[:2]), urls[2]]
    assert [row["Output Image Urls"] for row in rows] == expected


async def test_a_request_whose_images_all_fail_is_failed_with_reasons(
    client: Client, origin: OriginServer
) -> None:
    missing = origin.url("/status/404")
    response = await client.post(
        "/upload", files={"file": ("p.csv", make_csv([[missing]]), "text/csv")}
    )
    body = await wait_until_finished(client, response.json()["request_id"])
    assert (body["status"], body["failed"]) == ("Failed", 1)
    image = body["products"][0]["images"][0]
    assert (image["status"], image["output_url"]) == ("failed", None)
    assert image["error"]


async def test_metrics_count_requests_and_images(client: Client, origin: OriginServer) -> None:
    response = await client.post(
        "/upload", files={"file": ("p.csv", make_csv([photo_urls(origin, 2)]), "text/csv")}
    )
    await wait_until_finished(client, response.json()["request_id"])
    text = (await client.get("/metrics")).text
    assert 'imgcore_requests{status="Completed"} 1.0' in text
    assert 'imgcore_images_total{status="done"} 2.0' in text
    assert 'imgapi_uploads_total{outcome="accepted"} 1.0' in text
    assert 'imgapi_http_requests_total{method="POST",route="/upload",status="202"} 1.0' in text
    assert "imgcore_image_processing_seconds_count" in text
    in_bytes = next(
        line
        for line in text.splitlines()
        if line.startswith('imgcore_image_bytes_total{direction="in"}')
    )
    assert float(in_bytes.split()[-1]) > 0
