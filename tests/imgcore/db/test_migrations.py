"""The shipped Alembic migrations create exactly the schema in imgcore._db.tables.

Revision 0001 also creates ``admin_users``, which imgapi has owned since (tests/imgapi checks
that branch); it is left out of the comparison here.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from typing import Any
from uuid import uuid4

import anyio
import pytest
import sqlalchemy as sa
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from imgcore._db import migrate
from imgcore._db import requests as requests_db
from imgcore._db.database import create_engine
from imgcore._db.migrate import alembic_config
from imgcore._db.tables import metadata
from sqlalchemy.ext.asyncio import AsyncEngine
from support.services import MYSQL_URL, require, scratch_database

pytestmark = pytest.mark.anyio


def schema_diffs(connection: sa.Connection) -> list[Any]:
    context = MigrationContext.configure(
        connection,
        opts={"compare_type": True, "compare_server_default": True, "include_name": _not_imgapis},
    )
    return list(compare_metadata(context, metadata))


def _not_imgapis(name: str | None, type_: str, _parent: object) -> bool:
    return not (type_ == "table" and name == "admin_users")


def table_names(connection: sa.Connection) -> set[str]:
    return set(sa.inspect(connection).get_table_names())


async def upgrade(engine: AsyncEngine) -> None:
    async with engine.begin() as conn:
        await conn.run_sync(migrate.upgrade)


async def current_revision(engine: AsyncEngine) -> frozenset[str]:
    async with engine.connect() as conn:
        return await conn.run_sync(migrate.current_heads)


def head_revision() -> frozenset[str]:
    return migrate.script_heads()


@pytest.fixture
async def empty_engine(empty_database_url: str) -> AsyncIterator[AsyncEngine]:
    engine = create_engine(empty_database_url)
    try:
        yield engine
    finally:
        await engine.dispose()


async def test_upgrade_from_empty_creates_exactly_the_metadata(empty_engine: AsyncEngine) -> None:
    await upgrade(empty_engine)

    async with empty_engine.connect() as conn:
        assert await conn.run_sync(schema_diffs) == []


async def test_upgrade_creates_every_table_and_the_version_table(
    empty_engine: AsyncEngine,
) -> None:
    await upgrade(empty_engine)

    async with empty_engine.connect() as conn:
        names = await conn.run_sync(table_names)
    assert names == {*metadata.tables, "admin_users", "alembic_version"}


async def test_empty_database_has_no_revision(empty_engine: AsyncEngine) -> None:
    assert await current_revision(empty_engine) == frozenset()


async def test_upgrade_reaches_the_head_revision(empty_engine: AsyncEngine) -> None:
    await upgrade(empty_engine)

    assert head_revision()
    assert await current_revision(empty_engine) == head_revision()


async def test_upgrade_twice_changes_nothing(empty_engine: AsyncEngine) -> None:
    await upgrade(empty_engine)
    await upgrade(empty_engine)

    async with empty_engine.connect() as conn:
        assert await conn.run_sync(schema_diffs) == []
    assert await current_revision(empty_engine) == head_revision()


async def test_downgrade_to_base_drops_every_table(empty_engine: AsyncEngine) -> None:
    await upgrade(empty_engine)

    def downgrade(connection: sa.Connection) -> None:
        command.downgrade(alembic_config(connection=connection), "base")

    async with empty_engine.begin() as conn:
        await conn.run_sync(downgrade)
    async with empty_engine.connect() as conn:
        assert await conn.run_sync(table_names) == {"alembic_version"}
    assert await current_revision(empty_engine) == frozenset()


@pytest.fixture
def latin1_mysql_url() -> Iterator[str]:
    """A MariaDB/MySQL database whose default charset is latin1 (stock MariaDB before 11.6)."""
    require("MariaDB/MySQL", MYSQL_URL)

    async def to_latin1(url: str) -> None:
        engine = create_engine(url)
        try:
            async with engine.connect() as conn:
                await conn.exec_driver_sql("ALTER DATABASE CHARACTER SET latin1")
        finally:
            await engine.dispose()

    with scratch_database(MYSQL_URL) as url:
        anyio.run(to_latin1, url)
        yield url


async def test_mysql_tables_hold_any_unicode_whatever_the_database_charset(
    latin1_mysql_url: str,
) -> None:
    engine = create_engine(latin1_mysql_url)
    request_id, now = uuid4(), datetime.now(UTC)
    try:
        await upgrade(engine)
        async with engine.begin() as conn:
            await conn.run_sync(
                requests_db.create_request,
                request_id=request_id,
                header={"columns": ["Nom ☕"]},
                filename="café.csv",
                webhook_url=None,
                now=now,
            )
            row = (0, 2, 1, "Café ☕ 日本 👟", ["http://127.0.0.1/ü"], [])
            await conn.run_sync(requests_db.add_products, request_id, [row], now=now)
        async with engine.connect() as conn:
            [product] = await conn.run_sync(
                requests_db.read_product_page, request_id, start=0, limit=1
            )
    finally:
        await engine.dispose()

    assert product.name == "Café ☕ 日本 👟"
