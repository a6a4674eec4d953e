"""Real database servers for tests: found on loopback, or skipped with a visible reason.

Under ``IMGCORE_REQUIRE_SERVICES=1`` (as in CI) a missing service fails the test instead.
URLs can be overridden with ``IMGCORE_TEST_POSTGRES_URL`` / ``IMGCORE_TEST_MYSQL_URL``.
"""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from urllib.parse import urlsplit

import pytest
import sqlalchemy as sa

POSTGRES_URL = os.environ.get(
    "IMGCORE_TEST_POSTGRES_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/test"
)
MYSQL_URL = os.environ.get("IMGCORE_TEST_MYSQL_URL", "mysql+asyncmy://root@127.0.0.1:3306/test")
REDIS_URL = os.environ.get("IMGCORE_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")

SERVERS = {"postgresql": ("PostgreSQL", POSTGRES_URL), "mysql": ("MariaDB/MySQL", MYSQL_URL)}
"""The database servers the suite runs against: backend → (name, URL)."""


def services_required() -> bool:
    """True when a missing service must fail the run (CI)."""
    return os.environ.get("IMGCORE_REQUIRE_SERVICES") == "1"


def reachable(url: str) -> bool:
    """Whether something listens at the URL's host and port."""
    parts = urlsplit(url.replace("+asyncpg", "").replace("+asyncmy", ""))
    try:
        with socket.create_connection((parts.hostname or "127.0.0.1", parts.port or 0), 2):
            return True
    except OSError:
        return False


def require(name: str, url: str) -> None:
    """Skip (or, under IMGCORE_REQUIRE_SERVICES=1, fail) unless the service answers."""
    if reachable(url):
        return
    message = f"{name} is not reachable at {url}"
    if services_required():
        pytest.fail(f"{message} (IMGCORE_REQUIRE_SERVICES=1)")
    pytest.skip(message)


@contextmanager
def scratch_database(url: str) -> Iterator[str]:
    """A new, empty database on the server at ``url``; dropped afterwards. Yields its URL."""
    import asyncio

    from sqlalchemy.ext.asyncio import create_async_engine

    base = sa.make_url(url)
    name = f"imgcore_{uuid.uuid4().hex[:12]}"
    quoted = f'"{name}"' if base.get_backend_name() == "postgresql" else f"`{name}`"

    async def admin(statement: str) -> None:
        engine = create_async_engine(base, isolation_level="AUTOCOMMIT")
        try:
            async with engine.connect() as conn:
                await conn.exec_driver_sql(statement)
        finally:
            await engine.dispose()

    asyncio.run(admin(f"CREATE DATABASE {quoted}"))
    try:
        yield base.set(database=name).render_as_string(hide_password=False)
    finally:
        drop = f"DROP DATABASE IF EXISTS {quoted}"
        if base.get_backend_name() == "postgresql":
            drop += " WITH (FORCE)"
        asyncio.run(admin(drop))


async def migrate(url: str) -> None:
    """Run every migration branch (imgcore's and the installed plugins') on ``url``."""
    from imgcore._db import Database
    from imgcore._plugins import create_plugin_manager, plugin_migrations

    database = Database(url, migrations=plugin_migrations(create_plugin_manager()))
    try:
        await database.upgrade()
    finally:
        await database.dispose()
