"""GET /requests, POST /requests/{id}/retry and /cancel, DELETE /requests/{id}: each client
sees and acts on only its own requests."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import anyio
import pytest
from imgapi import Settings, create_app
from imgapi.clients import create_key, set_limit
from imgcore import Database
from litestar import Litestar
from litestar.testing import AsyncTestClient
from support.csvgen import make_csv, photo_urls
from support.origin import OriginServer
from support.server import WebhookReceiver, core_config

pytestmark = pytest.mark.anyio

Client = AsyncTestClient[Litestar]
KEY_A, KEY_B = "key-of-client-a", "key-of-client-b"
A = {"X-API-Key": KEY_A}
B = {"X-API-Key": KEY_B}


@pytest.fixture
async def api(tmp_path: Path) -> AsyncIterator[Client]:
    """The app with two clients (a key each), one download at a time."""
    settings = Settings(
        core=core_config(tmp_path, fetch_concurrency=1),
        log_format="none",
        api_keys=(KEY_A, KEY_B),
    )
    async with AsyncTestClient(create_app(settings), base_url="http://127.0.0.1:8000") as client:
        yield client


async def upload(
    client: Client, csv: bytes, headers: dict[str, str], webhook_url: str | None = None
) -> str:
    data = {"webhook_url": webhook_url} if webhook_url else None
    response = await client.post(
        "/upload", files={"file": ("p.csv", csv, "text/csv")}, data=data, headers=headers
    )
    assert response.status_code == 202, response.text
    request_id: str = response.json()["request_id"]
    return request_id


async def wait_ended(client: Client, request_id: str, headers: dict[str, str]) -> dict:  # type: ignore[type-arg]
    with anyio.fail_after(30):
        while True:
            body = (await client.get(f"/status/{request_id}", headers=headers)).json()
            if body["status"] in ("Completed", "Failed"):
                return body  # type: ignore[no-any-return]
            await anyio.sleep(0.05)


def slow_urls(origin: OriginServer, n: int, seconds: float = 1) -> list[str]:
    return [origin.url(f"/slow/{seconds}/img/s03_coffee.jpg?{i}") for i in range(n)]


# -- listing ------------------------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/requests", "/api/requests"])
async def test_a_client_lists_only_its_own_requests_newest_first(
    api: Client, origin: OriginServer, path: str
) -> None:
    a1 = await upload(api, make_csv([photo_urls(origin, 1)]), A)
    b1 = await upload(api, make_csv([photo_urls(origin, 1)]), B)
    a2 = await upload(api, make_csv([photo_urls(origin, 1)]), A)
    response = await api.get(path, headers=A)
    assert response.status_code == 200
    body = response.json()
    assert [r["request_id"] for r in body["requests"]] == [a2, a1]
    assert body["next"] is None and body["prev"] is None
    assert body["requests"][0]["status_url"] == f"http://127.0.0.1:8000/status/{a2}"
    listed_b = (await api.get(path, headers=B)).json()["requests"]
    assert [r["request_id"] for r in listed_b] == [b1]


async def test_the_list_pages_forwards_and_back_with_next_and_prev(
    api: Client, origin: OriginServer
) -> None:
    ids = [await upload(api, make_csv([photo_urls(origin, 1)]), A) for _ in range(5)]
    newest_first = ids[::-1]
    first = (await api.get("/requests?limit=2", headers=A)).json()
    assert [r["request_id"] for r in first["requests"]] == newest_first[:2]
    assert first["prev"] is None
    second = (await api.get(first["next"], headers=A)).json()
    assert [r["request_id"] for r in second["requests"]] == newest_first[2:4]
    third = (await api.get(second["next"], headers=A)).json()
    assert [r["request_id"] for r in third["requests"]] == newest_first[4:]
    assert third["next"] is None
    back = (await api.get(third["prev"], headers=A)).json()
    assert [r["request_id"] for r in back["requests"]] == newest_first[2:4]
    start = (await api.get(back["prev"], headers=A)).json()
    assert [r["request_id"] for r in start["requests"]] == newest_first[:2]
    assert start["prev"] is None


async def test_the_list_filters_by_status_and_creation_time(
    api: Client, origin: OriginServer
) -> None:
    done = await upload(api, make_csv([photo_urls(origin, 1)]), A)
    await wait_ended(api, done, A)
    running = await upload(api, make_csv([slow_urls(origin, 1, 3)]), A)
    completed = (await api.get("/requests?status=Completed", headers=A)).json()["requests"]
    assert [r["request_id"] for r in completed] == [done]
    created = (await api.get(f"/status/{running}", headers=A)).json()["created_at"]
    newer = (await api.get("/requests", params={"created_after": created}, headers=A)).json()[
        "requests"
    ]
    assert [r["request_id"] for r in newer] == [running]
    older = (await api.get("/requests", params={"created_before": created}, headers=A)).json()[
        "requests"
    ]
    assert [r["request_id"] for r in older] == [done]


@pytest.mark.parametrize(
    "query",
    [
        "status=Done",
        "limit=0",
        "limit=101",
        "after=not-a-cursor",
        "before=%%%",
        "created_after=yesterday",
        "after=x&before=y",
    ],
)
async def test_a_bad_list_parameter_is_a_400_problem(api: Client, query: str) -> None:
    response = await api.get(f"/requests?{query}", headers=A)
    assert response.status_code == 400
    assert response.headers["content-type"] == "application/problem+json"


async def test_the_list_needs_a_key(api: Client) -> None:
    response = await api.get("/requests")
    assert response.status_code == 401
    assert response.headers["content-type"] == "application/problem+json"


# -- another client's request -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "template"),
    [
        ("GET", "/status/{}"),
        ("GET", "/api/status/{}"),
        ("GET", "/status/{}/output.csv"),
        ("POST", "/requests/{}/retry"),
        ("POST", "/requests/{}/cancel"),
        ("DELETE", "/requests/{}"),
        ("DELETE", "/api/requests/{}"),
    ],
)
async def test_another_clients_request_is_404_on_every_route(
    api: Client, origin: OriginServer, method: str, template: str
) -> None:
    request_id = await upload(api, make_csv([slow_urls(origin, 2)]), A)
    response = await api.request(method, template.format(request_id), headers=B)
    assert response.status_code == 404
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["reason"] == "not_found"
    # …and nothing happened to it.
    body = await wait_ended(api, request_id, A)
    assert (body["status"], body["done"]) == ("Completed", 2)


@pytest.mark.parametrize(
    ("method", "template"),
    [("POST", "/requests/{}/retry"), ("POST", "/requests/{}/cancel"), ("DELETE", "/requests/{}")],
)
async def test_an_unknown_request_is_404(api: Client, method: str, template: str) -> None:
    for request_id in (uuid.uuid4(), "not-a-uuid"):
        response = await api.request(method, template.format(request_id), headers=A)
        assert response.status_code == 404
        assert response.headers["content-type"] == "application/problem+json"


@pytest.mark.parametrize(
    ("method", "template"),
    [("POST", "/requests/{}/retry"), ("POST", "/requests/{}/cancel"), ("DELETE", "/requests/{}")],
)
async def test_managing_a_request_needs_a_key(api: Client, method: str, template: str) -> None:
    response = await api.request(method, template.format(uuid.uuid4()))
    assert response.status_code == 401


# -- retry --------------------------------------------------------------------------------------


async def test_retry_queues_the_failed_images_again(api: Client, origin: OriginServer) -> None:
    flaky = origin.url("/flaky/api-retry/1/img/s03_coffee.jpg?status=404")
    request_id = await upload(api, make_csv([[flaky]]), A)
    assert (await wait_ended(api, request_id, A))["status"] == "Failed"
    response = await api.post(f"/api/requests/{request_id}/retry", headers=A)
    assert response.status_code == 202
    assert response.json()["retried"] == 1
    body = await wait_ended(api, request_id, A)
    assert (body["status"], body["done"], body["failed"]) == ("Completed", 1, 0)


async def test_retry_while_running_is_409(api: Client, origin: OriginServer) -> None:
    request_id = await upload(api, make_csv([slow_urls(origin, 1, 2)]), A)
    response = await api.post(f"/requests/{request_id}/retry", headers=A)
    assert response.status_code == 409
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["reason"] == "still_running"


# -- cancel -------------------------------------------------------------------------------------


async def test_cancel_ends_the_request_failed_cancelled_with_one_webhook(
    api: Client, origin: OriginServer, webhooks: WebhookReceiver
) -> None:
    urls = slow_urls(origin, 10, 0.5)
    request_id = await upload(api, make_csv([urls]), A, webhook_url=webhooks.url)
    with anyio.fail_after(10):
        while not any(origin.hits(u.removeprefix(origin.base_url)) for u in urls):
            await anyio.sleep(0.02)
    response = await api.post(f"/requests/{request_id}/cancel", headers=A)
    assert response.status_code == 202
    assert response.json()["cancelled"] >= 1
    body = await wait_ended(api, request_id, A)
    assert (body["status"], body["error"]) == ("Failed", "cancelled")
    assert body["done"] + body["failed"] == 10
    hits_when_settled = origin.total_hits()
    await anyio.sleep(1.5)
    # Nothing is downloaded once the request has ended, and exactly one webhook arrives.
    assert origin.total_hits() == hits_when_settled
    final = (await api.get(f"/status/{request_id}", headers=A)).json()
    assert (final["done"], final["failed"]) == (body["done"], body["failed"])
    (delivery,) = webhooks.wait(1)
    assert delivery[1]["status"] == "Failed"
    await anyio.sleep(0.5)
    assert len(webhooks.deliveries) == 1


async def test_cancel_of_an_ended_request_is_409(api: Client, origin: OriginServer) -> None:
    request_id = await upload(api, make_csv([photo_urls(origin, 1)]), A)
    await wait_ended(api, request_id, A)
    response = await api.post(f"/requests/{request_id}/cancel", headers=A)
    assert response.status_code == 409
    assert response.json()["reason"] == "already_ended"


async def test_a_cancelled_request_can_be_retried(api: Client, origin: OriginServer) -> None:
    request_id = await upload(api, make_csv([slow_urls(origin, 12, 0.2)]), A)
    assert (await api.post(f"/requests/{request_id}/cancel", headers=A)).status_code == 202
    assert (await wait_ended(api, request_id, A))["error"] == "cancelled"
    response = await api.post(f"/requests/{request_id}/retry", headers=A)
    assert response.status_code == 202
    assert response.json()["retried"] >= 1
    body = await wait_ended(api, request_id, A)
    assert (body["status"], body["done"], body["error"]) == ("Completed", 12, None)


# -- delete -------------------------------------------------------------------------------------


async def test_delete_removes_the_request_and_its_files(
    api: Client, origin: OriginServer, tmp_path: Path
) -> None:
    request_id = await upload(api, make_csv([photo_urls(origin, 2)]), A)
    await wait_ended(api, request_id, A)
    assert list((tmp_path / "media").rglob("*.jpg"))
    response = await api.delete(f"/requests/{request_id}", headers=A)
    assert response.status_code == 204
    assert response.content == b""
    assert (await api.get(f"/status/{request_id}", headers=A)).status_code == 404
    assert (await api.delete(f"/requests/{request_id}", headers=A)).status_code == 404
    assert not list((tmp_path / "media").rglob("*.jpg"))
    assert (await api.get("/requests", headers=A)).json()["requests"] == []


async def test_delete_while_running_is_409(api: Client, origin: OriginServer) -> None:
    request_id = await upload(api, make_csv([slow_urls(origin, 1, 2)]), A)
    response = await api.delete(f"/requests/{request_id}", headers=A)
    assert response.status_code == 409
    assert response.json()["reason"] == "still_running"
    assert (await api.get(f"/status/{request_id}", headers=A)).status_code == 200


async def test_on_an_open_api_every_request_is_listed(
    client: Client, origin: OriginServer, settings: Settings
) -> None:
    assert not settings.api_keys
    ids = [await upload(client, make_csv([photo_urls(origin, 1)]), {}) for _ in range(2)]
    listed = (await client.get("/requests")).json()["requests"]
    assert [r["request_id"] for r in listed] == ids[::-1]


# -- limits -------------------------------------------------------------------------------------


@pytest.fixture
async def limited(tmp_path: Path) -> AsyncIterator[Client]:
    """Two clients, each allowed 3 unfinished images."""
    settings = Settings(
        core=core_config(tmp_path, fetch_concurrency=1),
        log_format="none",
        api_keys=(KEY_A, KEY_B),
        max_unfinished_images=3,
    )
    async with AsyncTestClient(create_app(settings), base_url="http://127.0.0.1:8000") as client:
        yield client


async def post_csv(client: Client, csv: bytes, headers: dict[str, str]) -> Any:
    return await client.post("/upload", files={"file": ("p.csv", csv, "text/csv")}, headers=headers)


async def test_an_upload_past_the_clients_limit_is_429_and_stores_nothing(
    limited: Client, origin: OriginServer
) -> None:
    await upload(limited, make_csv([slow_urls(origin, 2, 3)]), A)
    response = await post_csv(limited, make_csv([slow_urls(origin, 2, 3)]), A)
    assert response.status_code == 429
    assert response.headers["content-type"] == "application/problem+json"
    assert response.headers["retry-after"] == "30"
    assert response.json()["reason"] == "too_many_unfinished_images"
    assert len((await limited.get("/requests", headers=A)).json()["requests"]) == 1
    # Another client has a limit of its own.
    assert (await post_csv(limited, make_csv([slow_urls(origin, 3, 3)]), B)).status_code == 202


async def test_an_upload_at_the_limit_is_refused_before_its_body_is_read(
    limited: Client, origin: OriginServer
) -> None:
    await upload(limited, make_csv([slow_urls(origin, 3, 3)]), A)
    response = await post_csv(limited, make_csv([photo_urls(origin, 1)]), A)
    assert response.status_code == 429
    assert response.headers["connection"] == "close"


async def test_a_request_over_the_limit_alone_is_429(limited: Client, origin: OriginServer) -> None:
    response = await post_csv(limited, make_csv([photo_urls(origin, 4)]), A)
    assert response.status_code == 429


async def test_the_limit_frees_up_as_images_finish(limited: Client, origin: OriginServer) -> None:
    first = await upload(limited, make_csv([photo_urls(origin, 3)]), A)
    await wait_ended(limited, first, A)
    assert (await post_csv(limited, make_csv([photo_urls(origin, 3)]), A)).status_code == 202


async def test_a_client_of_its_own_limit_overrides_the_setting(
    limited: Client, origin: OriginServer, tmp_path: Path
) -> None:
    # A Database of its own: the app's runs on the test client's event loop, not this one.
    database = Database(f"sqlite+aiosqlite:///{tmp_path}/imgcore.sqlite3")
    try:
        key = await create_key(database, "big-shop")
        await set_limit(database, "big-shop", 10)
    finally:
        await database.dispose()
    headers = {"X-API-Key": key}
    assert (
        await post_csv(limited, make_csv([slow_urls(origin, 6, 3)]), headers)
    ).status_code == 202
    assert (
        await post_csv(limited, make_csv([slow_urls(origin, 5, 3)]), headers)
    ).status_code == 429
