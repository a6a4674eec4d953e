"""The façade users import: submit a CSV, read status and output, run the executor."""

from __future__ import annotations

import logging
import os
import socket
import tempfile
import uuid
from collections.abc import AsyncIterator, Iterator, Sequence
from contextlib import asynccontextmanager
from datetime import datetime, timedelta
from functools import partial
from pathlib import Path
from typing import IO, Any
from uuid import UUID

import anyio
import msgspec
import pluggy
import sqlalchemy as sa

from imgcore import _manage
from imgcore._checks import (
    MAX_CLIENT,
    MAX_POSITION,
    READ_CHUNK,
    Source,
    as_uuid,
    check_client,
    check_page,
    check_range,
    chunks,
)
from imgcore._clock import utcnow
from imgcore._codecs import select_codecs
from imgcore._compression.pool import Compressor
from imgcore._csvio import CsvHeader, CsvParser, Product
from imgcore._db import outbox
from imgcore._db import requests as queries
from imgcore._db.database import Database
from imgcore._db.requests import Cursor
from imgcore._fetch import Fetcher
from imgcore._netguard import validate_webhook_url
from imgcore._notify.dispatcher import Dispatcher
from imgcore._outputs import image_of_key, output_chunks, with_urls
from imgcore._pipeline import Pipeline
from imgcore._plugins import create_plugin_manager, plugin_migrations
from imgcore._probe import PROBE_PREFIX, StorageProbe
from imgcore._storage.filesystem import FileStorage
from imgcore._thumbnails import Thumbnails
from imgcore._work import LeasedWork
from imgcore.config import Config, ConfigError
from imgcore.contracts import Executor, Notifier, Storage, Work
from imgcore.errors import (
    ImageNotFoundError,
    RequestNotFoundError,
    TooManyImagesError,
)
from imgcore.models import DeliveryInfo, ProductInfo, ProductProgress, RequestInfo
from imgcore.presets import Preset, load_presets, recorded_preset, resolve_preset
from imgcore.states import RequestStatus

__all__ = [
    "MAX_CLIENT",
    "MAX_ID",
    "MAX_POSITION",
    "PROBE_PREFIX",
    "Engine",
    "ImageNotFoundError",
    "RequestNotFoundError",
]

log = logging.getLogger("imgcore.engine")

# A product as inserted: (position, row, serial, name, urls, extra).
Row = tuple[int, int, int, str, Sequence[str], Sequence[str]]

# Rows inserted per statement while a CSV is submitted: large enough to be fast, small
# enough that memory stays flat for a million-row file.
INSERT_BATCH = 2000
# Uploads up to this size are spooled in memory, larger ones in a temporary file.
SPOOL_IN_MEMORY = 8 * 1024 * 1024
# Pages up to this many products are short reads (see Database.read): a few milliseconds.
SHORT_PAGE = 100
MAX_ID = 2**63 - 1
"""The largest image id and row offset: 64-bit integers in every database."""


def _worker_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


class Engine:
    """imgcore in one object. Use as ``async with Engine(config) as engine: …``.

    Entering connects to the database (upgrading an embedded SQLite database to the
    current schema), opens the storage and the downloader; ``run()`` or ``running()``
    processes images until stopped.
    """

    def __init__(
        self,
        config: Config | None = None,
        *,
        plugin_manager: pluggy.PluginManager | None = None,
        owner: str | None = None,
    ) -> None:
        self.config = config if config is not None else Config.from_env()
        self.pm = plugin_manager if plugin_manager is not None else create_plugin_manager()
        self.database = Database(
            self.config.database_url,
            migrations=plugin_migrations(self.pm),
        )
        """Every database read and write goes through it (``read(fn)``, ``write(fn)``)."""
        storage = self.pm.hook.imgcore_storage(url=self.config.storage_url, config=self.config)
        if storage is None:
            raise ConfigError(
                f"no storage backend for {self.config.storage_url!r}: is its plugin installed?"
            )
        self.storage: Storage = storage
        self.notifiers: list[Notifier] = [
            notifier
            for notifiers in self.pm.hook.imgcore_notifiers(config=self.config)
            for notifier in notifiers
        ]
        self.owner = owner or _worker_name()
        workers = self.config.workers or os.cpu_count() or 1
        codecs = select_codecs(self.pm, self.config.codec)
        self.presets = load_presets(
            self.config, outputs=frozenset().union(*(spec.outputs for spec in codecs))
        )
        """The presets a request may choose, by name: ``default``, ``catalog``, the file's."""
        self._compressor = Compressor(
            self.config.compress_options(),
            workers=workers,
            mode=self.config.compress_pool,
            codecs=codecs,
        )
        self.fetcher = Fetcher(self.config.fetch_options())
        self.dispatcher = Dispatcher(
            self.database,
            self.notifiers,
            owner=self.owner,
            poll_interval=self.config.poll_interval,
            # Longer than any one attempt may take, so a live attempt is never taken over.
            lease=timedelta(seconds=max(60.0, 2 * self.config.webhook_timeout)),
        )
        pipeline = Pipeline(
            config=self.config,
            database=self.database,
            storage=self.storage,
            fetcher=self.fetcher,
            compressor=self._compressor,
            notifiers=self.notifiers,
            pm=self.pm,
            owner=self.owner,
            on_settled=lambda _settlement: self.dispatcher.wake(),
        )
        work: Work = LeasedWork(
            database=self.database,
            pipeline=pipeline,
            lease=timedelta(seconds=self.config.lease_seconds),
            fetch_concurrency=self.config.fetch_concurrency,
            compression_workers=self._compressor.workers,
        )
        executor = self.pm.hook.imgcore_executor(
            name=self.config.executor, work=work, config=self.config
        )
        if executor is None:
            raise ConfigError(
                f"no executor named {self.config.executor!r}: is its plugin installed?"
            )
        self.executor: Executor = executor
        self.thumbnails = Thumbnails(self.database, self.storage)
        self._probe = StorageProbe(self.storage)
        self._started = False
        # Presets of requests /media has served: a request's preset never changes.
        self._request_presets: dict[UUID, Preset] = {}

    # -- lifecycle --------------------------------------------------------------------------

    async def __aenter__(self) -> Engine:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def start(self) -> None:
        """Connect and check (or, for SQLite, bring up to date) the database schema."""
        if self._started:
            return
        if self.database.embedded:
            await self.database.upgrade()
        else:
            missing = await self.database.missing()
            if missing:
                current = await self.database.revisions()
                raise ConfigError(
                    f"the database schema is at {', '.join(sorted(current)) or 'nothing'}, "
                    f"this imgcore needs {', '.join(sorted(missing))}: run `imgcore db upgrade`"
                )
        await self.fetcher.__aenter__()
        self._started = True

    async def aclose(self) -> None:
        """Close connections, the downloader and the compression workers."""
        with anyio.CancelScope(shield=True):
            if self._started:
                await self.fetcher.aclose()
            await self.dispatcher.aclose()
            self._compressor.close()
            await self.storage.aclose()
            await self.database.dispose()
        self._started = False

    async def run(self, *, process: bool = True) -> None:
        """Process images and deliver notifications until cancelled.

        ``process=False`` leaves the executor out (an API process whose executor only
        enqueues, for workers elsewhere); notifications are still delivered.
        """
        async with self.running(process=process):
            await anyio.sleep_forever()

    @asynccontextmanager
    async def running(self, *, process: bool = True) -> AsyncIterator[Engine]:
        """Run the executor in the background for the duration of the block.

        ``process=False``: as for :meth:`run`, the executor does not take work here.
        """
        async with anyio.create_task_group() as tg:
            if process:
                await self._compressor.start()
                await tg.start(_start_executor, self.executor)
            tg.start_soon(self.dispatcher.run)
            try:
                yield self
            finally:
                tg.cancel_scope.cancel()

    # -- submitting -------------------------------------------------------------------------

    async def submit_csv(
        self,
        source: Source,
        *,
        webhook_url: str | None = None,
        filename: str | None = None,
        preset: str | None = None,
        client: str | None = None,
        max_unfinished: int | None = None,
    ) -> UUID:
        """Validate and store a CSV in one transaction; returns the new request's id.

        ``preset`` names one of :attr:`presets` (``None``: ``default``); its whole definition
        is recorded with the request. ``client``: who submits it (an opaque id, up to 64
        characters); the methods that take a ``client`` show that client only its own
        requests. ``max_unfinished``: raise :class:`TooManyImagesError` (and store nothing)
        if the client would then have more images not finished than that.

        Raises :class:`imgcore.UnknownPresetError` for an unknown preset name,
        :class:`imgcore.CsvValidationError` (and stores nothing) when the CSV
        is invalid. The input is validated while it streams in — a bad file fails as soon as
        the problem arrives — and spooled; rows are inserted once the whole file is valid, so
        a slow upload never holds a database transaction (on SQLite, the write lock) open.
        """
        check_client(client)
        chosen = resolve_preset(self.presets, preset)
        if webhook_url is not None:
            await self.validate_webhook_url(webhook_url)
        limits = self.config.csv_limits()
        with tempfile.SpooledTemporaryFile(max_size=SPOOL_IN_MEMORY) as spool:
            checker = CsvParser(limits)

            def take(chunk: bytes) -> None:
                checker.feed(chunk)
                spool.write(chunk)

            async for chunk in chunks(source):
                await anyio.to_thread.run_sync(take, chunk)
            checker.finish()  # raises CsvValidationError: nothing was stored
            spool.seek(0)
            request_id = await self._insert(
                spool, checker.header, webhook_url, filename, chosen, client, max_unfinished
            )
        await self.executor.submitted(request_id)
        return request_id

    async def _insert(
        self,
        spool: IO[bytes],
        header: CsvHeader | None,
        webhook_url: str | None,
        filename: str | None,
        preset: Preset,
        client: str | None,
        max_unfinished: int | None,
    ) -> UUID:
        assert header is not None  # finish() raised otherwise
        request_id = uuid.uuid4()
        now = utcnow()

        def insert(conn: sa.Connection, batches: Iterator[list[Row]]) -> tuple[int, int]:
            queries.create_request(
                conn,
                request_id=request_id,
                header=msgspec.to_builtins(header),
                filename=filename,
                webhook_url=webhook_url,
                now=now,
                preset=msgspec.to_builtins(preset),
                client=client,
            )
            total_products = total_images = 0
            for rows in batches:
                total_images += queries.add_products(conn, request_id, rows, now=now)
                total_products += len(rows)
            queries.set_request_totals(
                conn, request_id, total_products=total_products, total_images=total_images
            )
            if max_unfinished is not None:
                unfinished = queries.unfinished_images(conn, client)
                if unfinished > max_unfinished:
                    raise TooManyImagesError(unfinished=unfinished, limit=max_unfinished)
            return total_products, total_images

        # One transaction, fed one parsed batch at a time: all or nothing, memory flat.
        products, images = await self.database.write_stream(insert, self._parse(spool))
        log.info("request %s stored: %d products, %d images", request_id, products, images)
        return request_id

    async def _parse(self, spool: IO[bytes]) -> AsyncIterator[list[Row]]:
        """The spooled CSV's products as ``add_products`` rows, ``INSERT_BATCH`` at a time.

        Parsed on worker threads, so a large file does not stall the event loop.
        """
        parser = CsvParser(self.config.csv_limits())
        positions = 0
        batch: list[Product] = []
        while True:
            chunk = await anyio.to_thread.run_sync(spool.read, READ_CHUNK)
            batch.extend(
                await anyio.to_thread.run_sync(parser.feed, chunk) if chunk else parser.finish()
            )
            if len(batch) >= INSERT_BATCH or not chunk:
                yield [
                    (positions + i, p.row, p.serial, p.name, p.urls, p.extra)
                    for i, p in enumerate(batch)
                ]
                positions += len(batch)
                batch = []
            if not chunk:
                return

    async def validate_webhook_url(self, url: str) -> None:
        """Raise when ``url`` is not an http(s) URL the notifier would be allowed to call."""
        await validate_webhook_url(url, allow=self.config.fetch_allow)

    # -- reading ----------------------------------------------------------------------------

    async def status(self, request_id: UUID | str, *, client: str | None = None) -> RequestInfo:
        """A request's status and progress; raises :class:`RequestNotFoundError` (also when
        ``client`` is given and the request is another client's)."""
        return await _manage.owned(self.database, as_uuid(request_id), client)

    async def statuses(self, request_ids: Sequence[UUID]) -> dict[UUID, RequestInfo]:
        """Several requests' status in one read, by id (unknown ids are left out); for
        watching many requests at once, as a live progress feed does."""
        found = await self.database.read(
            lambda conn: queries.read_requests(conn, request_ids), short=True
        )
        return {info.request_id: info for info in found}

    async def unfinished_images(self, client: str | None) -> int:
        """How many images of ``client``'s running requests have not ended."""
        return await self.database.read(
            partial(queries.unfinished_images, client=client), short=True
        )

    async def snapshot(
        self, request_id: UUID | str, *, start: int = 0, limit: int = 100, client: str | None = None
    ) -> tuple[RequestInfo, list[ProductProgress], list[DeliveryInfo]]:
        """Status, a page of products as a status poll shows them, and the deliveries, read in
        one consistent go.

        Raises :class:`RequestNotFoundError`. This is what a status endpoint serves, polled
        often, so it is one read instead of three (on SQLite, on the event loop for pages of
        up to 100 products, else one trip to a worker thread), of only the columns it shows.
        :meth:`products` reads everything recorded about each image. Raises
        :class:`OutOfRangeError` when ``start + limit`` passes :data:`MAX_POSITION`.
        """
        check_page(start, limit)
        rid = as_uuid(request_id)

        def read(
            conn: sa.Connection,
        ) -> tuple[RequestInfo | None, list[ProductProgress], list[DeliveryInfo]]:
            info = queries.read_request(conn, rid)
            if info is None:
                return None, [], []
            page = queries.read_progress_page(
                conn, rid, start=start, limit=limit, url_for=self.storage.url_for
            )
            return info, page, outbox.read_deliveries(conn, rid)

        info, page, deliveries = await self.database.read(read, short=limit <= SHORT_PAGE)
        if info is None or not _manage.visible(info, client):
            raise RequestNotFoundError(request_id)
        return info, page, deliveries

    async def products(
        self, request_id: UUID | str, *, start: int = 0, limit: int = 100
    ) -> list[ProductInfo]:
        """Products ``start`` … ``start+limit-1`` of a request with their images' output URLs.

        Raises :class:`OutOfRangeError` when ``start + limit`` passes :data:`MAX_POSITION`.
        """
        check_page(start, limit)
        rid = as_uuid(request_id)
        page = await self.database.read(
            lambda conn: queries.read_product_page(conn, rid, start=start, limit=limit),
            short=limit <= SHORT_PAGE,
        )
        return [with_urls(product, self.storage.url_for) for product in page]

    async def deliveries(self, request_id: UUID | str) -> list[DeliveryInfo]:
        """A request's notifications and how their delivery went."""
        rid = as_uuid(request_id)
        return await self.database.read(lambda conn: outbox.read_deliveries(conn, rid), short=True)

    async def output_csv(
        self, request_id: UUID | str, *, client: str | None = None
    ) -> AsyncIterator[bytes]:
        """The output CSV, streamed in input order: the input columns plus ``Output Image Urls``.

        Raises :class:`RequestNotFoundError` before yielding anything for an unknown id (or
        another ``client``'s).
        """
        rid = as_uuid(request_id)
        if client is not None:
            await _manage.owned(self.database, rid, client)
        header = await self.database.read(lambda conn: queries.get_header(conn, rid), short=True)
        if header is None:
            raise RequestNotFoundError(request_id)
        return output_chunks(
            self.database,
            self.config,
            self.storage.url_for,
            rid,
            msgspec.convert(header, CsvHeader),
        )

    async def thumbnail(self, request_id: UUID | str, image_id: int) -> bytes:
        """A done image's thumbnail (JPEG within 256 x 256 pixels), made from its stored output
        the first time it is asked for, then stored beside it.

        Raises :class:`ImageNotFoundError` unless the request has a done image ``image_id``,
        :class:`OutOfRangeError` for an id no database can hold.
        """
        check_range("image_id", image_id, 1, MAX_ID)
        rid = as_uuid(request_id)
        data = await self.thumbnails.get(rid, image_id)
        if data is None:
            raise ImageNotFoundError(request_id, image_id)
        return data

    def media_path(self, key: str) -> Path | None:
        """The local file that holds ``key`` when storage is a directory (``file:``), else None.

        Raises :class:`StorageError` for a key that is invalid or would leave the directory.
        """
        if not isinstance(self.storage, FileStorage):
            return None
        return self.storage.path_for(key)

    async def alternatives(self, key: str) -> list[tuple[str, str]]:
        """``(key, format)`` of each stored variant holding the same picture as ``key`` (the
        same geometry in its preset), ``key`` first; just ``key`` when there is no other.
        How ``/media`` serves the best format a client accepts."""
        found = image_of_key(key)
        if found is None:
            return []
        rid, image_id = found
        preset = self._request_presets.get(rid)
        if preset is None:
            _, recorded = await self.database.read(
                lambda conn: queries.get_preset(conn, rid), short=True
            )
            if len(self._request_presets) >= 1024:
                self._request_presets.clear()
            preset = self._request_presets[rid] = recorded_preset(recorded, self.config)
        index = preset.index_of_key(rid, image_id, key)
        if index is None:
            return []
        same = sorted(preset.alternatives(index), key=lambda i: i != index)
        return [(preset.key(rid, image_id, i), preset.variants[i].format) for i in same]

    async def list_requests(self, **filters: Any) -> tuple[list[RequestInfo], int]:
        """Requests newest first (see :func:`imgcore._db.requests.list_requests` for filters).

        Raises :class:`OutOfRangeError` for a ``limit`` or ``offset`` outside 0 … :data:`MAX_ID`.
        """
        for name in ("limit", "offset"):
            if name in filters:
                check_range(name, filters[name], 0, MAX_ID)
        return await self.database.read(partial(queries.list_requests, **filters))

    async def wait(
        self, request_id: UUID | str, *, interval: float = 0.2, client: str | None = None
    ) -> RequestInfo:
        """Poll until the request is Completed or Failed (wrap in a timeout)."""
        while True:
            info = await self.status(request_id, client=client)
            if info.status.is_terminal:
                return info
            await anyio.sleep(interval)

    # -- operating ------------------------------------------------------------------------------

    async def check_storage(self, *, max_age: float = 5.0, probe_seconds: float = 2.0) -> None:
        """Raise :class:`StorageError` unless a small object can be written to the storage and
        deleted again (under :data:`PROBE_PREFIX`).

        The outcome is reused for ``max_age`` seconds and concurrent calls share one probe,
        so a readiness endpoint polled hard costs the storage one write per ``max_age``. A
        probe taking longer than ``probe_seconds`` fails (and that failure is reused too, so a
        hanging storage is not asked again by every caller).
        """
        await self._probe.check(max_age=max_age, probe_seconds=probe_seconds)

    async def requests_page(
        self,
        *,
        client: str | None = None,
        status: RequestStatus | None = None,
        created_after: datetime | None = None,
        created_before: datetime | None = None,
        after: Cursor | None = None,
        before: Cursor | None = None,
        limit: int = 50,
    ) -> tuple[list[RequestInfo], bool]:
        """A page of ``client``'s requests (None: everyone's) newest first, and whether more
        lie beyond it; ``after``/``before`` a request's ``(created_at, request_id)`` give the
        page following or preceding it (keyset pagination: stable while requests arrive)."""
        check_range("limit", limit, 1, 1000)
        return await _manage.page(
            self.database,
            client=client,
            status=status,
            created_after=created_after,
            created_before=created_before,
            after=after,
            before=before,
            limit=limit,
        )

    async def retry_failed(self, request_id: UUID | str, *, client: str | None = None) -> int:
        """Queue an ended request's failed images again; returns how many.

        Raises :class:`RequestStateError` while the request runs, and
        :class:`RequestNotFoundError` for an unknown id (or another ``client``'s).
        """
        rid = as_uuid(request_id)
        count = await _manage.retry(self.database, rid, client)
        if count:
            await self.executor.submitted(rid)
        return count

    async def cancel(self, request_id: UUID | str, *, client: str | None = None) -> int:
        """Cancel a running request; returns how many pending images were cancelled.

        Images in flight finish; the request then ends ``Failed`` with the error
        ``"cancelled"`` and its webhook is sent once. Raises :class:`RequestStateError` for a
        request that has ended, :class:`RequestNotFoundError` as :meth:`status` does.
        """
        count, settlement = await _manage.cancel(
            self.database, self.notifiers, as_uuid(request_id), client
        )
        if settlement is not None:
            self.dispatcher.wake()
        return count

    async def delete_request(self, request_id: UUID | str, *, client: str | None = None) -> bool:
        """Delete an ended request, its rows and its stored images.

        Raises :class:`RequestStateError` while it runs (cancel it first) and
        :class:`RequestNotFoundError` as :meth:`status` does.
        """
        return await _manage.delete(
            self.database, self.storage, as_uuid(request_id), client, self.config
        )


async def _start_executor(
    executor: Executor, *, task_status: anyio.abc.TaskStatus[None] = anyio.TASK_STATUS_IGNORED
) -> None:
    await executor.run(task_status=task_status)
