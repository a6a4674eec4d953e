"""A whole request processed by the Engine with its images stored in S3 (moto on 127.0.0.1)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest
from imgcore import Engine
from imgcore.states import RequestStatus
from imgcore_s3 import ObjectStorage
from support.csvgen import make_csv, photo_urls
from support.origin import OriginServer
from support.server import core_config

pytestmark = pytest.mark.anyio


async def test_a_request_stores_its_images_in_the_bucket(
    tmp_path: Path, origin: OriginServer, bucket: str, s3_client: Any, s3_env: str
) -> None:
    config = core_config(tmp_path, storage_url=f"s3://{bucket}/catalogue")
    async with Engine(config) as engine:
        assert isinstance(engine.storage, ObjectStorage)
        urls = photo_urls(origin, 3)
        request_id = await engine.submit_csv(make_csv([urls[:2], urls[2:]]))
        async with engine.running():
            with anyio.fail_after(30):
                info = await engine.wait(request_id, interval=0.05)
        assert info.status is RequestStatus.COMPLETED
        images = [
            image for product in await engine.products(request_id) for image in product.images
        ]
        output_csv = b"".join([chunk async for chunk in await engine.output_csv(request_id)])

    listed = s3_client.list_objects_v2(Bucket=bucket)["Contents"]
    stored = {image.storage_key for image in images} | {image.thumbnail_key for image in images}
    assert sorted(obj["Key"] for obj in listed) == sorted(
        f"catalogue/{key}" for key in stored if key
    )
    for image in images:
        assert image.output_url is not None
        assert image.output_url.startswith(f"{s3_env}/{bucket}/catalogue/requests/{request_id}/")
        # Each presigned URL is signed when it is made (X-Amz-Date), so the CSV, written a moment
        # later, carries a different signature for the same object: compare the object's address.
        assert image.output_url.split("?", 1)[0].encode() + b"?" in output_csv
        response = httpx.get(image.output_url)
        assert response.status_code == 200
        assert response.headers["content-type"] == "image/jpeg"
        assert response.content[:2] == b"\xff\xd8"
        assert len(response.content) == image.output_bytes
