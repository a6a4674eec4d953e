"""Processing one claimed image: download, compress, store, record — the same for every executor."""

from __future__ import annotations

import hashlib
import inspect
import logging
import random
import time
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any
from uuid import UUID

import anyio.to_thread
import msgspec
import pluggy
import sqlalchemy as sa

from imgcore._clock import utcnow
from imgcore._compress import ImageError
from imgcore._compression.pool import Compressor
from imgcore._db import images, outbox, requests
from imgcore._db.database import Database
from imgcore._db.images import ImageResult
from imgcore._fetch import Fetcher, FetchError
from imgcore._notify.planning import plan_deliveries
from imgcore._thumbnails import THUMBNAIL_EXTENSION
from imgcore.config import Config
from imgcore.contracts import (
    OUTPUT_FORMATS,
    Claim,
    CompressedImage,
    ImageEnded,
    Notifier,
    Settlement,
    Storage,
    image_key,
)
from imgcore.errors import StorageError
from imgcore.presets import Preset, recorded_preset
from imgcore.states import ImageStatus

__all__ = ["Pipeline", "storage_key"]

log = logging.getLogger("imgcore.pipeline")

# Requests whose presets a pipeline keeps at once (one small read per request beyond that).
_PRESET_CACHE = 1024


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
        self._presets: dict[UUID, Preset] = {}

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
        preset = await self._preset(claim.request_id)
        try:
            outputs = await self._compress(fetched.data, preset)
        except ImageError as exc:
            # A dead worker may be the OOM killer rather than this image: worth another try.
            transient = exc.reason == "worker_crashed"
            await self._error(claim, exc.reason, str(exc), transient, deadline, started)
            return
        variants: list[dict[str, Any]] = []
        # Each variant at the key its preset fixes (recorded with the request): a crash
        # between two puts leaves only keys that the next attempt replaces, or _fail deletes.
        for index, (variant, image) in enumerate(zip(preset.variants, outputs, strict=True)):
            key = preset.key(claim.request_id, claim.id, index)
            try:
                await self.storage.put(key, image.data, content_type=image.media_type)
            except StorageError as exc:
                await self._error(claim, exc.reason, str(exc), exc.transient, deadline, started)
                return
            variants.append(
                {
                    "name": variant.name,
                    "key": key,
                    "format": image.format,
                    "width": image.width,
                    "height": image.height,
                    "bytes": image.output_bytes,
                }
            )
        first = outputs[0]
        # Off the event loop: hashing a large photo takes a millisecond or more.
        content_hash = await anyio.to_thread.run_sync(_sha256, fetched.data)
        result = ImageResult(
            status=ImageStatus.DONE,
            storage_key=preset.key(claim.request_id, claim.id, 0),
            input_bytes=first.input_bytes,
            output_bytes=first.output_bytes,
            input_width=first.input_width,
            input_height=first.input_height,
            output_width=first.width,
            output_height=first.height,
            input_format=first.input_format,
            output_format=first.format,
            variants=variants,
            content_hash=content_hash,
        )
        await self._finish(claim, result, started)

    async def _compress(self, data: bytes, preset: Preset) -> list[CompressedImage]:
        """Every variant of ``preset`` from one decode of ``data``.

        One ``contain`` variant without trim is the single output as before presets (the
        engine's options with the variant's box, format and quality: ``keep_original`` and
        all), so ``default`` writes exactly what imgcore always wrote."""
        if len(preset.variants) == 1 and preset.variants[0].fit == "contain":
            variant = preset.variants[0]
            if not variant.trim:
                options = msgspec.structs.replace(
                    self.compressor.options,
                    format=variant.format,
                    quality=variant.quality,
                    max_width=variant.width,
                    max_height=variant.height,
                    background=variant.background,
                )
                return [await self.compressor(data, options)]
        return await self.compressor.variants(data, preset.variants)

    async def _preset(self, request_id: UUID) -> Preset:
        """The preset ``request_id`` recorded (``default`` from the settings for a request
        stored before presets); cached, since a request's preset never changes."""
        preset = self._presets.get(request_id)
        if preset is None:
            _, recorded = await self.database.read(
                lambda conn: requests.get_preset(conn, request_id), short=True
            )
            preset = recorded_preset(recorded, self.config)
            if len(self._presets) >= _PRESET_CACHE:
                self._presets.clear()
            self._presets[request_id] = preset
        return preset

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
        # An earlier attempt may have stored outputs (any variant, in any format) or a
        # thumbnail before dying: a failed image keeps no object.
        preset = await self._preset(claim.request_id)
        keys = dict.fromkeys(
            [
                *(storage_key(claim, ext) for _, ext in OUTPUT_FORMATS.values()),
                storage_key(claim, THUMBNAIL_EXTENSION),
                *preset.keys(claim.request_id, claim.id),
            ]
        )
        for key in keys:
            try:
                await self.storage.delete(key)
            except Exception:
                # Whatever a storage plugin raises, the image must still end failed (else it
                # is reclaimed forever); an object left behind is logged, not fatal.
                log.warning("could not delete %s", key, exc_info=True)
        result = ImageResult(status=ImageStatus.FAILED, error_reason=reason, error=message)
        await self._finish(claim, result, started)

    async def _delete_outputs(self, result: ImageResult) -> None:
        keys = [result.storage_key, *(v["key"] for v in result.variants or ())]
        for key in dict.fromkeys(k for k in keys if k):
            try:
                await self.storage.delete(key)
            except Exception:
                log.warning("could not delete %s", key, exc_info=True)

    async def _finish(self, claim: Claim, result: ImageResult, started: float) -> None:
        now = utcnow()

        def finish(conn: sa.Connection) -> tuple[bool, Settlement | None, bool]:
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
            # Ended failed meanwhile (cancelled while this attempt ran on a lost lease): what
            # this attempt stored belongs to no image.
            orphaned = not ended and images.image_failed(conn, claim.id)
            return ended, settlement, orphaned

        ended, settlement, orphaned = await self.database.write(finish)
        if not ended:
            log.warning("lease on image %s was lost; another worker ends it", claim.id)
            if orphaned and result.status is ImageStatus.DONE:
                await self._delete_outputs(result)
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


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()
