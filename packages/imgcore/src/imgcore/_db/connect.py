"""Create the async SQLAlchemy engine for a database URL, tuned per backend."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

__all__ = [
    "READ_ONLY",
    "create_engine",
    "is_sqlite",
    "normalize_url",
    "reader",
    "sqlite_file_engine",
]

READ_ONLY = "imgcore_read_only"
"""Execution option naming a connection that only reads (SQLite then begins DEFERRED)."""

SQLITE_BUSY_TIMEOUT_MS = 60_000

_ASYNC_DRIVERS = {
    "sqlite": "sqlite+aiosqlite",
    "postgresql": "postgresql+asyncpg",
    "postgres": "postgresql+asyncpg",
    "mysql": "mysql+asyncmy",
    "mariadb": "mysql+asyncmy",
}


def normalize_url(url: str) -> sa.URL:
    """Parse ``url``, adding the async driver when none is named (``postgresql://`` → asyncpg)."""
    parsed = sa.make_url(url)
    if "+" not in parsed.drivername and parsed.drivername in _ASYNC_DRIVERS:
        parsed = parsed.set(drivername=_ASYNC_DRIVERS[parsed.drivername])
    return parsed


def is_sqlite(url: sa.URL) -> bool:
    """True for SQLite URLs."""
    return url.get_backend_name() == "sqlite"


def create_engine(url: str | sa.URL, **kwargs: Any) -> AsyncEngine:
    """An async engine with each backend's settings for this workload.

    SQLite: WAL, a long busy timeout, foreign keys on, and ``BEGIN IMMEDIATE`` so a
    transaction that will write takes the write lock up front (no upgrade deadlocks).
    PostgreSQL and MariaDB/MySQL: READ COMMITTED, so ``SKIP LOCKED`` claims see fresh rows.
    """
    parsed = normalize_url(url) if isinstance(url, str) else url
    if is_sqlite(parsed):
        database = parsed.database
        if database and database != ":memory:" and not database.startswith("file:"):
            Path(database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_async_engine(parsed, **kwargs)
        _tune_sqlite(engine.sync_engine)
        return engine
    kwargs.setdefault("pool_pre_ping", True)
    kwargs.setdefault("pool_size", 10)
    kwargs.setdefault("isolation_level", "READ COMMITTED")
    return create_async_engine(parsed, **kwargs)


def _tune_sqlite(sync_engine: sa.Engine, busy_timeout_ms: int = SQLITE_BUSY_TIMEOUT_MS) -> None:
    @event.listens_for(sync_engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Let SQLAlchemy, not the driver, decide when transactions begin.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        # First: switching to WAL waits on a locked file too.
        cursor.execute(f"PRAGMA busy_timeout={busy_timeout_ms}")
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()

    @event.listens_for(sync_engine, "begin")
    def _on_begin(connection: sa.Connection) -> None:
        # Readers (see READ_ONLY) must not queue behind the writer; WAL lets them run beside it.
        if connection.get_execution_options().get(READ_ONLY):
            connection.exec_driver_sql("BEGIN")
        else:
            connection.exec_driver_sql("BEGIN IMMEDIATE")


def reader(engine: AsyncEngine) -> AsyncEngine:
    """The same engine and pool, for transactions that only read."""
    return engine.execution_options(**{READ_ONLY: True})


def sqlite_file_engine(
    url: sa.URL, *, busy_timeout_ms: int = SQLITE_BUSY_TIMEOUT_MS
) -> sa.Engine | None:
    """A synchronous engine on the same SQLite file; None if ``url`` is no file.

    aiosqlite runs each driver call on its own thread, and every call is a round trip
    between threads that costs far more than the query. The hot transactions (status reads,
    claiming and finishing images) run whole on this engine in one worker thread instead
    (see :class:`imgcore._db.runner.Runner`). Connections that only read must be given the
    :data:`READ_ONLY` option. In-memory databases cannot be shared with a second engine, so
    they have none. ``busy_timeout_ms``: how long a statement waits for a locked file.
    """
    database = url.database
    if not is_sqlite(url) or not database or database == ":memory:" or "mode=memory" in database:
        return None
    sync_url = url.set(drivername="sqlite")
    engine = sa.create_engine(sync_url, connect_args={"check_same_thread": False})
    _tune_sqlite(engine, busy_timeout_ms)
    return engine
