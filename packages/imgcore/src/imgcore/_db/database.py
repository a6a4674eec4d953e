"""The one way into the database: :class:`Database` owns every connection and transaction.

Queries are plain functions of a synchronous :class:`sqlalchemy.Connection` (in
``imgcore._db.requests``, ``images`` and ``outbox``); callers hand them to
:meth:`Database.read` or :meth:`Database.write`, which decide where and how they run.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import AsyncIterator, Callable, Iterable, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, TypeVar

import anyio
import anyio.from_thread
import anyio.lowlevel
import anyio.to_thread
import msgspec
import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine
from sqlalchemy.util import await_

from imgcore._db import migrate

__all__ = ["Database", "create_engine", "normalize_url"]

T = TypeVar("T")
B = TypeVar("B")

READ_ONLY = "imgcore_read_only"
"""Execution option naming a connection that only reads (SQLite then begins DEFERRED)."""

SQLITE_BUSY_TIMEOUT_MS = 60_000
# Concurrent SQLite reads on worker threads: WAL readers do not block each other, and more
# threads than this only queue for the GIL.
SQLITE_READ_THREADS = 4
_LOCKED = frozenset({sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED})

_ASYNC_DRIVERS = {
    "sqlite": "sqlite+aiosqlite",
    "postgresql": "postgresql+asyncpg",
    "postgres": "postgresql+asyncpg",
    "mysql": "mysql+asyncmy",
    "mariadb": "mysql+asyncmy",
}


def normalize_url(url: str | sa.URL) -> sa.URL:
    """Parse ``url``, adding the async driver when none is named (``postgresql://`` → asyncpg)."""
    parsed = sa.make_url(url)
    if "+" not in parsed.drivername and parsed.drivername in _ASYNC_DRIVERS:
        parsed = parsed.set(drivername=_ASYNC_DRIVERS[parsed.drivername])
    return parsed


def _is_sqlite(url: sa.URL) -> bool:
    return url.get_backend_name() == "sqlite"


class Database:
    """Every connection and transaction imgcore opens, for one database URL.

    ``read(fn)`` and ``write(fn)`` run ``fn(connection)`` — a function of a synchronous
    connection — inside one transaction. On an SQLite file the whole function runs in one
    worker thread on a synchronous connection: one thread hop, where aiosqlite makes several
    per statement. Writes go through one thread, since SQLite has one writer at a time and
    queueing here is cheaper than waiting on the file lock; reads begin DEFERRED, so they
    never wait for a writer. A short read runs on the event loop itself, since even one hop
    costs more than reading a few rows (see docs/performance.md). Elsewhere (PostgreSQL,
    MariaDB/MySQL, in-memory SQLite) the function runs on the async engine through
    ``run_sync``. Either way it cannot be cancelled half-way: a cancellation takes effect once
    the transaction has ended.

    ``migrations``: Alembic version directories besides imgcore's own, each an independent
    branch (see the ``imgcore_migrations`` hook).
    """

    def __init__(self, url: str | sa.URL, *, migrations: Iterable[Path] = ()) -> None:
        self.url = normalize_url(url)
        self.migrations = (migrate.VERSIONS, *migrations)
        self._engine = create_engine(self.url)
        self._reader = self._engine.execution_options(**{READ_ONLY: True})
        self._sync = _sqlite_file_engine(self.url)
        # Never waits for a lock: the event loop must not stall behind one.
        self._short = _sqlite_file_engine(self.url, busy_timeout_ms=0)
        # Thread limiters belong to an event loop; the one writer at a time is held by a lock
        # in the thread, so that an engine used from another loop too (a test client's
        # portal, a synchronous framework's) still writes one at a time, and never waits on
        # a limiter of a loop that cannot wake it.
        self._limiters: dict[object, tuple[anyio.CapacityLimiter, anyio.CapacityLimiter]] = {}
        self._writer = threading.Lock()

    @property
    def embedded(self) -> bool:
        """True for SQLite, which imgcore brings up to date itself when it starts."""
        return _is_sqlite(self.url)

    # -- transactions ------------------------------------------------------------------------

    async def read(self, fn: Callable[[sa.Connection], T], *, short: bool = False) -> T:
        """``fn(connection)`` in a read-only transaction (one consistent snapshot).

        ``short``: ``fn`` reads a few rows, a millisecond or so; on an SQLite file it then
        runs on the event loop, unless the file is locked (a crash being recovered, a
        connection holding it exclusively): then it runs again in a thread that waits for
        the lock. So ``fn`` may run twice, and must do nothing but read.
        """
        if self._sync is None:
            async with self._connect(self._reader) as conn, conn.begin():
                return await conn.run_sync(fn)
        if short and self._short is not None:
            try:
                return _read_on(self._short, fn)
            except sa.exc.OperationalError as exc:
                if not _is_busy(exc):
                    raise
        reads, _ = self._limiters_here()
        return await anyio.to_thread.run_sync(_read_on, self._sync, fn, limiter=reads)

    async def write(self, fn: Callable[[sa.Connection], T]) -> T:
        """``fn(connection)`` in a transaction, committed if it returns (rolled back if not).

        Even a cancelled caller (a shutdown returning its images) gets it run to the end.
        """
        if self._sync is None:
            async with self._connect(self._engine) as conn, conn.begin():
                return await conn.run_sync(fn)
        _, writes = self._limiters_here()
        with anyio.CancelScope(shield=True):
            result = await anyio.to_thread.run_sync(self._write_here, fn, limiter=writes)
        return result

    async def write_stream(
        self, fn: Callable[[sa.Connection, Iterator[B]], T], items: AsyncIterator[B]
    ) -> T:
        """``fn(connection, batches)`` in one write transaction, as :meth:`write`.

        ``batches`` yields the items of ``items`` one at a time, each awaited when ``fn``
        asks for it: a long insert (a submitted CSV) stays one all-or-nothing transaction
        while its rows are produced elsewhere (parsed on worker threads) and only one batch
        is held at a time.
        """

        async def pull() -> tuple[bool, B | None]:
            try:
                return True, await items.__anext__()
            except StopAsyncIteration:
                return False, None

        def batches(wait: Callable[[], tuple[bool, B | None]]) -> Iterator[B]:
            while True:
                more, item = wait()
                if not more:
                    return
                yield item  # type: ignore[misc]  # set whenever ``more`` is

        if self._sync is None:
            # Inside run_sync, await_ hands the coroutine back to the event loop.
            return await self.write(lambda conn: fn(conn, batches(lambda: await_(pull()))))
        return await self.write(lambda conn: fn(conn, batches(lambda: anyio.from_thread.run(pull))))

    async def ping(self) -> None:
        """Raise unless the database answers a trivial read (which takes no lock)."""
        await self.read(lambda conn: conn.execute(sa.text("SELECT 1")).scalar(), short=True)

    # -- schema ------------------------------------------------------------------------------

    async def upgrade(self) -> None:
        """Bring every migration branch up to its head (idempotent)."""
        await self.write(lambda conn: migrate.upgrade(conn, self.migrations))

    async def revisions(self) -> frozenset[str]:
        """The revisions Alembic records for the database (empty when never migrated)."""
        return await self.read(migrate.current_heads)

    async def missing(self) -> frozenset[str]:
        """The branch heads the database has not reached yet (empty when it is current)."""
        return await self.read(lambda conn: migrate.missing_heads(conn, self.migrations))

    def heads(self) -> frozenset[str]:
        """The newest revision of every branch this version ships."""
        return migrate.script_heads(self.migrations)

    # -- lifecycle ---------------------------------------------------------------------------

    async def dispose(self) -> None:
        """Close every pooled connection (the Database may be used again afterwards)."""
        with anyio.CancelScope(shield=True):
            await self._engine.dispose()
            for engine in (self._sync, self._short):
                if engine is not None:
                    engine.dispose()

    @staticmethod
    @asynccontextmanager
    async def _connect(engine: AsyncEngine) -> AsyncIterator[AsyncConnection]:
        # Shielded: cancelling a query in flight leaves an aiosqlite connection checked out
        # inside a transaction (the next writer then waits out the busy timeout) and
        # SQLAlchemy's close of it hanging.
        with anyio.CancelScope(shield=True):
            async with engine.connect() as conn:
                yield conn

    def _limiters_here(self) -> tuple[anyio.CapacityLimiter, anyio.CapacityLimiter]:
        loop = anyio.lowlevel.current_token()
        limiters = self._limiters.get(loop)
        if limiters is None:
            limiters = (anyio.CapacityLimiter(SQLITE_READ_THREADS), anyio.CapacityLimiter(1))
            self._limiters[loop] = limiters
        return limiters

    def _write_here(self, fn: Callable[[sa.Connection], T]) -> T:
        assert self._sync is not None
        with self._writer, self._sync.begin() as conn:
            return fn(conn)


def _read_on(engine: sa.Engine, fn: Callable[[sa.Connection], T]) -> T:
    with engine.connect().execution_options(**{READ_ONLY: True}) as conn, conn.begin():
        return fn(conn)


def _is_busy(exc: sa.exc.OperationalError) -> bool:
    """True if SQLite refused because the file is locked (SQLITE_BUSY, SQLITE_LOCKED)."""
    if not isinstance(exc.orig, sqlite3.Error):
        return False
    # Extended codes (SQLITE_BUSY_RECOVERY…) carry the primary code in their low byte.
    return (exc.orig.sqlite_errorcode & 0xFF) in _LOCKED


def _json_dumps(value: Any) -> str:
    return msgspec.json.encode(value).decode()


# JSON columns (a request's preset, an image's variants) through msgspec: a status poll
# decodes one per image, and the standard library's decoder is several times slower.
_JSON: dict[str, Any] = {"json_serializer": _json_dumps, "json_deserializer": msgspec.json.decode}


def create_engine(url: str | sa.URL, **kwargs: Any) -> AsyncEngine:
    """An async engine with each backend's settings for this workload (tests use it directly).

    SQLite: WAL, a long busy timeout, foreign keys on, and ``BEGIN IMMEDIATE`` so a
    transaction that will write takes the write lock up front (no upgrade deadlocks).
    PostgreSQL and MariaDB/MySQL: READ COMMITTED, so ``SKIP LOCKED`` claims see fresh rows.
    """
    parsed = normalize_url(url)
    kwargs = {**_JSON, **kwargs}
    if _is_sqlite(parsed):
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


def _sqlite_file_engine(
    url: sa.URL, *, busy_timeout_ms: int = SQLITE_BUSY_TIMEOUT_MS
) -> sa.Engine | None:
    """A synchronous engine on the same SQLite file; None if ``url`` is no file.

    In-memory databases cannot be shared with a second engine, so they have none.
    ``busy_timeout_ms``: how long a statement waits for a locked file.
    """
    database = url.database
    if not _is_sqlite(url) or not database or database == ":memory:" or "mode=memory" in database:
        return None
    engine = sa.create_engine(
        url.set(drivername="sqlite"), connect_args={"check_same_thread": False}, **_JSON
    )
    _tune_sqlite(engine, busy_timeout_ms)
    return engine
