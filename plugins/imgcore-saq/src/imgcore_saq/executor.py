"""The SAQ executor: the API enqueues one job per image, worker processes anywhere run them.

The database stays the truth. A job only names an image; its worker claims that image with
the same lease the local executor uses, so a job delivered twice, or run for an image that
already ended, does nothing. Job keys are deterministic (``<queue>:img-<id>``): enqueueing an
image that already has a job waiting is a no-op, which makes reconciliation — enqueueing every
unfinished image of the database that has no job — safe to run at any time.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import AsyncIterator, Iterator, Sequence
from contextlib import asynccontextmanager, contextmanager
from datetime import datetime, timedelta
from functools import partial
from typing import TYPE_CHECKING
from uuid import UUID

import anyio
import anyio.abc
import sqlalchemy as sa
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream
from imgcore._clock import utcnow
from imgcore._db import images
from saq.job import TERMINAL_STATUSES, Job
from saq.queue import Queue
from saq.types import Context, PartialTimersDict
from saq.worker import Worker

from imgcore_saq.queues import open_queue
from imgcore_saq.settings import SaqSettings

if TYPE_CHECKING:
    from imgcore.contracts import Claim
    from imgcore.engine import Engine

__all__ = ["JOB_FUNCTION", "SaqExecutor"]

log = logging.getLogger("imgcore.executor.saq")

JOB_FUNCTION = "imgcore_process_image"
"""The name workers register the job function under: ``image_id`` is its one argument."""

# Image ids read (and jobs looked up) per database query when enqueueing.
BATCH = 500

# First retry after a second, doubling up to a minute (SAQ adds full jitter).
RETRY_DELAY = 1.0
RETRY_BACKOFF_MAX = 60.0

# How long SAQ keeps a finished job's record (for inspection; not needed for correctness).
JOB_TTL = 300


class _StopNoise(logging.Filter):
    # SAQ warns at every stop without a grace period; stopping at once is how we stop.
    def filter(self, record: logging.LogRecord) -> bool:
        return not record.getMessage().startswith("Some tasks did not finish within the shutdown")


@contextmanager
def _quiet_saq_stop() -> Iterator[None]:
    saq_log, noise = logging.getLogger("saq"), _StopNoise()
    saq_log.addFilter(noise)
    try:
        yield
    finally:
        saq_log.removeFilter(noise)


class _Worker(Worker[Context]):
    # The process's owner (imgcore worker, imgapi) handles SIGINT/SIGTERM and cancels us.
    SIGNALS = []  # noqa: RUF012


class SaqExecutor:
    """Runs images as SAQ jobs: ``submitted`` enqueues, ``run`` works the queue.

    One job per image, keyed by the image id. A worker claims the image in the database
    before processing it, renews that lease and the job's heartbeat while it works, and gives
    it back when it is cancelled; a job whose image ended or is leased elsewhere does nothing
    but look again when that lease or retry time has passed.
    """

    def __init__(self, engine: Engine, settings: SaqSettings) -> None:
        self.engine = engine
        self.settings = settings
        config = engine.config
        self.lease = timedelta(seconds=config.lease_seconds)
        self.concurrency = settings.concurrency or config.fetch_concurrency
        self.timeout = settings.job_timeout(config)
        # A job untouched this long belongs to a dead worker: the sweep retries it. Touched
        # with every lease renewal (a third of the lease), and expiring with the lease.
        self.heartbeat = max(1, math.ceil(config.lease_seconds))
        self._queue: Queue | None = None
        self._submissions: MemoryObjectSendStream[UUID] | None = None
        self._inflight: dict[int, Job] = {}
        self._look_again: dict[str, float] = {}
        self._stopping = False

    # -- jobs ------------------------------------------------------------------------------------

    def job_key(self, image_id: int) -> str:
        """The one key an image's job ever has in this queue."""
        return f"{self.settings.queue}:img-{image_id}"

    def new_job(self, image_id: int, *, scheduled: float = 0) -> Job:
        """The job that processes ``image_id``, runnable now or at epoch second ``scheduled``."""
        return Job(
            function=JOB_FUNCTION,
            kwargs={"image_id": image_id},
            key=self.job_key(image_id),
            timeout=self.timeout,
            heartbeat=self.heartbeat,
            retries=self.settings.retries,
            retry_delay=RETRY_DELAY,
            retry_backoff=RETRY_BACKOFF_MAX,
            ttl=JOB_TTL,
            scheduled=math.ceil(scheduled),
        )

    def open_queue(self, *, small: bool = False) -> Queue:
        """A new, unconnected queue object for the configured URL and name."""
        return open_queue(self.settings.queue_url, self.settings.queue, small=small)

    # -- enqueueing --------------------------------------------------------------------------------

    async def submitted(self, request_id: UUID) -> None:
        """Enqueue a job for every unfinished image of the request (once each).

        While ``run`` runs, in its background: the upload answers as soon as the request is
        stored. Otherwise now. A queue outage is logged, not raised: the request is stored,
        and the workers' reconciliation enqueues it once the queue is back.
        """
        if self._submissions is not None:
            self._submissions.send_nowait(request_id)
            return
        await self._enqueue_request(request_id)

    async def _enqueue_request(self, request_id: UUID) -> None:
        try:
            async with self._connected_queue() as queue:
                count = await self.enqueue_unfinished(queue, request_id)
        except Exception:
            log.exception(
                "request %s is stored but its jobs could not be enqueued; workers enqueue it "
                "at their next reconciliation (IMGCORE_SAQ_RECONCILE_SECONDS)",
                request_id,
            )
            return
        log.info("request %s: %d jobs enqueued", request_id, count)

    async def _enqueuer(self, submissions: MemoryObjectReceiveStream[UUID]) -> None:
        # Requests left here at shutdown are enqueued by the workers' reconciliation.
        async for request_id in submissions:
            await self._enqueue_request(request_id)

    async def enqueue_unfinished(self, queue: Queue, request_id: UUID | None = None) -> int:
        """Enqueue the unfinished images (of a request, or all) that have no job waiting.

        Returns how many jobs were added. An image whose job is queued or running is skipped;
        one whose job finished (a job that found it not due yet, say) gets a new one.
        """
        added = 0
        after = 0
        while True:
            ids = await self.engine.database.read(
                partial(
                    images.pending_image_ids, request_id=request_id, after_id=after, limit=BATCH
                )
            )
            if not ids:
                return added
            jobs = await queue.jobs([self.job_key(i) for i in ids])
            missing = [
                image_id
                for image_id, job in zip(ids, jobs, strict=True)
                if job is None or job.status in TERMINAL_STATUSES
            ]
            added += await self._enqueue(queue, missing)
            after = ids[-1]

    async def reconcile(self, queue: Queue) -> int:
        """Enqueue every unfinished image of the database that has no job (see above)."""
        return await self.enqueue_unfinished(queue, None)

    async def _enqueue(self, queue: Queue, image_ids: Sequence[int]) -> int:
        added = 0

        async def one(image_id: int) -> None:
            nonlocal added
            if await queue.enqueue(self.new_job(image_id)) is not None:
                added += 1

        # Concurrent round trips; the queue bounds them (Redis semaphore, PostgreSQL pool).
        async with anyio.create_task_group() as tg:
            for image_id in image_ids:
                tg.start_soon(one, image_id)
        return added

    @asynccontextmanager
    async def _connected_queue(self) -> AsyncIterator[Queue]:
        if self._queue is not None:
            yield self._queue
            return
        queue = self.open_queue(small=True)
        await queue.connect()
        try:
            yield queue
        finally:
            with anyio.CancelScope(shield=True):
                await queue.disconnect()

    # -- working -----------------------------------------------------------------------------------

    async def run(
        self, *, task_status: anyio.abc.TaskStatus[None] = anyio.TASK_STATUS_IGNORED
    ) -> None:
        """Work the queue until cancelled; then give unfinished images back.

        Meanwhile ``submitted`` enqueues through this connection, in the background. With
        ``IMGCORE_SAQ_CONSUME=false`` that is all it does (the process never works jobs).
        """
        queue = self.open_queue()
        await queue.connect()
        send, receive = anyio.create_memory_object_stream[UUID](math.inf)
        try:
            async with anyio.create_task_group() as tg:
                tg.start_soon(self._enqueuer, receive)
                self._queue, self._submissions = queue, send
                if not self.settings.consume:
                    task_status.started()
                    await anyio.sleep_forever()
                await self._work(queue, task_status)
        finally:
            self._queue = self._submissions = None
            send.close()
            receive.close()
            with anyio.CancelScope(shield=True):
                await queue.disconnect()

    async def _work(self, queue: Queue, task_status: anyio.abc.TaskStatus[None]) -> None:
        owner = self.engine.pipeline.owner
        worker = _Worker(
            queue,
            functions=[(JOB_FUNCTION, self._process_job)],
            concurrency=self.concurrency,
            after_process=self._after_job,
            # SAQ's defaults, but for the sweep (every 60 s): dead workers' jobs come back sooner.
            timers=PartialTimersDict(
                schedule=1, worker_info=10, abort=1, sweep=self.settings.sweep_seconds
            ),
            cancellation_hard_deadline_s=5.0,
            metadata={"owner": owner},
        )
        self._stopping = False
        # SAQ runs on asyncio tasks of its own; they must outlive our cancellation long
        # enough to hand their jobs back, so the worker gets its own task and an explicit stop.
        working = asyncio.create_task(worker.start())
        try:
            async with anyio.create_task_group() as tg:
                tg.start_soon(self._keep_alive)
                tg.start_soon(self._reconcile_loop, queue)
                task_status.started()
                await asyncio.shield(working)
                raise RuntimeError("the SAQ worker stopped")
        finally:
            self._stopping = True
            with anyio.CancelScope(shield=True):
                with _quiet_saq_stop():
                    await worker.stop()
                await asyncio.gather(working, return_exceptions=True)
                released = await self.engine.database.write(
                    partial(images.release_images, owner=owner, now=utcnow())
                )
                if released:
                    log.info("returned %d unfinished images to the queue", released)

    async def _process_job(self, ctx: Context, *, image_id: int) -> str:
        job = ctx.get("job")
        if job is None:
            raise RuntimeError("SAQ called the job function without its job")
        owner = self.engine.pipeline.owner
        now = utcnow()

        def claim_or_due(conn: sa.Connection) -> tuple[list[Claim], datetime | None]:
            claims = images.claim_image_ids(
                conn, [image_id], owner=owner, lease=self.lease, now=now
            )
            return claims, None if claims else images.image_due_at(conn, image_id)

        claims, due = await self.engine.database.write(claim_or_due)
        if not claims:
            if due is None:
                return "ended"  # done or failed already (or deleted): a duplicate job
            self._look_again_at(job, due)
            return "not due"
        claim = claims[0]
        self._inflight[claim.id] = job
        try:
            await self.engine.pipeline.process(claim)
        except anyio.get_cancelled_exc_class():
            # A timeout or an abort (at shutdown, run() gives every image back at once).
            if not self._stopping:
                with anyio.CancelScope(shield=True):
                    await self._give_back(claim)
            raise
        finally:
            self._inflight.pop(claim.id, None)
        # A transient error leaves the image pending until its retry time; a lost lease
        # leaves it with another worker until that lease ends.
        due = await self.engine.database.read(partial(images.image_due_at, image_id=image_id))
        if due is not None:
            self._look_again_at(job, due)
            return "deferred"
        return "processed"

    def _look_again_at(self, job: Job, due: datetime) -> None:
        # Picked up by _after_job, once SAQ has finished this run of the job's key.
        self._look_again[job.key] = due.timestamp()

    async def _after_job(self, ctx: Context) -> None:
        job = ctx.get("job")
        if job is None or job.kwargs is None:
            return
        at = self._look_again.pop(job.key, None)
        if at is None:
            return
        # At least a second ahead: a PostgreSQL queue replaces a finished job only with a
        # later-scheduled one.
        scheduled = max(at, time.time()) + 1
        await job.get_queue().enqueue(self.new_job(job.kwargs["image_id"], scheduled=scheduled))

    async def _give_back(self, claim: Claim) -> None:
        try:
            await self.engine.database.write(
                partial(
                    images.defer_image,
                    claim=claim,
                    owner=self.engine.pipeline.owner,
                    at=utcnow(),
                    error_reason="job_cancelled",
                    error=f"the job was cancelled (timeout {self.timeout} s, or aborted)",
                )
            )
        except Exception:
            log.exception("could not give image %s back; its lease expires", claim.id)

    async def _keep_alive(self) -> None:
        owner = self.engine.pipeline.owner
        while True:
            await anyio.sleep(self.lease.total_seconds() / 3)
            if not self._inflight:
                continue
            ids = list(self._inflight)
            try:
                await self.engine.database.write(
                    partial(images.renew_leases, owner=owner, ids=ids, until=utcnow() + self.lease)
                )
            except Exception:
                log.exception("could not renew leases")
            async with anyio.create_task_group() as tg:
                for image_id in ids:
                    job = self._inflight.get(image_id)
                    if job is not None:
                        tg.start_soon(self._heartbeat, job)

    async def _heartbeat(self, job: Job) -> None:
        try:
            await job.update()  # SAQ's heartbeat: stamps the job as touched now
        except Exception:
            log.exception("could not touch job %s", job.key)

    async def _reconcile_loop(self, queue: Queue) -> None:
        while True:
            try:
                added = await self.reconcile(queue)
            except Exception:
                log.exception("reconciliation failed")
            else:
                if added:
                    log.warning("enqueued %d unfinished images that had no job", added)
            if not self.settings.reconcile_seconds:
                return
            await anyio.sleep(self.settings.reconcile_seconds)
