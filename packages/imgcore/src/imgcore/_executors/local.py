"""The built-in executor: claims work from the database and runs it in this process.

It uses only what any executor plugin gets: its :class:`~imgcore.plugin.Work` and the config.
"""

from __future__ import annotations

import logging
import math
import random
from uuid import UUID

import anyio
import anyio.abc

from imgcore.plugin import Claim, Config, Work, hookimpl

__all__ = ["LocalExecutor"]

log = logging.getLogger("imgcore.executor")

#: Seconds the claim loop waits after a failed claim, doubling up to the cap (±50% jitter).
CLAIM_RETRY_FIRST = 0.5
CLAIM_RETRY_MAX = 10.0


class LocalExecutor:
    """Keeps up to ``capacity`` images in flight: downloads overlap, compression uses every core.

    Every claim is a lease renewed while the work runs, so several executor processes can
    share one database, and the images of one that died are taken over once its leases expire.
    """

    def __init__(self, work: Work, config: Config, *, capacity: int | None = None) -> None:
        self.work = work
        self.capacity = capacity or max(work.fetch_concurrency, 2 * work.compression_workers)
        self.lease = work.lease
        self.poll_interval = config.poll_interval
        self._inflight: dict[int, Claim] = {}
        self._wake = anyio.Event()

    async def submitted(self, request_id: UUID) -> None:
        """New work is in the database: look now instead of at the next poll."""
        self._wake.set()

    async def run(
        self, *, task_status: anyio.abc.TaskStatus[None] = anyio.TASK_STATUS_IGNORED
    ) -> None:
        """Claim and process until cancelled; then give unfinished images back to the queue."""
        try:
            async with anyio.create_task_group() as work, anyio.create_task_group() as loops:
                loops.start_soon(self._renew_leases)
                task_status.started()
                try:
                    await self._claim_loop(work)
                finally:
                    loops.cancel_scope.cancel()
        finally:
            try:
                released = await self.work.release()
            except Exception:
                # The database is unreachable: the leases expire instead.
                log.warning("could not return unfinished images to the queue", exc_info=True)
                released = 0
            if released:
                log.info("returned %d unfinished images to the queue", released)

    async def _claim_loop(self, work: anyio.abc.TaskGroup) -> None:
        # Batches of at least a quarter of the capacity: fewer claiming transactions.
        batch = max(1, math.ceil(self.capacity / 4))
        retry = 0.0
        while True:
            free = self.capacity - len(self._inflight)
            claims: list[Claim] = []
            if free >= batch or (free > 0 and not self._inflight):
                try:
                    claims = await self.work.claim(free)
                except Exception:
                    # The database restarting or unreachable must not stop the executor.
                    # Any exception: drivers raise their own on connect (asyncpg's OSError
                    # for a refused connection is not wrapped by SQLAlchemy).
                    retry = min(CLAIM_RETRY_MAX, 2 * retry or CLAIM_RETRY_FIRST)
                    log.exception("claiming images failed; trying again in %.1f s", retry)
                    await anyio.sleep(retry * random.uniform(0.5, 1.5))
                    continue
                retry = 0.0
                for claim in claims:
                    self._inflight[claim.id] = claim
                    work.start_soon(self._process, claim)
            if claims and len(claims) == free:
                continue
            self._wake = anyio.Event()
            with anyio.move_on_after(self.poll_interval if not self._inflight else 5.0):
                await self._wake.wait()

    async def _process(self, claim: Claim) -> None:
        try:
            await self.work.process(claim)
        except Exception:
            # A bug or a database outage: the lease expires and the image is tried again.
            log.exception("processing image %s failed unexpectedly", claim.id)
        finally:
            # A lease lost under load lets this executor claim the image again while the
            # first attempt still runs; only the newest claim of an image stays in flight
            # (the database settles whichever still holds the lease).
            if self._inflight.get(claim.id) is claim:
                del self._inflight[claim.id]
            self._wake.set()

    async def _renew_leases(self) -> None:
        while True:
            await anyio.sleep(self.lease.total_seconds() / 3)
            ids = list(self._inflight)
            if not ids:
                continue
            try:
                await self.work.renew(ids)
            except Exception:
                log.exception("could not renew leases")


@hookimpl
def imgcore_executor(name: str, work: Work, config: Config) -> LocalExecutor | None:
    """``local``: the in-process executor (the default)."""
    return LocalExecutor(work, config) if name == "local" else None
