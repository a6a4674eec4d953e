"""Processing one claimed image: download, compress, store, record — the same for every executor."""

from __future__ import annotations

import hashlib
import inspect
import logging
import random
import time
from collections.abc import Callable, Iterable
from datetime import datetime, timedelta
from typing import Any, NamedTuple
from uuid import UUID

import anyio.to_thread
import msgspec
import pluggy
import sqlalchemy as sa

from imgcore._clock import utcnow
from imgcore._compress import ImageError
from imgcore._compression.pool import Compressor
from imgcore._db import images, outbox, requests, sources
from imgcore._db.batching import GroupCommit
from imgcore._db.database import Database
from imgcore._db.images import ImageResult
from imgcore._fetch import FetchedImage, Fetcher, FetchError, Validators
from imgcore._notify.planning import plan_deliveries
from imgcore._reuse import SourceLocks, SourceLookups, reason_without_asking, recipe
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

# Requests a pipeline keeps what it needs of at once (one small read per request beyond that).
_REQUEST_CACHE = 1024


class _Request(NamedTuple):
    preset: Preset
    client: str
    """The request's client, '' for none: sources are remembered per client."""
    recipe: str


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
        self._requests: dict[UUID, _Request] = {}
        self._locks = SourceLocks()
        self._lookups = SourceLookups(database)
        # A re-import ends hundreds of images a second, each in a few statements.
        self._group = GroupCommit(database)

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
        if deadline <= utcnow():
            # Its time ran out between attempts: a restart, a queue, a lease taken over.
            message = (
                f"the image deadline of {self.config.image_deadline:g} s passed "
                f"before attempt {claim.attempts}"
            )
            await self._fail(claim, "deadline_exceeded", message, started)
            return
        request = await self._request(claim.request_id)
        try:
            if not self.config.reuse:
                await self._download(claim, request, deadline, started, remember=False)
                return
            # One image of a source at a time: the next one finds what this one recorded.
            async with self._locks.hold((request.client, claim.url, request.recipe)):
                await self._reimport(claim, request, deadline, started)
        except FetchError as exc:
            await self._error(claim, exc.reason, str(exc), exc.transient, deadline, started)

    async def _reimport(
        self, claim: Claim, request: _Request, deadline: datetime, started: float
    ) -> None:
        """Reuse what is remembered of the claimed image's source if the origin still serves
        that content (or need not be asked), else download and make the outputs anew."""
        known = await self._lookups.get(request.client, claim.url, request.recipe)
        # The outputs made from the content the origin last served, for this recipe.
        if known is None or known.rendition_id is None:
            await self._download(claim, request, deadline, started, remember=True)
            return
        reason = reason_without_asking(
            known, request_id=claim.request_id, max_age=self.config.reuse_max_age, now=utcnow()
        )
        if reason is not None and await self._reuse(claim, request, known, reason, started):
            return
        fetched_or_none: FetchedImage | None = None
        if known.etag or known.last_modified:
            validators = Validators(etag=known.etag, last_modified=known.last_modified)
            fetched_or_none = await self.fetcher.fetch_changed(
                claim.url, validators, deadline=_monotonic(deadline)
            )
            if fetched_or_none is None and await self._reuse(
                claim, request, known, "not_modified", started
            ):
                return
        fetched = fetched_or_none or await self.fetcher.fetch(
            claim.url, deadline=_monotonic(deadline)
        )
        # Off the event loop: hashing a large photo takes a millisecond or more.
        content_hash = await anyio.to_thread.run_sync(_sha256, fetched.data)
        if known.content_hash == content_hash and await self._reuse(
            claim, request, known, "same_content", started, fetched
        ):
            return
        await self._make(claim, request, fetched, content_hash, deadline, started, True)

    async def _download(
        self, claim: Claim, request: _Request, deadline: datetime, started: float, *, remember: bool
    ) -> None:
        """Download the claimed image and make its outputs (nothing to reuse)."""
        fetched = await self.fetcher.fetch(claim.url, deadline=_monotonic(deadline))
        # Off the event loop: hashing a large photo takes a millisecond or more.
        content_hash = await anyio.to_thread.run_sync(_sha256, fetched.data)
        await self._make(claim, request, fetched, content_hash, deadline, started, remember)

    async def _make(
        self,
        claim: Claim,
        request: _Request,
        fetched: FetchedImage,
        content_hash: str,
        deadline: datetime,
        started: float,
        remember: bool = False,
    ) -> None:
        """Compress, store and record a downloaded image, and with ``remember`` its source
        and rendition, for later imports to reuse."""
        preset = request.preset
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
        if not remember:
            await self._finish(claim, result, started)
            return
        now = utcnow()

        def record(conn: sa.Connection) -> tuple[sources.Recorded, bool]:
            recorded = sources.finish_new(
                conn,
                claim,
                owner=self.owner,
                client=request.client,
                recipe=request.recipe,
                etag=fetched.etag,
                last_modified=fetched.last_modified,
                result=result,
                now=now,
            )
            self._plan(conn, recorded.settlement, now)
            lost = not recorded.ended and images.shows_other_outputs(
                conn, claim.id, result.storage_key
            )
            return recorded, lost

        try:
            recorded, lost = await self.database.write(record)
        except sa.exc.IntegrityError:
            # Another worker remembered the same source or rendition at the same moment: now
            # that it has, this finds it.
            recorded, lost = await self.database.write(record)
        if recorded.adopted or lost:
            # The image shows another worker's outputs of the same content, or another
            # outcome: what this attempt stored belongs to nothing.
            await self._delete_outputs(result)
        if not recorded.ended:
            log.warning("lease on image %s was lost; another worker ends it", claim.id)
            return
        await self._ended(claim, recorded.result, recorded.settlement, started)

    async def _reuse(
        self,
        claim: Claim,
        request: _Request,
        known: sources.Known,
        reason: str,
        started: float,
        fetched: FetchedImage | None = None,
    ) -> bool:
        """End the image done with the outputs ``known`` names; False if that rendition is
        gone meanwhile (its last user deleted)."""
        rendition_id = known.rendition_id
        assert rendition_id is not None  # the caller reuses only a known rendition
        now = utcnow()
        validators = None if fetched is None else (fetched.etag, fetched.last_modified)

        def reuse(conn: sa.Connection) -> tuple[bool, Settlement | None, ImageResult] | None:
            outcome = sources.finish_reused(
                conn,
                claim,
                owner=self.owner,
                rendition_id=rendition_id,
                content_hash=known.content_hash,
                reason=reason,
                client=request.client,
                now=now,
                validators=validators,
            )
            if outcome is not None:
                self._plan(conn, outcome[1], now)
            return outcome

        outcome = await self._group.write(reuse)
        if outcome is None:
            return False
        ended, settlement, result = outcome
        if not ended:
            log.warning("lease on image %s was lost; another worker ends it", claim.id)
            return True
        if claim.attempts > 1:
            # An earlier attempt may have stored outputs under this image's own keys.
            await self._delete_keys(self._own_keys(claim, request.preset))
        saved = (result.input_bytes or 0) if fetched is None else 0
        await self._ended(claim, result, settlement, started, saved_bytes=saved)
        return True

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

    async def _request(self, request_id: UUID) -> _Request:
        """What processing needs of a request: the preset it recorded (``default`` from the
        settings for a request stored before presets), its client and recipe; cached, since
        none of them ever changes."""
        request = self._requests.get(request_id)
        if request is None:
            found = await self.database.read(
                lambda conn: requests.get_preset_and_client(conn, request_id), short=True
            )
            recorded, client = found if found is not None else (None, None)
            preset = recorded_preset(recorded, self.config)
            request = _Request(
                preset=preset,
                client=client or "",
                recipe=recipe(preset, self.compressor.options, self.compressor.codecs),
            )
            if len(self._requests) >= _REQUEST_CACHE:
                self._requests.clear()
            self._requests[request_id] = request
        return request

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
        request = await self._request(claim.request_id)
        await self._delete_keys(self._own_keys(claim, request.preset))
        result = ImageResult(status=ImageStatus.FAILED, error_reason=reason, error=message)
        await self._finish(claim, result, started)

    @staticmethod
    def _own_keys(claim: Claim, preset: Preset) -> list[str]:
        """Every key an attempt of the claimed image may have stored: its outputs in any
        format, each variant of its preset, its thumbnail."""
        return list(
            dict.fromkeys(
                [
                    *(storage_key(claim, ext) for _, ext in OUTPUT_FORMATS.values()),
                    storage_key(claim, THUMBNAIL_EXTENSION),
                    *preset.keys(claim.request_id, claim.id),
                ]
            )
        )

    async def _delete_outputs(self, result: ImageResult) -> None:
        keys = [result.storage_key, *(v["key"] for v in result.variants or ())]
        await self._delete_keys(dict.fromkeys(k for k in keys if k))

    async def _delete_keys(self, keys: Iterable[str]) -> None:
        for key in keys:
            try:
                await self.storage.delete(key)
            except Exception:
                # Whatever a storage plugin raises, the image must still end (else it is
                # reclaimed forever); an object left behind is logged, not fatal.
                log.warning("could not delete %s", key, exc_info=True)

    def _plan(self, conn: sa.Connection, settlement: Settlement | None, now: datetime) -> None:
        """Record the notifications of a request that just settled, in its transaction."""
        if settlement is not None:
            outbox.add_deliveries(
                conn, settlement.request_id, plan_deliveries(self.notifiers, settlement), now=now
            )

    async def _finish(self, claim: Claim, result: ImageResult, started: float) -> None:
        now = utcnow()

        def finish(conn: sa.Connection) -> tuple[bool, Settlement | None, bool]:
            ended, settlement = images.finish_image(
                conn, claim, owner=self.owner, result=result, now=now
            )
            self._plan(conn, settlement, now)
            # Ended otherwise meanwhile (cancelled while this attempt ran on a lost lease):
            # what this attempt stored belongs to no image.
            lost = not ended and images.shows_other_outputs(conn, claim.id, result.storage_key)
            return ended, settlement, lost

        ended, settlement, lost = await self.database.write(finish)
        if not ended:
            log.warning("lease on image %s was lost; another worker ends it", claim.id)
            if lost and result.status is ImageStatus.DONE:
                await self._delete_outputs(result)
            return
        await self._ended(claim, result, settlement, started)

    async def _ended(
        self,
        claim: Claim,
        result: ImageResult,
        settlement: Settlement | None,
        started: float,
        *,
        saved_bytes: int = 0,
    ) -> None:
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
                reused=result.reused,
                saved_bytes=saved_bytes,
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


def _monotonic(deadline: datetime) -> float:
    """``deadline`` as a :func:`time.monotonic` time, for the downloader."""
    return time.monotonic() + (deadline - utcnow()).total_seconds()
