"""The admin pages and API clients: every request's client shown and filtered on, cancel
beside retry and delete, and an upload form."""

from __future__ import annotations

import re
from pathlib import Path

import anyio
import pytest
from imgapi import Settings
from imgapi.admin.accounts import save_admin
from imgcore.engine import Engine
from litestar import Litestar
from litestar.testing import AsyncTestClient
from support.csvgen import make_csv, photo_urls
from support.origin import OriginServer
from support.server import core_config

pytestmark = pytest.mark.anyio

PASSWORD = "correct horse battery"
Client = AsyncTestClient[Litestar]


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(
        core=core_config(tmp_path, compress_pool="thread", fetch_concurrency=1),
        log_format="none",
        max_upload_bytes=1_000_000,
    )


def engine_of(client: Client) -> Engine:
    engine = client.app.state.runtime.engine
    assert engine is not None
    return engine


def csrf_of(html: str) -> str:
    match = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert match, "no CSRF token in the page"
    return match.group(1)


@pytest.fixture
async def admin(client: Client) -> Client:
    await save_admin(engine_of(client).database, "admin", PASSWORD)
    token = csrf_of((await client.get("/admin/login")).text)
    response = await client.post(
        "/admin/login",
        data={"username": "admin", "password": PASSWORD, "csrf_token": token, "next": "/admin"},
        follow_redirects=False,
    )
    assert response.status_code == 303, response.text
    return client


async def test_the_list_shows_each_requests_client_and_filters_by_it(
    admin: Client, origin: OriginServer
) -> None:
    engine = engine_of(admin)
    mine = await engine.submit_csv(make_csv([photo_urls(origin, 1)]), client="shop-1")
    other = await engine.submit_csv(make_csv([photo_urls(origin, 1)]), client="shop-2")
    page = (await admin.get("/admin")).text
    assert "shop-1" in page and "shop-2" in page
    filtered = (await admin.get("/admin?client=shop-1")).text
    assert str(mine) in filtered and str(other) not in filtered
    detail = (await admin.get(f"/admin/requests/{mine}")).text
    assert "shop-1" in detail


async def test_cancel_beside_retry_and_delete_cancels_a_running_request(
    admin: Client, origin: OriginServer
) -> None:
    engine = engine_of(admin)
    urls = [origin.url(f"/slow/1/img/s03_coffee.jpg?adm{i}") for i in range(6)]
    request_id = await engine.submit_csv(make_csv([urls]))
    detail = (await admin.get(f"/admin/requests/{request_id}")).text
    assert f'action="/admin/requests/{request_id}/cancel"' in detail
    response = await admin.post(
        f"/admin/requests/{request_id}/cancel",
        data={"csrf_token": csrf_of(detail)},
        follow_redirects=False,
    )
    assert response.status_code == 303
    with anyio.fail_after(30):
        info = await engine.wait(request_id, interval=0.05)
    assert (info.status.value, info.error) == ("Failed", "cancelled")
    page = (await admin.get(f"/admin/requests/{request_id}")).text
    assert "Cancelled:" in page and "/cancel" not in page


async def test_cancel_needs_the_csrf_token(admin: Client, origin: OriginServer) -> None:
    engine = engine_of(admin)
    request_id = await engine.submit_csv(
        make_csv([[origin.url("/slow/2/img/s03_coffee.jpg?csrf")]])
    )
    response = await admin.post(f"/admin/requests/{request_id}/cancel", data={"csrf_token": "x"})
    assert response.status_code == 403
    page = (await admin.get(f"/admin/requests/{request_id}")).text
    assert "cancelled" not in page and f"/requests/{request_id}/cancel" in page


async def test_deleting_a_running_request_is_refused_with_a_message(
    admin: Client, origin: OriginServer
) -> None:
    engine = engine_of(admin)
    request_id = await engine.submit_csv(make_csv([[origin.url("/slow/2/img/s03_coffee.jpg?d")]]))
    page = (await admin.get(f"/admin/requests/{request_id}/delete")).text
    response = await admin.post(
        f"/admin/requests/{request_id}/delete",
        data={"csrf_token": csrf_of(page)},
        follow_redirects=True,
    )
    assert "Not deleted" in response.text
    assert await engine.status(request_id)


async def test_the_upload_form_stores_a_request_of_the_admin(
    admin: Client, origin: OriginServer
) -> None:
    form = (await admin.get("/admin/upload")).text
    assert 'enctype="multipart/form-data"' in form and 'name="webhook_url"' in form
    response = await admin.post(
        "/admin/upload",
        data={"csrf_token": csrf_of(form), "webhook_url": ""},
        files={"file": ("shop.csv", make_csv([photo_urls(origin, 1)]), "text/csv")},
        follow_redirects=False,
    )
    assert response.status_code == 303
    request_id = response.headers["location"].rsplit("/", 1)[1]
    info = await engine_of(admin).status(request_id)
    assert (info.filename, info.client) == ("shop.csv", "admin:admin")


async def test_the_upload_form_offers_every_preset_and_records_the_chosen_one(
    admin: Client, origin: OriginServer
) -> None:
    form = (await admin.get("/admin/upload")).text
    assert re.findall(r'<option value="([a-z_]+)"', form) == list(engine_of(admin).presets)
    response = await admin.post(
        "/admin/upload",
        data={"csrf_token": csrf_of(form), "preset": "catalog"},
        files={"file": ("shop.csv", make_csv([photo_urls(origin, 1)]), "text/csv")},
        follow_redirects=False,
    )
    assert response.status_code == 303
    request_id = response.headers["location"].rsplit("/", 1)[1]
    assert (await engine_of(admin).status(request_id)).preset == "catalog"


async def test_an_unknown_preset_in_the_upload_form_is_shown_and_stores_nothing(
    admin: Client, origin: OriginServer
) -> None:
    form = (await admin.get("/admin/upload")).text
    response = await admin.post(
        "/admin/upload",
        data={"csrf_token": csrf_of(form), "preset": "huge"},
        files={"file": ("shop.csv", make_csv([photo_urls(origin, 1)]), "text/csv")},
    )
    assert response.status_code == 400
    assert "huge" in response.text
    assert (await engine_of(admin).list_requests())[1] == 0


async def test_an_invalid_upload_shows_its_problems_and_stores_nothing(admin: Client) -> None:
    form = (await admin.get("/admin/upload")).text
    response = await admin.post(
        "/admin/upload",
        data={"csrf_token": csrf_of(form)},
        files={"file": ("bad.csv", b"S. No.,Name\n1,x\n", "text/csv")},
    )
    assert response.status_code == 400
    assert "invalid CSV" in response.text or "column" in response.text
    assert (await engine_of(admin).list_requests())[1] == 0


async def test_an_upload_without_the_csrf_token_is_refused(
    admin: Client, origin: OriginServer
) -> None:
    response = await admin.post(
        "/admin/upload",
        data={"csrf_token": "forged"},
        files={"file": ("shop.csv", make_csv([photo_urls(origin, 1)]), "text/csv")},
    )
    assert response.status_code == 403
    assert (await engine_of(admin).list_requests())[1] == 0


def test_an_admins_client_id_fits_64_characters_and_stays_unique() -> None:
    from imgapi.admin.views import admin_client

    assert admin_client("ana") == "admin:ana"
    long_a, long_b = admin_client("a" * 150), admin_client("a" * 149 + "b")
    assert len(long_a) == len(long_b) == 64
    assert long_a != long_b
