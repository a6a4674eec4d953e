"""imgapi's own migration branch: it adopts the admin_users table imgcore once created."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import anyio
import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from imgapi.admin import users
from imgapi.tables import MIGRATIONS, metadata
from imgcore import Database, Engine
from support.server import core_config

pytestmark = pytest.mark.anyio


def admin_users_diffs(connection: sa.Connection) -> list[Any]:
    context = MigrationContext.configure(
        connection,
        opts={
            "compare_type": True,
            "compare_server_default": True,
            "include_name": lambda name, type_, _parent: (
                type_ != "table" or name in metadata.tables
            ),
        },
    )
    return list(compare_metadata(context, metadata))


async def test_an_empty_database_gets_both_branches_and_exactly_imgapis_tables(
    tmp_path: Path,
) -> None:
    database = Database(f"sqlite:///{tmp_path}/db.sqlite3", migrations=[MIGRATIONS])
    try:
        await database.upgrade()
        assert database.heads() == {"0004", "imgapi_0003"}
        assert await database.missing() == frozenset()
        assert await database.read(admin_users_diffs) == []
    finally:
        await database.dispose()


async def test_a_database_from_before_the_branch_keeps_its_admin_users(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/db.sqlite3"
    before = Database(url)  # imgcore's branch only, as every database was until now
    try:
        await before.upgrade()
        await before.write(
            lambda conn: users.save_admin_user(
                conn, "admin", "hash", now=datetime(2026, 1, 1, tzinfo=UTC)
            )
        )
    finally:
        await before.dispose()

    after = Database(url, migrations=[MIGRATIONS])
    try:
        await after.upgrade()
        user = await after.read(lambda conn: users.get_admin_user(conn, username="admin"))
        missing = await after.missing()
    finally:
        await after.dispose()

    assert user is not None and user.password_hash == "hash"
    assert missing == frozenset()


async def test_an_engine_migrates_imgapis_branch_through_its_entry_point(tmp_path: Path) -> None:
    async with Engine(core_config(tmp_path)) as engine:
        assert "imgapi_0003" in engine.database.heads()
        assert await engine.database.missing() == frozenset()


@pytest.mark.parametrize("backend", ["postgresql", "mysql"])
def test_api_keys_work_on_the_server_databases(backend: str) -> None:
    from imgapi import clients
    from imgcore._plugins import create_plugin_manager, plugin_migrations
    from support.services import SERVERS, require, scratch_database

    name, url = SERVERS[backend]
    require(name, url)

    async def check(scratch: str) -> None:
        database = Database(scratch, migrations=plugin_migrations(create_plugin_manager()))
        try:
            await database.upgrade()
            assert await database.read(admin_users_diffs) == []
            old = await clients.create_key(database, "shop-1")
            new = await clients.create_key(database, "shop-1")
            assert await clients.revoke_keys(database, "shop-1", prefix=old[:12]) == 1
            assert await database.read(lambda c: clients.client_of_key(c, old.encode())) is None
            found = await database.read(lambda c: clients.client_of_key(c, new.encode()))
            assert found == "shop-1"
            await clients.set_limit(database, "shop-1", 5)
            assert await database.read(lambda c: clients.client_limit(c, "shop-1")) == 5
        finally:
            await database.dispose()

    with scratch_database(url) as scratch:
        anyio.run(check, scratch)
