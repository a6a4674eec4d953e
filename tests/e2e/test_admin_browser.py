"""The admin pages in a real browser (Debian's Chromium, driven by Playwright) against the
real server process (``python -m imgapi serve``), with admins made by ``imgapi create-admin``.

Skipped when /usr/bin/chromium is absent, except under IMGCORE_REQUIRE_SERVICES=1 (CI), where
that fails. With IMGCORE_UPDATE_SCREENSHOTS=1 the list and detail pages are saved to docs/img/.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import Browser, Page, expect, sync_playwright
from support.origin import OriginServer
from support.server import ApiServer, server_env
from support.services import services_required

CHROMIUM = Path(os.environ.get("IMGCORE_CHROMIUM", "/usr/bin/chromium"))
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
SCREENSHOTS = Path(__file__).resolve().parents[2] / "docs" / "img"
PASSWORD = "correct horse battery"
DESKTOP = {"width": 1280, "height": 860}
PHONE = {"width": 390, "height": 844}


def env_for(root: Path) -> dict[str, str]:
    return server_env(
        root,
        IMGCORE_WORKERS="2",
        IMGAPI_SESSION_SECRET="a test secret, not a real one",
        IMGAPI_LOG_FORMAT="none",
        # Every test logs in from 127.0.0.1: the login limits have tests of their own
        # (tests/imgapi/test_admin_logins.py).
        IMGAPI_ADMIN_LOGIN_PER_ADDRESS="1000",
        IMGAPI_ADMIN_LOGIN_PER_ACCOUNT="1000",
    )


def create_admin(env: dict[str, str], cwd: Path, username: str, password: str) -> None:
    """``imgapi create-admin USERNAME`` with the password on stdin, as a script would."""
    subprocess.run(
        [sys.executable, "-m", "imgapi", "create-admin", username],
        input=password + "\n",
        text=True,
        env={**os.environ, **env},
        cwd=cwd,
        check=True,
        capture_output=True,
        timeout=60,
    )


def upload(server: ApiServer, filename: str, rows: list[tuple[str, list[str]]]) -> str:
    lines = ["S. No.,Product Name,Input Image Urls"]
    lines += [f'{n},{name},"{",".join(urls)}"' for n, (name, urls) in enumerate(rows, 1)]
    response = httpx.post(
        server.url("/api/upload"),
        files={"file": (filename, "\r\n".join(lines) + "\r\n", "text/csv")},
    )
    assert response.status_code == 202, response.text
    request_id: str = response.json()["request_id"]
    return request_id


def wait_finished(server: ApiServer, request_id: str, timeout: float = 30) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        body: dict[str, Any] = httpx.get(server.url(f"/api/status/{request_id}")).json()
        if body["status"] in ("Completed", "Failed"):
            return body
        assert time.monotonic() < deadline, f"still {body['status']} after {timeout} s"
        time.sleep(0.05)


class Setup:
    """The running server and the requests made for the tests."""

    def __init__(self, server: ApiServer, requests: dict[str, str]) -> None:
        self.server = server
        self.requests = requests

    def url(self, path: str) -> str:
        return self.server.url(path)


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    if not CHROMIUM.exists():
        message = f"{CHROMIUM} is absent (apt-get install chromium)"
        if services_required():
            pytest.fail(f"{message}; IMGCORE_REQUIRE_SERVICES=1")
        pytest.skip(message)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS
        )
        yield browser
        browser.close()


@pytest.fixture(scope="module")
def setup(
    browser: Browser, tmp_path_factory: pytest.TempPathFactory, _origin_server: OriginServer
) -> Iterator[Setup]:
    root = tmp_path_factory.mktemp("admin-e2e")
    env = env_for(root)
    create_admin(env, root, "admin", PASSWORD)
    create_admin(env, root, "careless", PASSWORD)
    origin = _origin_server
    with ApiServer(env=env, cwd=root) as server:
        requests = {
            "broken": upload(server, "broken.csv", [("Cracked vase", [origin.url("/status/404")])]),
            "retry": upload(
                server,
                "retry.csv",
                [
                    (
                        "Flaky kettle",
                        [origin.url("/flaky/e2e-retry/1/img/s03_coffee.jpg?status=404")],
                    )
                ],
            ),
            "doomed": upload(
                server, "doomed.csv", [("Old stock", [origin.url("/corpus/img/s03_rocket.jpg")])]
            ),
            "catalogue": upload(
                server,
                "catalogue.csv",
                [
                    (
                        "Espresso cup",
                        [
                            origin.url("/corpus/img/s03_coffee.jpg"),
                            origin.url("/corpus/img/s03_chelsea.jpg"),
                        ],
                    ),
                    ("Rocket lamp", [origin.url("/corpus/img/s03_rocket.jpg")]),
                    ("Astronaut poster", [origin.url("/corpus/img/s03_astronaut.jpg")]),
                ],
            ),
        }
        for request_id in requests.values():
            wait_finished(server, request_id)
        yield Setup(server, requests)


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    """A fresh browser context (no cookies) at desktop size."""
    context = browser.new_context(viewport=DESKTOP)
    context.set_default_timeout(10_000)
    page = context.new_page()
    yield page
    context.close()


def log_in(page: Page, setup: Setup, username: str = "admin", password: str = PASSWORD) -> None:
    page.goto(setup.url("/admin/login"))
    fill_login(page, username, password)


def fill_login(page: Page, username: str = "admin", password: str = PASSWORD) -> None:
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Log in").click()


def wait_for_images(page: Page, selector: str, *, visible_only: bool = False) -> None:
    """Until the images are loaded (or broken); ``visible_only``: those in the viewport.

    Polled from here: the pages' Content-Security-Policy forbids the eval that
    ``page.wait_for_function`` relies on.
    """
    script = """([selector, visibleOnly]) => [...document.querySelectorAll(selector)]
        .filter(i => !visibleOnly || i.getBoundingClientRect().top < window.innerHeight)
        .every(i => i.complete)"""
    deadline = time.monotonic() + 10
    while not page.evaluate(script, [selector, visible_only]):
        assert time.monotonic() < deadline, f"images {selector!r} still loading"
        time.sleep(0.05)


def row_of(page: Page, request_id: str) -> Any:
    return page.locator("tbody tr", has=page.locator(f"a:text-is('{request_id}')"))


def test_an_anonymous_visit_is_redirected_to_the_login_page(page: Page, setup: Setup) -> None:
    request_id = setup.requests["catalogue"]
    page.goto(setup.url(f"/admin/requests/{request_id}"))
    expect(page).to_have_url(re.compile(r"/admin/login\?next=%2Fadmin%2Frequests%2F"))
    fill_login(page)
    expect(page).to_have_url(setup.url(f"/admin/requests/{request_id}"))  # back where it was


def test_the_list_shows_every_request_with_its_progress(page: Page, setup: Setup) -> None:
    log_in(page, setup)
    expect(page).to_have_url(setup.url("/admin"))
    row = row_of(page, setup.requests["catalogue"])
    expect(row).to_contain_text("Completed")
    expect(row).to_contain_text("4 / 4")
    expect(row_of(page, setup.requests["broken"])).to_contain_text("Failed")


def test_the_detail_page_shows_a_thumbnail_of_each_done_image(page: Page, setup: Setup) -> None:
    log_in(page, setup)
    page.locator(f"a:text-is('{setup.requests['catalogue']}')").click()
    expect(page.get_by_role("heading", name=re.compile("^Request"))).to_be_visible()
    thumbs = page.locator("td.thumb img")
    expect(thumbs).to_have_count(4)
    for i in range(4):
        thumbs.nth(i).scroll_into_view_if_needed()
    wait_for_images(page, "td.thumb img")
    widths = thumbs.evaluate_all("imgs => imgs.map(i => i.naturalWidth)")
    assert len(widths) == 4 and all(0 < width <= 256 for width in widths), widths
    expect(page.get_by_text("Espresso cup").first).to_be_visible()


def test_filtering_by_status_keeps_only_those_requests(page: Page, setup: Setup) -> None:
    log_in(page, setup)
    page.get_by_label("Status").select_option("Failed")
    page.get_by_role("button", name="Filter").click()
    expect(page).to_have_url(re.compile(r"status=Failed"))
    expect(row_of(page, setup.requests["broken"])).to_have_count(1)
    expect(row_of(page, setup.requests["catalogue"])).to_have_count(0)


def test_searching_finds_a_request_by_product_name(page: Page, setup: Setup) -> None:
    log_in(page, setup)
    page.get_by_label("Search").fill("rocket LAMP")
    page.get_by_role("button", name="Filter").click()
    expect(row_of(page, setup.requests["catalogue"])).to_have_count(1)
    expect(page.locator("tbody tr")).to_have_count(1)


def test_retry_queues_the_failed_images_again(page: Page, setup: Setup) -> None:
    request_id = setup.requests["retry"]
    log_in(page, setup)
    page.goto(setup.url(f"/admin/requests/{request_id}"))
    page.get_by_role("button", name="Retry 1 failed").click()
    expect(page.get_by_role("status")).to_contain_text("1 failed image(s) queued again")
    assert wait_finished(setup.server, request_id)["status"] == "Completed"
    page.reload()
    expect(page.locator("td.thumb img")).to_have_count(1)


def test_delete_asks_for_confirmation_then_deletes(page: Page, setup: Setup) -> None:
    request_id = setup.requests["doomed"]
    log_in(page, setup)
    page.goto(setup.url(f"/admin/requests/{request_id}"))
    page.get_by_role("link", name="Delete…").click()
    expect(page.get_by_role("heading", name="Delete this request?")).to_be_visible()
    page.get_by_role("button", name="Delete for good").click()
    expect(page).to_have_url(setup.url("/admin"))
    expect(page.get_by_role("status")).to_contain_text(f"Request {request_id} deleted")
    expect(row_of(page, request_id)).to_have_count(0)
    assert httpx.get(setup.url(f"/api/status/{request_id}")).status_code == 404


def test_logging_out_ends_the_session(page: Page, setup: Setup) -> None:
    log_in(page, setup)
    page.get_by_role("button", name="Log out").click()
    expect(page).to_have_url(setup.url("/admin/login"))
    page.goto(setup.url("/admin"))
    expect(page).to_have_url(setup.url("/admin/login"))


def test_a_forged_post_without_the_csrf_token_is_refused(page: Page, setup: Setup) -> None:
    log_in(page, setup)
    request_id = setup.requests["broken"]
    # The session cookie goes along (same browser context); only the token is missing.
    response = page.request.post(
        setup.url(f"/admin/requests/{request_id}/delete"), form={"confirm": "yes"}
    )
    assert response.status == 403
    assert httpx.get(setup.url(f"/api/status/{request_id}")).status_code == 200


def test_repeated_bad_passwords_lock_the_account(page: Page, setup: Setup) -> None:
    for attempt in range(5):
        log_in(page, setup, "careless", f"wrong password {attempt}")
        expect(page.get_by_role("alert")).to_contain_text("Wrong username or password")
    log_in(page, setup, "careless", PASSWORD)
    expect(page.get_by_role("alert")).to_contain_text("too many failed attempts")
    expect(page).to_have_url(setup.url("/admin/login"))


@pytest.mark.skipif(
    os.environ.get("IMGCORE_UPDATE_SCREENSHOTS") != "1",
    reason="set IMGCORE_UPDATE_SCREENSHOTS=1 to rewrite docs/img/admin-*.png",
)
def test_screenshots_of_the_list_and_detail_pages(browser: Browser, setup: Setup) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    pages = {"list": "/admin", "detail": f"/admin/requests/{setup.requests['catalogue']}"}
    for size_name, viewport, scale in (("desktop", DESKTOP, 1), ("phone", PHONE, 2)):
        context = browser.new_context(viewport=viewport, device_scale_factor=scale)
        page = context.new_page()
        log_in(page, setup)
        for name, path in pages.items():
            page.goto(setup.url(path))
            wait_for_images(page, "img", visible_only=True)
            page.screenshot(path=SCREENSHOTS / f"admin-{name}-{size_name}.png")
        context.close()
