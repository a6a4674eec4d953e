"""Admin sessions are kept server-side (issue #16, finding 4), tried through the real server:
a copy of the cookie taken before logout, a password change or ``imgapi revoke-sessions``
no longer opens the admin pages afterwards."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest
from imgapi.admin.security import COOKIE_NAME
from support.admin import PASSWORD, create_admin, csrf_of, imgapi_cli, log_in
from support.server import ApiServer, server_env


class Site:
    def __init__(self, server: ApiServer, env: dict[str, str], root: Path) -> None:
        self.server, self.env, self.root = server, env, root

    @contextmanager
    def logged_in(self, username: str) -> Iterator[httpx.Client]:
        """A browser logged in as ``username``."""
        with httpx.Client(base_url=self.server.base_url, timeout=60) as client:
            assert log_in(client, username, PASSWORD).status_code == 303
            yield client

    def with_cookie(self, cookie: str) -> httpx.Client:
        """A second browser holding a copy of the cookie."""
        return httpx.Client(base_url=self.server.base_url, cookies={COOKIE_NAME: cookie})

    def sessions(self, username: str) -> int:
        with sqlite3.connect(self.root / "imgcore.sqlite3") as db:
            count: int = db.execute(
                "SELECT count(*) FROM admin_sessions JOIN admin_users"
                " ON admin_users.id = admin_sessions.user_id WHERE username = ?",
                (username,),
            ).fetchone()[0]
        return count


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    root = tmp_path_factory.mktemp("sessions")
    env = server_env(root, IMGAPI_LOG_FORMAT="none")
    for username in ("carol", "dave", "erin", "frank"):
        create_admin(env, root, username)
    with ApiServer(env=env, cwd=root) as server:
        yield Site(server, env, root)


def is_logged_in(client: httpx.Client) -> bool:
    response = client.get("/admin")
    if response.status_code == 303:
        assert response.headers["location"].startswith("/admin/login")
        return False
    assert response.status_code == 200 and "Log out" in response.text
    return True


def test_a_cookie_copied_before_logout_is_logged_out_after_it(site: Site) -> None:
    with site.logged_in("carol") as browser:
        with site.with_cookie(browser.cookies[COOKIE_NAME]) as copy:
            assert is_logged_in(copy)
            token = csrf_of(browser.get("/admin").text)
            assert browser.post("/admin/logout", data={"csrf_token": token}).status_code == 303
            assert not is_logged_in(copy)
        assert not is_logged_in(browser)
    assert site.sessions("carol") == 0


def test_a_password_change_ends_the_users_sessions(site: Site) -> None:
    with site.logged_in("dave") as browser, site.logged_in("erin") as other:
        with site.with_cookie(browser.cookies[COOKIE_NAME]) as copy:
            create_admin(site.env, site.root, "dave", "a brand new password")
            assert not is_logged_in(browser) and not is_logged_in(copy)
        assert is_logged_in(other)  # another user's session goes on


def test_revoke_sessions_ends_every_session_of_the_user(site: Site) -> None:
    with site.logged_in("frank") as first, site.logged_in("frank") as second:
        with site.logged_in("erin") as other:
            assert site.sessions("frank") == 2
            result = imgapi_cli(site.env, site.root, "revoke-sessions", "frank")
            assert result.stdout.strip() == "ended 2 session(s) of admin user 'frank'"
            assert not is_logged_in(first) and not is_logged_in(second)
            assert is_logged_in(other)
        # The password still works: the user just logs in again.
        assert log_in(first, "frank", PASSWORD).status_code == 303
        assert is_logged_in(first)
