"""Notifiers: the protocol, the built-in webhook notifier and the delivery loop.

A notifier plugin needs only the names exported here.
"""

from __future__ import annotations

from imgcore.db.repo import DeliveryClaim, Settlement
from imgcore.notify.base import DeliveryOutcome, Notifier

__all__ = ["DeliveryClaim", "DeliveryOutcome", "Notifier", "Settlement"]
