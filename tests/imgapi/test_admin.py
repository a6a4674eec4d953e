"""The admin pages under the test client: login, lockout, CSRF, list, detail, actions."""

from __future__ import annotations

import io
import re
import sqlite3
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path

import anyio
import httpx
import pytest
import sqlalchemy as sa
from imgapi import Settings, create_app
from imgapi.admin.accounts import MAX_FAILURES, authenticate, save_admin
from imgapi.admin.security import COOKIE_NAME, safe_next
from imgapi.tables import admin_sessions, admin_users
from imgcore.engine import Engine
from litestar import Litestar
from litestar.testing import AsyncTestClient
from PIL import Image
from support.csvgen import make_csv, photo_urls
from support.origin import OriginServer
from support.server import core_config
from support.stored import stored_keys

pytestmark = pytest.mark.anyio

PASSWORD = "correct horse battery"
Client = AsyncTestClient[Litestar]


def engine_of(client: Client) -> Engine:
    engine = client.app.state.runtime.engine
    assert engine is not None
    return engine


def csrf_of(html: str) -> str:
    match = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert match, "no CSRF token in the page"
    return match.group(1)


async def log_in(
    client: Client, username: str = "admin", password: str = PASSWORD, next: str = "/admin"
) -> httpx.Response:
    token = csrf_of((await client.get("/admin/login")).text)
    return await client.post(
        "/admin/login",
        data={"csrf_token": token, "username": username, "password": password, "next": next},
        follow_redirects=False,
    )


async def wait_finished(engine: Engine, request_id: object) -> None:
    with anyio.fail_after(30):
        await engine.wait(str(request_id), interval=0.05)


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    """As conftest's, compressing in threads: no worker processes to start for a few images."""
    return Settings(
        core=core_config(tmp_path, compress_pool="thread"),
        log_format="none",
        max_upload_bytes=1_000_000,
    )


@pytest.fixture
async def admin(client: Client) -> Client:
    """The client, logged in as 'admin'."""
    await save_admin(engine_of(client).database, "admin", PASSWORD)
    response = await log_in(client)
    assert response.status_code == 303, response.text
    return client


async def finished_request(client: Client, rows: list[list[str]], filename: str = "a.csv") -> str:
    engine = engine_of(client)
    request_id = await engine.submit_csv(make_csv(rows), filename=filename)
    await wait_finished(engine, request_id)
    return str(request_id)


# -- login ------------------------------------------------------------------------------------


async def test_an_anonymous_visit_is_redirected_to_the_login_page(client: Client) -> None:
    response = await client.get("/admin/requests/x?page=2", follow_redirects=False)
    assert response.status_code == 303
    assert response.headers["location"] == "/admin/login?next=%2Fadmin%2Frequests%2Fx%3Fpage%3D2"


async def test_an_anonymous_thumbnail_or_csv_is_not_served(client: Client) -> None:
    rid = "00000000-0000-0000-0000-000000000000"
    for path in (f"/admin/requests/{rid}/thumbs/1", f"/admin/requests/{rid}/output.csv"):
        response = await client.get(path, follow_redirects=False)
        assert response.status_code == 303
        assert response.headers["location"].startswith("/admin/login")


async def test_the_right_password_logs_in_and_goes_to_next(client: Client) -> None:
    await save_admin(engine_of(client).database, "admin", PASSWORD)
    response = await log_in(client, next="/admin?status=Failed")
    assert (response.status_code, response.headers["location"]) == (303, "/admin?status=Failed")
    page = await client.get("/admin")
    assert page.status_code == 200
    assert "Log out" in page.text


async def test_the_session_cookie_is_httponly_samesite_lax_and_scoped_to_admin(
    client: Client,
) -> None:
    await save_admin(engine_of(client).database, "admin", PASSWORD)
    cookie = (await log_in(client)).headers["set-cookie"]
    assert cookie.startswith(f"{COOKIE_NAME}=")
    assert "HttpOnly" in cookie and "SameSite=lax" in cookie and "Path=/admin" in cookie
    assert "Secure" not in cookie  # the public URL is http here


async def test_the_session_cookie_is_secure_when_the_public_url_is_https(tmp_path: Path) -> None:
    settings = Settings(
        core=core_config(tmp_path), log_format="none", public_url="https://admin.example"
    )
    async with AsyncTestClient(create_app(settings), base_url="https://admin.example") as client:
        page = await client.get("/admin/login")
    assert "Secure" in page.headers["set-cookie"]


async def test_a_wrong_password_shows_the_form_again(client: Client) -> None:
    await save_admin(engine_of(client).database, "admin", PASSWORD)
    response = await log_in(client, password="wrong password")
    assert response.status_code == 200
    assert "Wrong username or password" in response.text
    assert (await client.get("/admin", follow_redirects=False)).status_code == 303


async def test_an_unknown_user_gets_the_same_answer(client: Client) -> None:
    response = await log_in(client, username="nobody", password="whatever1")
    assert response.status_code == 200
    assert "Wrong username or password" in response.text


async def test_repeated_wrong_passwords_lock_the_user_out(client: Client) -> None:
    await save_admin(engine_of(client).database, "admin", PASSWORD)
    for _ in range(MAX_FAILURES):
        await log_in(client, password="wrong password")
    response = await log_in(client)  # the right one, too late
    assert response.status_code == 200
    assert "too many failed attempts" in response.text
    locked_until = await engine_of(client).database.read(
        lambda conn: conn.execute(sa.select(admin_users.c.locked_until)).scalar_one()
    )
    assert locked_until is not None and locked_until > datetime.now(UTC)


async def test_a_new_password_lifts_the_lockout(client: Client) -> None:
    db = engine_of(client).database
    await save_admin(db, "admin", PASSWORD)
    for _ in range(MAX_FAILURES):
        await log_in(client, password="wrong password")
    await save_admin(db, "admin", "another good password")
    assert (await log_in(client, password="another good password")).status_code == 303


async def test_a_login_without_the_csrf_token_is_refused(client: Client) -> None:
    await save_admin(engine_of(client).database, "admin", PASSWORD)
    await client.get("/admin/login")
    response = await client.post(
        "/admin/login", data={"username": "admin", "password": PASSWORD}, follow_redirects=False
    )
    assert response.status_code == 403


async def test_a_password_change_ends_existing_sessions(admin: Client) -> None:
    await save_admin(engine_of(admin).database, "admin", "a changed password")
    assert (await admin.get("/admin", follow_redirects=False)).status_code == 303


async def test_logging_out_ends_the_session(admin: Client) -> None:
    token = csrf_of((await admin.get("/admin")).text)
    response = await admin.post("/admin/logout", data={"csrf_token": token})
    assert response.status_code == 200 and "Log in" in response.text
    assert (await admin.get("/admin", follow_redirects=False)).status_code == 303


async def test_a_burst_of_logins_never_hashes_more_passwords_at_once_than_the_bound(
    tmp_path: Path,
) -> None:
    settings = Settings(
        core=core_config(tmp_path, compress_pool="thread"),
        log_format="none",
        admin_hash_concurrency=2,
    )
    async with AsyncTestClient(create_app(settings), base_url="http://127.0.0.1:8000") as client:
        database = engine_of(client).database
        limits = client.app.state.login_limits  # the login route's
        await save_admin(database, "admin", PASSWORD)
        async with anyio.create_task_group() as tg:  # known and unknown users alike
            for n in range(12):
                username = "admin" if n % 2 else f"nobody{n}"
                tg.start_soon(partial(authenticate, limits=limits), database, username, "wrong1")
    # Counted inside the hashing threads: the bound was reached and never passed.
    assert limits.peak_hashing == 2, f"{limits.peak_hashing} hashes at once"
    assert limits.hashing == 0


async def test_an_expired_session_is_refused_and_cleaned_up_at_the_next_login(
    admin: Client,
) -> None:
    database = engine_of(admin).database
    await database.write(
        lambda conn: conn.execute(
            admin_sessions.update().values(expires_at=datetime.now(UTC) - timedelta(seconds=1))
        )
    )
    assert (await admin.get("/admin", follow_redirects=False)).status_code == 303
    assert (await log_in(admin)).status_code == 303  # a new session; the expired one deleted
    expires = await database.read(
        lambda conn: conn.execute(sa.select(admin_sessions.c.expires_at)).scalars().all()
    )
    assert len(expires) == 1 and expires[0] > datetime.now(UTC)


async def test_the_cookie_holds_a_token_and_the_database_only_its_hash(admin: Client) -> None:
    rows = await engine_of(admin).database.read(
        lambda conn: conn.execute(sa.select(admin_sessions.c.token_hash)).scalars().all()
    )
    assert len(rows) == 1 and len(rows[0]) == 64
    assert rows[0] not in admin.cookies[COOKIE_NAME]


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("/admin/requests/1?page=2", "/admin/requests/1?page=2"),
        ("/admin", "/admin"),
        ("https://evil.example/admin", "/admin"),
        ("//evil.example/admin", "/admin"),
        ("/admin\\@evil.example", "/admin"),
        ("/adminx", "/admin"),
        ("/admin/../status/1", "/admin"),
        ("/admin/\r\nSet-Cookie: x", "/admin"),
        ("/media/x.jpg", "/admin"),
        (None, "/admin"),
    ],
)
def test_next_is_only_ever_a_path_of_the_admin_pages(value: str | None, expected: str) -> None:
    assert safe_next(value) == expected


# -- pages ------------------------------------------------------------------------------------


async def test_the_list_shows_requests_newest_first_with_progress(
    admin: Client, origin: OriginServer
) -> None:
    first = await finished_request(admin, [photo_urls(origin, 1, "a")], filename="first.csv")
    second = await finished_request(admin, [photo_urls(origin, 2, "b")], filename="second.csv")
    page = (await admin.get("/admin")).text
    assert page.index(second) < page.index(first)
    assert '<progress max="2" value="2">' in page
    assert "2 done · 0 failed · 0 pending" in page


async def test_the_list_filters_by_status(admin: Client, origin: OriginServer) -> None:
    done = await finished_request(admin, [photo_urls(origin, 1, "ok")])
    failed = await finished_request(admin, [[origin.url("/status/404")]])
    page = (await admin.get("/admin", params={"status": "Failed"})).text
    assert failed in page and done not in page


async def test_the_list_searches_product_names_and_request_ids(
    admin: Client, origin: OriginServer
) -> None:
    engine = engine_of(admin)
    csv = (
        b'S. No.,Product Name,Input Image Urls\r\n1,Blue Teapot,"'
        + origin.url("/status/404").encode()
        + b'"\r\n'
    )
    teapot = str(await engine.submit_csv(csv))
    other = await finished_request(admin, [[origin.url("/status/404")]])
    by_name = (await admin.get("/admin", params={"q": "teapot"})).text
    assert teapot in by_name and other not in by_name
    by_id = (await admin.get("/admin", params={"q": other})).text
    assert other in by_id and teapot not in by_id


async def test_the_list_is_paginated(admin: Client, origin: OriginServer) -> None:
    engine = engine_of(admin)
    ids = [str(await engine.submit_csv(make_csv([[origin.url("/status/404")]]))) for _ in range(26)]
    first, second = (await admin.get("/admin")).text, (await admin.get("/admin?page=2")).text
    assert ids[0] not in first and ids[0] in second
    assert ids[-1] in first and 'rel="next"' in first and 'rel="prev"' in second


async def test_product_names_are_escaped(admin: Client, origin: OriginServer) -> None:
    csv = (
        b'S. No.,Product Name,Input Image Urls\r\n1,<script>alert(1)</script>,"'
        + origin.url("/status/404").encode()
        + b'"\r\n'
    )
    request_id = await engine_of(admin).submit_csv(csv)
    page = (await admin.get(f"/admin/requests/{request_id}")).text
    assert "<script>alert(1)" not in page and "&lt;script&gt;alert(1)" in page


async def test_the_detail_shows_each_image_with_a_thumbnail_made_when_first_shown(
    admin: Client, origin: OriginServer
) -> None:
    engine = engine_of(admin)
    request_id = await finished_request(admin, [photo_urls(origin, 2, "t")])
    page = (await admin.get(f"/admin/requests/{request_id}")).text
    thumbs = re.findall(rf'<img src="(/admin/requests/{request_id}/thumbs/\d+)"', page)
    assert len(thumbs) == 2
    assert page.count('href="http://127.0.0.1:8000/media/requests/') == 2
    assert len(stored_keys(engine.storage)) == 2  # the outputs only
    response = await admin.get(thumbs[0])
    assert response.headers["content-type"] == "image/jpeg"
    image = Image.open(io.BytesIO(response.content))
    assert image.format == "JPEG" and max(image.size) == 256  # the photos are 640x480
    # Stored: the output and this thumbnail, which is served again as it was.
    assert len(stored_keys(engine.storage)) == 3
    assert (await admin.get(thumbs[0])).content == response.content


async def test_the_detail_shows_every_variant_with_its_size_and_bytes(
    admin: Client, origin: OriginServer
) -> None:
    engine = engine_of(admin)
    request_id = await engine.submit_csv(make_csv([photo_urls(origin, 1, "v")]), preset="catalog")
    await wait_finished(engine, request_id)
    (product,) = await engine.products(request_id)
    (image,) = product.images
    page = (await admin.get(f"/admin/requests/{request_id}")).text
    assert "<dd>catalog</dd>" in page
    for variant in image.variants:
        assert (
            f'<a href="{variant.url}" rel="noreferrer noopener" target="_blank">{variant.name}</a>'
            in page
        )
        assert f"{variant.format} {variant.width}\N{MULTIPLICATION SIGN}{variant.height}" in page
    assert "JPEG 160\N{MULTIPLICATION SIGN}160" in page  # the thumb, padded to its box


async def test_the_detail_says_which_images_reused_an_earlier_imports_outputs(
    admin: Client, origin: OriginServer
) -> None:
    urls = photo_urls(origin, 2, "reused")
    await finished_request(admin, [urls])
    request_id = await finished_request(
        admin, [urls[:1], [origin.url("/versioned/img/s03_coffee.jpg")]]
    )
    page = (await admin.get(f"/admin/requests/{request_id}")).text
    assert "2 done (1 reused)" in page
    assert page.count("reused: same content") == 1


async def test_the_thumbnail_of_an_image_that_is_not_done_is_a_404(
    admin: Client, origin: OriginServer
) -> None:
    request_id = await finished_request(admin, [[origin.url("/status/404")]])
    image_id = (await engine_of(admin).products(request_id))[0].images[0].id
    response = await admin.get(f"/admin/requests/{request_id}/thumbs/{image_id}")
    assert response.status_code == 404
    assert response.headers["content-type"].startswith("text/html")


async def test_a_failed_image_has_no_thumbnail_and_shows_its_error(
    admin: Client, origin: OriginServer
) -> None:
    request_id = await finished_request(admin, [[origin.url("/status/404")]])
    page = (await admin.get(f"/admin/requests/{request_id}")).text
    assert "/thumbs/" not in page
    assert "http_status" in page or "404" in page


async def test_an_unknown_request_is_a_404_page(admin: Client) -> None:
    response = await admin.get("/admin/requests/00000000-0000-0000-0000-000000000000")
    assert response.status_code == 404 and "No such request" in response.text


async def test_the_admin_copies_of_status_and_csv_need_no_api_key(tmp_path: Path) -> None:
    settings = Settings(core=core_config(tmp_path), log_format="none", api_keys=("k" * 32,))
    async with AsyncTestClient(create_app(settings), base_url="http://127.0.0.1:8000") as client:
        engine = engine_of(client)
        await save_admin(engine.database, "admin", PASSWORD)
        await log_in(client)
        request_id = await engine.submit_csv(make_csv([["http://127.0.0.1:9/x.jpg"]]))
        assert (await client.get(f"/status/{request_id}")).status_code == 401
        status = await client.get(f"/admin/requests/{request_id}/status.json")
        csv = await client.get(f"/admin/requests/{request_id}/output.csv")
    assert status.status_code == 200 and status.json()["request_id"] == str(request_id)
    assert csv.status_code == 200 and csv.text.startswith("S. No.,Product Name")


# -- actions ----------------------------------------------------------------------------------


async def test_retry_queues_the_failed_images_again(admin: Client, origin: OriginServer) -> None:
    # 404 on the first hit only: the retry succeeds.
    url = origin.url("/flaky/retry-me/1/img/s03_coffee.jpg?status=404")
    request_id = await finished_request(admin, [[url]])
    detail = await admin.get(f"/admin/requests/{request_id}")
    response = await admin.post(
        f"/admin/requests/{request_id}/retry", data={"csrf_token": csrf_of(detail.text)}
    )
    assert "1 failed image(s) queued again" in response.text
    await wait_finished(engine_of(admin), request_id)
    info = await engine_of(admin).status(request_id)
    assert (info.done, info.failed) == (1, 0)


async def test_an_action_without_the_csrf_token_is_refused(
    admin: Client, origin: OriginServer
) -> None:
    request_id = await finished_request(admin, [[origin.url("/status/404")]])
    response = await admin.post(f"/admin/requests/{request_id}/retry", data={"csrf_token": "x"})
    assert response.status_code == 403
    assert (await engine_of(admin).status(request_id)).failed == 1


async def test_delete_asks_first_then_removes_the_request_and_its_files(
    admin: Client, origin: OriginServer
) -> None:
    engine = engine_of(admin)
    request_id = await finished_request(admin, [photo_urls(origin, 1, "d")])
    confirm = await admin.get(f"/admin/requests/{request_id}/delete")
    assert "Delete this request?" in confirm.text
    image_id = (await engine.products(request_id))[0].images[0].id
    await admin.get(f"/admin/requests/{request_id}/thumbs/{image_id}")
    assert len(stored_keys(engine.storage)) == 2  # output, thumbnail
    response = await admin.post(
        f"/admin/requests/{request_id}/delete", data={"csrf_token": csrf_of(confirm.text)}
    )
    assert f"Request {request_id} deleted" in response.text
    assert stored_keys(engine.storage) == []
    assert (await admin.get(f"/admin/requests/{request_id}")).status_code == 404


async def test_the_stylesheet_is_served_without_login(client: Client) -> None:
    response = await client.get("/admin/static/admin.css")
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/css")
    assert "@media" in response.text


# -- a busy database --------------------------------------------------------------------------


async def test_readiness_and_admin_pages_answer_while_another_process_holds_the_write_lock(
    admin: Client, tmp_path: Path
) -> None:
    # A writer elsewhere (an `imgcore worker`, a long submit) holds SQLite's write lock: reads
    # do not queue behind it, so the probe stays ready and the pages load.
    holder = sqlite3.connect(tmp_path / "imgcore.sqlite3", isolation_level=None)
    try:
        holder.execute("BEGIN IMMEDIATE")
        with anyio.fail_after(30):  # a guard against hanging, not a timing assertion
            ready = await admin.get("/readyz")
            page = await admin.get("/admin", follow_redirects=False)
        assert holder.in_transaction, "the lock was still held when both answered"
    finally:
        holder.close()

    assert ready.status_code == 200, ready.text
    assert page.status_code == 200 and "Log out" in page.text
