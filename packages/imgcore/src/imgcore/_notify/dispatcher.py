"""Delivers recorded notifications: claims due deliveries and hands each to its notifier."""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import timedelta
from functools import partial

import anyio
import sqlalchemy as sa

from imgcore._clock import utcnow
from imgcore._db import outbox
from imgcore._db.database import Database
from imgcore.contracts import DeliveryClaim, DeliveryOutcome, Notifier

__all__ = ["Dispatcher"]

log = logging.getLogger("imgcore.notify")


class Dispatcher:
    """At-least-once delivery of the ``deliveries`` table, surviving restarts.

    A delivery is leased while it is being attempted; a process that dies mid-attempt leaves
    it to be tried again once the lease expires. Stopping (cancelling :meth:`run`) hands the
    attempts in flight back at once, due now, and closes the notifiers.
    """

    def __init__(
        self,
        database: Database,
        notifiers: list[Notifier],
        *,
        owner: str,
        poll_interval: float = 1.0,
        lease: timedelta = timedelta(seconds=60),
        batch: int = 16,
    ) -> None:
        self.database = database
        self.notifiers = {notifier.name: notifier for notifier in notifiers}
        self.owner = owner
        self.poll_interval = poll_interval
        self.lease = lease
        self.batch = batch
        self._wake = anyio.Event()
        # The earliest retry this dispatcher scheduled: it wakes for it rather than wait
        # for the next poll, so short retry delays are kept.
        self._next_retry: float | None = None

    def wake(self) -> None:
        """Look for due deliveries now."""
        self._wake.set()

    async def run(self) -> None:
        """Deliver until cancelled, then close the notifiers."""
        try:
            while True:
                try:
                    delivered = await self.run_once()
                except Exception:
                    log.exception("notification dispatch failed; retrying")
                    delivered = 0
                if delivered:
                    continue
                self._wake = anyio.Event()
                with anyio.move_on_after(self._idle_time()):
                    await self._wake.wait()
        finally:
            await self.aclose()

    def _idle_time(self) -> float:
        if self._next_retry is None:
            return self.poll_interval
        wait = self._next_retry - anyio.current_time()
        if wait > self.poll_interval:
            return self.poll_interval
        self._next_retry = None
        return max(wait, 0.0)

    async def aclose(self) -> None:
        """Close every notifier that has an ``aclose`` (idempotent; delivery may resume)."""
        with anyio.CancelScope(shield=True):
            for notifier in self.notifiers.values():
                close = getattr(notifier, "aclose", None)
                if close is None:
                    continue
                try:
                    await close()
                except Exception:
                    log.exception("closing notifier %s failed", notifier.name)

    async def run_once(self) -> int:
        """Attempt every due delivery once; returns how many were attempted."""
        claims = await self.database.write(
            partial(
                outbox.claim_deliveries,
                owner=self.owner,
                limit=self.batch,
                lease=self.lease,
                now=utcnow(),
            )
        )
        if claims:
            async with anyio.create_task_group() as tg:
                for claim in claims:
                    tg.start_soon(self._attempt, claim)
        return len(claims)

    async def _attempt(self, claim: DeliveryClaim) -> None:
        notifier = self.notifiers.get(claim.notifier)
        if notifier is None:
            outcome = DeliveryOutcome(
                delivered=False, retry=True, error=f"notifier {claim.notifier!r} is not loaded"
            )
        else:
            try:
                outcome = await notifier.deliver(claim)
            except anyio.get_cancelled_exc_class():
                # Shutting down mid-attempt: the receiver may or may not have it. Hand the
                # delivery back due now rather than leave it leased until the lease expires.
                await self.database.write(
                    partial(
                        outbox.retry_delivery_later,
                        claim=claim,
                        owner=self.owner,
                        at=utcnow(),
                        status_code=None,
                        error="interrupted by shutdown",
                        now=utcnow(),
                    )
                )
                raise
            except Exception as exc:
                log.exception("notifier %s raised", claim.notifier)
                outcome = DeliveryOutcome(delivered=False, retry=True, error=repr(exc))
        now = utcnow()
        delay = None
        if not outcome.delivered and outcome.retry and notifier is not None:
            delay = notifier.retry_delay(claim.attempts)
        elif not outcome.delivered and outcome.retry:
            delay = 60.0
        record: Callable[[sa.Connection], bool]
        if outcome.delivered or delay is None:
            record = partial(
                outbox.finish_delivery,
                claim=claim,
                owner=self.owner,
                status="delivered" if outcome.delivered else "failed",
                status_code=outcome.status_code,
                error=None if outcome.delivered else outcome.error,
                now=now,
            )
        else:
            due = anyio.current_time() + delay
            if self._next_retry is None or due < self._next_retry:
                self._next_retry = due
            record = partial(
                outbox.retry_delivery_later,
                claim=claim,
                owner=self.owner,
                at=now + timedelta(seconds=delay),
                status_code=outcome.status_code,
                error=outcome.error,
                now=now,
            )
        await self.database.write(record)
        log.info(
            "delivery %s (%s → %s): %s",
            claim.message_id,
            claim.notifier,
            claim.target,
            "delivered" if outcome.delivered else (outcome.error or outcome.status_code),
        )
