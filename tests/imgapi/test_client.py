"""imgapi.client against the real server: typed answers, problem documents as typed errors,
sync and async."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import anyio
import pytest
from imgapi.client import (
    AsyncClient,
    Client,
    Conflict,
    InvalidRequest,
    NotFound,
    Progress,
    TooManyImages,
    Unauthorized,
)
from support.csvgen import make_csv, photo_urls
from support.origin import OriginServer
from support.server import ApiServer, server_env

KEY_A, KEY_B = "client-key-a", "client-key-b"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ApiServer]:
    root = tmp_path_factory.mktemp("client")
    env = server_env(root, IMGAPI_API_KEYS=f"{KEY_A},{KEY_B}", IMGAPI_MAX_UNFINISHED_IMAGES="20")
    with ApiServer(env=env, cwd=root, startup_timeout=120) as running:
        yield running


@pytest.fixture
def api(server: ApiServer) -> Iterator[Client]:
    with Client(server.base_url, api_key=KEY_A) as client:
        yield client


def test_upload_a_file_wait_and_stream_the_output(
    api: Client, origin: OriginServer, tmp_path: Path
) -> None:
    path = tmp_path / "products.csv"
    path.write_bytes(make_csv([photo_urls(origin, 2, "client")]))
    accepted = api.upload(path)
    assert accepted.status == "Pending"
    final = api.wait(accepted.request_id, timeout=60)
    assert (final.status, final.done, final.ended) == ("Completed", 2, True)
    output = b"".join(api.output_csv(accepted.request_id)).decode()
    assert output.startswith("S. No.,Product Name,Input Image Urls,Output Image Urls")
    assert "/media/" in output


def test_presets_are_listed_and_an_upload_chooses_one(api: Client, origin: OriginServer) -> None:
    presets = {preset.name: preset for preset in api.presets()}
    assert [v.name for v in presets["catalog"].variants] == ["large", "medium", "thumb"]
    accepted = api.upload_rows([("Mug", photo_urls(origin, 1, "preset"))], preset="catalog")
    final = api.wait(accepted.request_id, timeout=60)
    assert (final.status, final.preset) == ("Completed", "catalog")
    listed = {r.request_id: r for r in api.requests(limit=5)}
    assert listed[accepted.request_id].preset == "catalog"


def test_an_unknown_preset_is_an_invalid_request(api: Client, origin: OriginServer) -> None:
    with pytest.raises(InvalidRequest):
        api.upload_rows([("Mug", photo_urls(origin, 1, "unknown"))], preset="huge")


def test_upload_rows_list_retry_and_delete(api: Client, origin: OriginServer) -> None:
    accepted = api.upload_rows([("Mug", photo_urls(origin, 1, "rows"))])
    api.wait(accepted.request_id, timeout=60)
    assert accepted.request_id in [r.request_id for r in api.requests(limit=1)]
    assert api.retry(accepted.request_id).retried == 0
    api.delete(accepted.request_id)
    with pytest.raises(NotFound):
        api.status(accepted.request_id)


def test_cancel_and_the_conflicts_are_typed(api: Client, origin: OriginServer) -> None:
    urls = [origin.url(f"/slow/1/img/s03_coffee.jpg?c{i}") for i in range(8)]
    accepted = api.upload_rows([("Slow", urls)])
    with pytest.raises(Conflict) as conflict:
        api.delete(accepted.request_id)
    assert conflict.value.reason == "still_running"
    api.cancel(accepted.request_id)
    final = api.wait(accepted.request_id, timeout=60)
    assert (final.status, final.error) == ("Failed", "cancelled")
    with pytest.raises(Conflict):
        api.cancel(accepted.request_id)


def test_problem_documents_raise_typed_errors(server: ApiServer, api: Client) -> None:
    with pytest.raises(InvalidRequest) as invalid:
        api.upload(b"not,a,csv\n")
    assert invalid.value.status == 400 and invalid.value.errors
    with pytest.raises(NotFound):
        api.status(uuid.uuid4())
    with Client(server.base_url, api_key="wrong") as stranger, pytest.raises(Unauthorized):
        list(stranger.requests())


def test_another_clients_request_is_not_found(
    server: ApiServer, api: Client, origin: OriginServer
) -> None:
    accepted = api.upload_rows([("Mine", photo_urls(origin, 1, "mine"))])
    with Client(server.base_url, api_key=KEY_B) as other, pytest.raises(NotFound):
        other.status(accepted.request_id)


def test_too_many_images_carries_retry_after(api: Client, origin: OriginServer) -> None:
    with pytest.raises(TooManyImages) as refused:
        api.upload_rows([("Many", photo_urls(origin, 21, "many"))])
    assert refused.value.retry_after == 30


def test_the_async_client_follows_progress_to_the_end(
    server: ApiServer, origin: OriginServer
) -> None:
    async def run() -> list[Progress]:
        async with AsyncClient(server.base_url, api_key=KEY_A) as api:
            accepted = await api.upload_rows([("Async", photo_urls(origin, 2, "async"))])
            seen = [event async for event in api.progress(accepted.request_id)]
            final = await api.wait(accepted.request_id)
            assert final.status == "Completed"
            chunks = [chunk async for chunk in api.output_csv(accepted.request_id)]
            assert b"Output Image Urls" in b"".join(chunks)
            listed = [r.request_id async for r in api.requests(status="Completed")]
            assert accepted.request_id in listed
            await api.delete(accepted.request_id)
            return seen

    seen = anyio.run(run)
    assert seen[-1].status == "Completed" and seen[-1].done == 2
    assert [e.done for e in seen] == sorted(e.done for e in seen)
