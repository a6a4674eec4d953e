"""imgcore-s3's ObjectStorage against a real S3 API (moto's server on 127.0.0.1)."""

from __future__ import annotations

import socket
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import imgcore_s3.plugin
import pytest
from imgcore._plugins import create_plugin_manager
from imgcore.config import Config, ConfigError
from imgcore.plugin import Storage, StorageError
from imgcore_s3 import CACHE_CONTROL, ObjectStorage, S3Settings
from support.origin import OriginHandler, OriginServer

pytestmark = pytest.mark.anyio

JPEG = b"\xff\xd8\xff\xe0 not really a jpeg \xff\xd9"


def storage_for(bucket: str, **settings: Any) -> ObjectStorage:
    return ObjectStorage.from_url(f"s3://{bucket}/media", S3Settings(**settings))


async def test_the_plugin_provides_the_storage_for_s3_urls(s3_env: str) -> None:
    pm = create_plugin_manager(environ={})
    storage = pm.hook.imgcore_storage(url="s3://some-bucket/prefix", config=Config())
    assert isinstance(storage, ObjectStorage)
    assert isinstance(storage, Storage)


@pytest.mark.parametrize("url", ["file:media", "memory://x", "http://127.0.0.1/media"])
async def test_the_plugin_leaves_other_schemes_alone(url: str) -> None:
    assert imgcore_s3.plugin.imgcore_storage(url=url, config=Config()) is None


async def test_put_stores_the_object_under_the_url_prefix(
    bucket: str, s3_client: Any, s3_env: str
) -> None:
    storage = storage_for(bucket)
    await storage.put("requests/r1/1.jpg", JPEG, content_type="image/jpeg")
    stored = s3_client.get_object(Bucket=bucket, Key="media/requests/r1/1.jpg")
    assert stored["Body"].read() == JPEG
    assert await storage.get("requests/r1/1.jpg") == JPEG


async def test_put_sets_content_type_and_immutable_cache_control(
    bucket: str, s3_client: Any, s3_env: str
) -> None:
    storage = storage_for(bucket)
    await storage.put("requests/r1/1.webp", b"RIFF....WEBP", content_type="image/webp")
    head = s3_client.head_object(Bucket=bucket, Key="media/requests/r1/1.webp")
    assert head["ContentType"] == "image/webp"
    assert head["CacheControl"] == CACHE_CONTROL == "public, max-age=31536000, immutable"


async def test_put_again_replaces_the_object(bucket: str, s3_env: str) -> None:
    storage = storage_for(bucket)
    await storage.put("a/1.jpg", b"first", content_type="image/jpeg")
    await storage.put("a/1.jpg", b"second", content_type="image/jpeg")
    assert await storage.get("a/1.jpg") == b"second"


async def test_get_of_a_missing_key_raises_key_error(bucket: str, s3_env: str) -> None:
    with pytest.raises(KeyError):
        await storage_for(bucket).get("requests/none.jpg")


async def test_delete_removes_and_tolerates_a_missing_key(bucket: str, s3_env: str) -> None:
    storage = storage_for(bucket)
    await storage.put("a/1.jpg", JPEG, content_type="image/jpeg")
    await storage.delete("a/1.jpg")
    await storage.delete("a/1.jpg")
    with pytest.raises(KeyError):
        await storage.get("a/1.jpg")


async def test_invalid_keys_are_refused(bucket: str, s3_env: str) -> None:
    storage = storage_for(bucket)
    for key in ("../escape.jpg", "/absolute.jpg", "a/../../b.jpg", ""):
        with pytest.raises(StorageError) as caught:
            await storage.put(key, JPEG, content_type="image/jpeg")
        assert not caught.value.transient


async def test_a_presigned_url_serves_the_bytes(bucket: str, s3_env: str) -> None:
    storage = storage_for(bucket, presign_seconds=600)
    await storage.put("requests/r1/1.jpg", JPEG, content_type="image/jpeg")
    url = storage.url_for("requests/r1/1.jpg")
    assert url.startswith(f"{s3_env}/{bucket}/media/requests/r1/1.jpg?")
    assert parse_qs(urlsplit(url).query)["X-Amz-Expires"] == ["600"]
    response = httpx.get(url)
    assert response.status_code == 200
    assert response.content == JPEG
    assert response.headers["content-type"] == "image/jpeg"


async def test_a_public_base_url_gives_plain_urls(bucket: str, s3_env: str) -> None:
    storage = storage_for(bucket, public_url="https://cdn.example/media/")
    assert (
        storage.url_for("requests/r1/1 a.jpg") == "https://cdn.example/media/requests/r1/1%20a.jpg"
    )


async def test_the_public_url_is_read_from_the_environment(
    s3_env: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("IMGCORE_S3_PUBLIC_URL", "https://img.shop.example")
    pm = create_plugin_manager(environ={})
    storage = pm.hook.imgcore_storage(url="s3://bkt/media", config=Config())
    assert storage.url_for("requests/x/1.jpg") == "https://img.shop.example/requests/x/1.jpg"


@pytest.mark.parametrize("value", ["0", "-5", "ten", "604801"])
async def test_a_bad_presign_lifetime_is_a_config_error(value: str) -> None:
    with pytest.raises(ConfigError, match="IMGCORE_S3_PRESIGN_SECONDS"):
        S3Settings.from_env({"IMGCORE_S3_PRESIGN_SECONDS": value})


async def test_a_url_obstore_cannot_use_is_a_config_error(s3_env: str) -> None:
    with pytest.raises(ConfigError, match="cannot use storage URL"):
        ObjectStorage.from_url("s3://")


async def test_a_missing_bucket_is_a_permanent_error(s3_env: str) -> None:
    storage = storage_for("no-such-bucket-here")
    with pytest.raises(StorageError) as caught:
        await storage.put("a/1.jpg", JPEG, content_type="image/jpeg")
    assert not caught.value.transient


async def test_an_unreachable_endpoint_is_a_transient_error(
    s3_env: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    with socket.socket() as closed:  # bound, never listening: connections are refused
        closed.bind(("127.0.0.1", 0))
        monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://127.0.0.1:{closed.getsockname()[1]}")
        storage = storage_for("bkt")
        with pytest.raises(StorageError) as caught:
            await storage.put("a/1.jpg", JPEG, content_type="image/jpeg")
    assert caught.value.transient


@pytest.mark.parametrize(("status", "transient"), [(503, True), (403, False), (400, False)])
async def test_server_errors_are_transient_and_client_errors_are_not(
    s3_env: str,
    monkeypatch: pytest.MonkeyPatch,
    origin: OriginServer,
    status: int,
    transient: bool,
) -> None:
    # The origin plays an S3 endpoint that answers every read of this key with ``status``.
    def answer(req: OriginHandler) -> None:
        req.reply(status, b"<Error><Code>Nope</Code></Error>", "application/xml")

    origin.route("/bkt/media/a/1.jpg", answer)
    monkeypatch.setenv("AWS_ENDPOINT_URL", origin.base_url)
    with pytest.raises(StorageError) as caught:
        await storage_for("bkt").get("a/1.jpg")
    assert caught.value.transient is transient
    assert f"{status}" in str(caught.value)
