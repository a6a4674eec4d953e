"""The notification seam: who hears about a finished request, and how."""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

import msgspec

from imgcore.db.repo import DeliveryClaim, Settlement

__all__ = ["DeliveryOutcome", "Notifier"]


class DeliveryOutcome(msgspec.Struct, frozen=True, kw_only=True):
    """How one delivery attempt went.

    ``delivered``: done. Otherwise ``retry`` says whether to try again later (a receiver that
    is down or answers 5xx) or give up (a receiver that answered 410 Gone, or a permanent error).
    """

    delivered: bool
    retry: bool = True
    status_code: int | None = None
    error: str | None = None


@runtime_checkable
class Notifier(Protocol):
    """Delivers notifications of finished requests.

    ``name`` is stored with each delivery and must be unique among loaded notifiers and
    stable across versions: a delivery recorded under a name no loaded notifier has waits
    until one does. Delivery is at least once (a crash mid-attempt means another attempt),
    so receivers de-duplicate on the delivery's ``message_id``.

    A notifier holding connections or files may also define ``async def aclose(self)``;
    it is called when delivery stops, and a later ``deliver`` must work again.
    """

    name: str

    def target(self, settlement: Settlement) -> str | None:
        """Where to notify about ``settlement``, or ``None`` to stay silent."""
        ...

    def payload(self, settlement: Settlement) -> dict[str, Any]:
        """The JSON-able body of the notification (stored, then sent on every attempt)."""
        ...

    async def deliver(self, delivery: DeliveryClaim) -> DeliveryOutcome:
        """Make one delivery attempt; never raise for an unreachable receiver.

        Bound the attempt in time (the delivery is leased for 60 s; an attempt still
        running after that may be repeated elsewhere). An exception counts as a failed
        attempt to retry.
        """
        ...

    def retry_delay(self, attempts: int) -> float | None:
        """Seconds before attempt ``attempts + 1`` (``attempts`` made so far, from 1), or
        ``None`` to give up."""
        ...
