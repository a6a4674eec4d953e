"""Fixtures for the persistence tests: one migrated database per backend, cleaned per test.

``database_url`` runs every test on SQLite (a temporary file), PostgreSQL and MariaDB/MySQL;
the server databases are scratch databases created for the session and dropped after it.
``anyio_backend`` comes from tests/imgcore/conftest.py.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any
from uuid import UUID, uuid4

import anyio
import pytest
from imgcore._db import requests as requests_db
from imgcore._db.database import READ_ONLY, create_engine
from imgcore._db.tables import metadata
from sqlalchemy.ext.asyncio import AsyncEngine
from support.services import SERVERS, migrate, require, scratch_database

BACKENDS = ("sqlite", "postgresql", "mysql")

NOW = datetime(2026, 3, 14, 15, 9, 26, 535897, tzinfo=UTC)
"""A fixed "now" with microseconds, so every timestamp a test checks is known exactly."""


@contextmanager
def empty_database(backend: str, factory: pytest.TempPathFactory) -> Iterator[str]:
    """The URL of a new, empty database of ``backend`` (skipped if its server is absent)."""
    if backend == "sqlite":
        path = factory.mktemp("sqlite") / "imgcore.sqlite3"
        yield f"sqlite+aiosqlite:///{path}"
        return
    name, url = SERVERS[backend]
    require(name, url)
    with scratch_database(url) as scratch:
        yield scratch


@pytest.fixture(scope="session", params=BACKENDS)
def database_url(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    """A database migrated to head, shared by the session (the ``engine`` fixture empties it)."""
    with empty_database(request.param, tmp_path_factory) as url:
        anyio.run(migrate, url)
        yield url


@pytest.fixture(params=BACKENDS)
def empty_database_url(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    """A new database with no tables at all (for the migration tests)."""
    with empty_database(request.param, tmp_path_factory) as url:
        yield url


def reader(engine: AsyncEngine) -> AsyncEngine:
    """The same engine for transactions that only read (on SQLite: a deferred BEGIN)."""
    return engine.execution_options(**{READ_ONLY: True})


@pytest.fixture
async def engine(database_url: str) -> AsyncIterator[AsyncEngine]:
    """``create_engine`` on the backend's database, its tables emptied first."""
    engine = create_engine(database_url)
    try:
        async with engine.begin() as conn:
            for table in reversed(metadata.sorted_tables):
                await conn.execute(table.delete())
        yield engine
    finally:
        await engine.dispose()


Row = tuple[int, int, int, str, Sequence[str], Sequence[str]]
Submit = Callable[..., Any]


def product_rows(image_counts: Sequence[int], *, prefix: str = "SKU") -> list[Row]:
    """``add_products`` rows: product ``i`` named ``{prefix}{i}`` with ``image_counts[i]`` URLs."""
    return [
        (
            position,
            position + 2,
            position + 1,
            f"{prefix}{position}",
            [f"http://127.0.0.1/p{position}/{index}.jpg" for index in range(count)],
            [],
        )
        for position, count in enumerate(image_counts)
    ]


@pytest.fixture
def submit(engine: AsyncEngine) -> Submit:
    """Store a request the way the engine does (one transaction); returns its id."""

    async def _submit(
        image_counts: Sequence[int] = (1,),
        *,
        prefix: str = "SKU",
        webhook_url: str | None = None,
        now: datetime = NOW,
        request_id: UUID | None = None,
    ) -> UUID:
        request_id = request_id or uuid4()
        rows = product_rows(image_counts, prefix=prefix)
        async with engine.begin() as conn:
            await conn.run_sync(
                requests_db.create_request,
                request_id=request_id,
                header={"columns": ["S. No.", "Product Name", "Input Image Urls"]},
                filename="products.csv",
                webhook_url=webhook_url,
                now=now,
            )
            total_images = await conn.run_sync(requests_db.add_products, request_id, rows, now=now)
            await conn.run_sync(
                requests_db.set_request_totals,
                request_id,
                total_products=len(rows),
                total_images=total_images,
            )
        return request_id

    return _submit
