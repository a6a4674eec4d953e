"""Admin logins through the real server (issue #16, findings 1 and 2): a concurrent burst
does not get past the lockout, on SQLite, PostgreSQL and MariaDB; attempts are limited per
client address and per account with 429 and ``Retry-After``."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from support.admin import PASSWORD, create_admin, csrf_of, log_in, login_token
from support.server import ApiServer, server_env
from support.services import SERVERS, migrate, require, scratch_database

WRONG = "wrong password"
REFUSED = "Wrong username or password"


@pytest.fixture(params=["sqlite", *sorted(SERVERS)])
def database_env(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[dict[str, str]]:
    """The test server's environment on each database: SQLite, or a scratch database."""
    if request.param == "sqlite":
        yield server_env(tmp_path)
        return
    name, url = SERVERS[request.param]
    require(name, url)
    with scratch_database(url) as scratch:
        asyncio.run(migrate(scratch))
        yield server_env(tmp_path, IMGCORE_DATABASE_URL=scratch)


async def burst(base_url: str, passwords: list[str], *, last_after: float) -> list[int]:
    """Post every password but the last at once; the last ``last_after`` seconds later,
    while the others are still being checked. Each answer's status code, in order."""
    async with httpx.AsyncClient(base_url=base_url, timeout=120) as client:
        token = csrf_of((await client.get("/admin/login")).text)

        async def attempt(password: str, delay: float = 0) -> int:
            await asyncio.sleep(delay)
            response = await client.post(
                "/admin/login",
                data={"csrf_token": token, "username": "admin", "password": password},
            )
            if response.status_code == 200:
                assert REFUSED in response.text
            return response.status_code

        *others, last = passwords
        return await asyncio.gather(
            *(attempt(password) for password in others), attempt(last, last_after)
        )


def test_a_burst_of_wrong_passwords_then_the_right_one_does_not_get_past_the_lockout(
    database_env: dict[str, str], tmp_path: Path
) -> None:
    env = {
        **database_env,
        "IMGAPI_LOG_FORMAT": "none",
        # The lockout alone is tried here, not the attempt limits.
        "IMGAPI_ADMIN_LOGIN_PER_ADDRESS": "1000",
        "IMGAPI_ADMIN_LOGIN_PER_ACCOUNT": "1000",
    }
    create_admin(env, tmp_path)
    with ApiServer(env=env, cwd=tmp_path) as server:
        # The right password comes while the wrong ones are still being hashed: it was
        # judged against the row as read before the hash, unlocked, and logged in.
        answers = asyncio.run(burst(server.base_url, [WRONG] * 39 + [PASSWORD], last_after=0.5))
        assert answers == [200] * 40, answers
        with httpx.Client(base_url=server.base_url) as client:
            assert log_in(client).status_code == 200  # still locked
            assert client.get("/admin").status_code == 303


# -- attempts per address and per account ------------------------------------------------------


WINDOW = 3


@pytest.fixture(scope="module")
def limited(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ApiServer]:
    """A server allowing 3 attempts per address and per account in any 3 s; two admins.

    Each test uses addresses and accounts of its own.
    """
    root = tmp_path_factory.mktemp("limited")
    env = server_env(
        root,
        IMGAPI_LOG_FORMAT="none",
        IMGAPI_ADMIN_LOGIN_PER_ADDRESS="3",
        IMGAPI_ADMIN_LOGIN_PER_ACCOUNT="3",
        IMGAPI_ADMIN_LOGIN_WINDOW=str(WINDOW),
    )
    create_admin(env, root, "alice")
    create_admin(env, root, "bob")
    with ApiServer(env=env, cwd=root) as server:
        yield server


def client_from(server: ApiServer, address: str) -> httpx.Client:
    """A client whose connections come from ``address`` (a loopback address)."""
    transport = httpx.HTTPTransport(local_address=address)
    return httpx.Client(base_url=server.base_url, transport=transport, timeout=60)


def assert_too_many(response: httpx.Response) -> int:
    assert response.status_code == 429, response.text
    assert "Too many login attempts" in response.text
    retry_after = int(response.headers["retry-after"])
    assert 1 <= retry_after <= WINDOW
    return retry_after


def test_attempts_over_the_limit_per_address_get_429_with_retry_after(
    limited: ApiServer,
) -> None:
    with (
        client_from(limited, "127.0.0.11") as first,
        client_from(limited, "127.0.0.12") as second,
    ):
        token = login_token(first)
        for n in range(3):  # another username each time: one address, not one account
            assert log_in(first, f"guess{n}", WRONG, token).status_code == 200
        retry_after = assert_too_many(log_in(first, "alice", PASSWORD, token))
        assert first.get("/admin").status_code == 303  # the right password was not tried
        # Another address is not held back, and this one gets in once the window has moved.
        assert log_in(second, "guess9", WRONG).status_code == 200
        time.sleep(retry_after)
        assert log_in(first, "alice", PASSWORD, token).status_code == 303


def test_attempts_over_the_limit_per_account_get_429_with_retry_after(limited: ApiServer) -> None:
    with (
        client_from(limited, "127.0.0.21") as first,
        client_from(limited, "127.0.0.22") as second,
    ):
        for client in (first, second, first):  # from anywhere: one account
            assert log_in(client, "bob", WRONG).status_code == 200
        assert_too_many(log_in(second, "bob", PASSWORD))
        assert second.get("/admin").status_code == 303  # the right password was not tried
        # Other accounts are not held back (an unknown one answers as a wrong password).
        assert log_in(second, "someone-else", WRONG).status_code == 200
