"""Who hears about a finished request: decided in the transaction that finishes it."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from imgcore.contracts import Notifier, Settlement

__all__ = ["Planned", "plan_deliveries"]

Planned = tuple[str, str, str | None, dict[str, Any]]
"""A delivery to record: ``(notifier name, event, target, payload)``."""


def plan_deliveries(notifiers: Sequence[Notifier], settlement: Settlement) -> list[Planned]:
    """One delivery per notifier whose ``target`` wants to hear about ``settlement``.

    The event is ``request.completed`` or ``request.failed``; the payload is computed now and
    stored, so every attempt sends the same body.
    """
    event = f"request.{settlement.status.value.lower()}"
    planned: list[Planned] = []
    for notifier in notifiers:
        target = notifier.target(settlement)
        if target is not None:
            planned.append((notifier.name, event, target, notifier.payload(settlement)))
    return planned
