"""Processing one claimed image: download, compress, store, record — the same for every executor."""

from __future__ import annotations

import inspect
import logging
import random
import time
from collections.abc import Callable
from datetime import datetime, timedelta

import pluggy
import sqlalchemy as sa

from imgcore._clock import utcnow
from imgcore._compress import ImageError
from imgcore._compression.pool import Compressor
from imgcore._db import images, outbox
from imgcore._db.database import Database
from imgcore._db.images import ImageResult
from imgcore._fetch import Fetcher, FetchError
from imgcore._notify.planning import plan_deliveries
from imgcore._thumbnails import THUMBNAIL_EXTENSION
from imgcore.config import Config
from imgcore.contracts import (
    OUTPUT_FORMATS,
    Claim,
    ImageEnded,
    Notifier,
    Settlement,
    Storage,
    image_key,
)
from imgcore.errors import StorageError
from imgcore.states import ImageStatus

__all__ = ["Pipeline", "storage_key"]

log = logging.getLogger("imgcore.pipeline")


def storage_key(claim: Claim, extension: str) -> str:
    """Where a claimed image's output lives (see :func:`imgcore.contracts.image_key`)."""
    return image_key(claim.request_id, claim.id, extension)


class Pipeline:
    """Download → compress → store → record, for one claimed image at a time."""

    def __init__(
        self,
        *,
        config: Config,
        database: Database,
        storage: Storage,
        fetcher: Fetcher,
        compressor: Compressor,
        notifiers: list[Notifier],
        pm: pluggy.PluginManager,
        owner: str,
        on_settled: Callable[[Settlement], None] | None = None,
    ) -> None:
        self.config = config
        self.database = database
        self.storage = storage
        self.fetcher = fetcher
        self.compressor = compressor
        self.notifiers = notifiers
        self.pm = pm
        self.owner = owner
        self.on_settled = on_settled

    def deadline(self, claim: Claim) -> datetime:
        """When the claimed image must have ended: its first claim plus the image deadline."""
        first = claim.started_at or utcnow()
        return first + timedelta(seconds=self.config.image_deadline)

    async def process(self, claim: Claim) -> None:
        """Take one claimed image to its next state; never raises for a bad image."""
        started = time.perf_counter()
        if claim.attempts > self.config.max_attempts:
            # Claimed this often without ending: it crashed its workers (or they were killed).
            await self._fail(claim, "too_many_attempts", "gave up after repeated crashes", started)
            return
        deadline = self.deadline(claim)
        left = (deadline - utcnow()).total_seconds()
        if left <= 0:
            # Its time ran out between attempts: a restart, a queue, a lease taken over.
            message = (
                f"the image deadline of {self.config.image_deadline:g} s passed "
                f"before attempt {claim.attempts}"
            )
            await self._fail(claim, "deadline_exceeded", message, started)
            return
        try:
            fetched = await self.fetcher.fetch(claim.url, deadline=time.monotonic() + left)
        except FetchError as exc:
            await self._error(claim, exc.reason, str(exc), exc.transient, deadline, started)
            return
        try:
            image = await self.compressor(fetched.data)
        except ImageError as exc:
            # A dead worker may be the OOM killer rather than this image: worth another try.
            transient = exc.reason == "worker_crashed"
            await self._error(claim, exc.reason, str(exc), transient, deadline, started)
            return
        key = storage_key(claim, image.extension)
        try:
            await self.storage.put(key, image.data, content_type=image.media_type)
        except StorageError as exc:
            await self._error(claim, exc.reason, str(exc), exc.transient, deadline, started)
            return
        result = ImageResult(
            status=ImageStatus.DONE,
            storage_key=key,
            input_bytes=image.input_bytes,
            output_bytes=image.output_bytes,
            input_width=image.input_width,
            input_height=image.input_height,
            output_width=image.width,
            output_height=image.height,
            input_format=image.input_format,
            output_format=image.format,
        )
        await self._finish(claim, result, started)

    async def _error(
        self,
        claim: Claim,
        reason: str,
        message: str,
        transient: bool,
        deadline: datetime,
        started: float,
    ) -> None:
        if not transient or claim.attempts >= self.config.max_attempts:
            await self._fail(claim, reason, message, started)
            return
        delay = min(60.0, 2.0**claim.attempts) * (0.5 + random.random() / 2)
        at = utcnow() + timedelta(seconds=delay)
        if at >= deadline:
            # The retry could not start in time: end now, with the error that was the cause.
            message = (
                f"the image deadline of {self.config.image_deadline:g} s passes before "
                f"attempt {claim.attempts + 1}; last error ({reason}): {message}"
            )
            await self._fail(claim, "deadline_exceeded", message, started)
            return
        await self.database.write(
            lambda conn: images.defer_image(
                conn, claim, owner=self.owner, at=at, error_reason=reason, error=message
            )
        )

    async def _fail(self, claim: Claim, reason: str, message: str, started: float) -> None:
        # An earlier attempt may have stored an output (in any format) or a thumbnail before
        # dying: a failed image keeps no object.
        for extension in (*(ext for _, ext in OUTPUT_FORMATS.values()), THUMBNAIL_EXTENSION):
            try:
                await self.storage.delete(storage_key(claim, extension))
            except Exception:
                # Whatever a storage plugin raises, the image must still end failed (else it
                # is reclaimed forever); an object left behind is logged, not fatal.
                log.warning("could not delete %s", storage_key(claim, extension), exc_info=True)
        result = ImageResult(status=ImageStatus.FAILED, error_reason=reason, error=message)
        await self._finish(claim, result, started)

    async def _finish(self, claim: Claim, result: ImageResult, started: float) -> None:
        now = utcnow()

        def finish(conn: sa.Connection) -> tuple[bool, Settlement | None]:
            ended, settlement = images.finish_image(
                conn, claim, owner=self.owner, result=result, now=now
            )
            if settlement is not None:
                outbox.add_deliveries(
                    conn,
                    settlement.request_id,
                    plan_deliveries(self.notifiers, settlement),
                    now=now,
                )
            return ended, settlement

        ended, settlement = await self.database.write(finish)
        if not ended:
            log.warning("lease on image %s was lost; another worker ends it", claim.id)
            return
        if settlement is not None and self.on_settled is not None:
            self.on_settled(settlement)
        await self._emit(
            ImageEnded(
                request_id=claim.request_id,
                image_id=claim.id,
                url=claim.url,
                status=result.status,
                attempts=claim.attempts,
                storage_key=result.storage_key,
                error_reason=result.error_reason,
                error=result.error,
                input_bytes=result.input_bytes,
                output_bytes=result.output_bytes,
                seconds=time.perf_counter() - started,
            )
        )

    async def _emit(self, event: ImageEnded) -> None:
        # Observers cannot change processing, nor stop each other: each implementation is
        # called on its own and its errors are logged, never raised.
        for impl in self.pm.hook.imgcore_image_ended.get_hookimpls():
            try:
                result = impl.function(event=event)
                if inspect.isawaitable(result):
                    await result
            except Exception:
                log.exception("imgcore_image_ended hook of %s failed", impl.plugin_name)
