"""Admin accounts for tests against the real server: the ``imgapi`` CLI and the login form.

::

    imgapi_cli(env, cwd, "create-admin", "admin", stdin=PASSWORD + "\\n")
    with httpx.Client(base_url=server.base_url) as client:
        response = log_in(client, "admin", PASSWORD)   # 303 on success
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import httpx

PASSWORD = "correct horse battery"


def imgapi_cli(
    env: dict[str, str], cwd: Path, *args: str, stdin: str = ""
) -> subprocess.CompletedProcess[str]:
    """``python -m imgapi ARGS`` with the server's environment; fails the test if it fails."""
    return subprocess.run(
        [sys.executable, "-m", "imgapi", *args],
        input=stdin,
        text=True,
        env={**os.environ, **env},
        cwd=cwd,
        check=True,
        capture_output=True,
        timeout=60,
    )


def create_admin(
    env: dict[str, str], cwd: Path, username: str = "admin", password: str = PASSWORD
) -> None:
    """Create the admin user (or set its password) through ``imgapi create-admin``."""
    imgapi_cli(env, cwd, "create-admin", username, stdin=password + "\n")


def csrf_of(html: str) -> str:
    """The CSRF token of the first form in the page."""
    match = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert match, "no CSRF token in the page"
    return match.group(1)


def login_token(client: httpx.Client) -> str:
    """Open the login page (which sets the session cookie) and return its CSRF token."""
    return csrf_of(client.get("/admin/login").text)


def log_in(
    client: httpx.Client,
    username: str = "admin",
    password: str = PASSWORD,
    token: str | None = None,
) -> httpx.Response:
    """Post the login form (``token``: a CSRF token already read, else the page is opened)."""
    return client.post(
        "/admin/login",
        data={
            "csrf_token": token if token is not None else login_token(client),
            "username": username,
            "password": password,
        },
    )
