"""The delivery outbox: notifications recorded with a request's ending, leased to deliver.

Every function takes a connection inside a transaction that
:class:`imgcore._db.database.Database` opened.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import Any
from uuid import UUID

import sqlalchemy as sa

from imgcore._db.tables import deliveries
from imgcore.contracts import DeliveryClaim
from imgcore.models import DeliveryInfo

_D = deliveries.c

__all__ = [
    "add_deliveries",
    "claim_deliveries",
    "finish_delivery",
    "read_deliveries",
    "retry_delivery_later",
]


def add_deliveries(
    conn: sa.Connection,
    request_id: UUID,
    planned: Iterable[tuple[str, str, str | None, dict[str, Any]]],
    *,
    now: datetime,
) -> int:
    """Record ``(notifier, event, target, payload)`` notifications to deliver (same transaction)."""
    rows = [
        {
            "request_id": request_id,
            "message_id": f"msg_{uuid.uuid4().hex}",
            "notifier": notifier,
            "event": event,
            "target": target,
            "payload": payload,
            "status": "pending",
            "available_at": now,
            "created_at": now,
            "updated_at": now,
        }
        for notifier, event, target, payload in planned
    ]
    if rows:
        conn.execute(deliveries.insert(), rows)
    return len(rows)


def claim_deliveries(
    conn: sa.Connection, *, owner: str, limit: int, lease: timedelta, now: datetime
) -> list[DeliveryClaim]:
    """Lease up to ``limit`` notifications that are due."""
    rows = (
        conn.execute(
            sa.select(deliveries)
            .where(_D.status.in_(("pending", "sending")), _D.available_at <= now)
            .order_by(_D.available_at, _D.id)
            .limit(limit)
            .with_for_update(skip_locked=True)
        )
    ).all()
    if not rows:
        return []
    conn.execute(
        deliveries.update()
        .where(_D.id.in_([row.id for row in rows]))
        .values(
            status="sending",
            lease_owner=owner,
            available_at=now + lease,
            attempts=_D.attempts + 1,
            updated_at=now,
        )
    )
    return [
        DeliveryClaim(
            id=row.id,
            request_id=row.request_id,
            message_id=row.message_id,
            notifier=row.notifier,
            event=row.event,
            target=row.target,
            payload=row.payload,
            attempts=row.attempts + 1,
            created_at=row.created_at,
        )
        for row in rows
    ]


def finish_delivery(
    conn: sa.Connection,
    claim: DeliveryClaim,
    *,
    owner: str,
    status: str,
    status_code: int | None,
    error: str | None,
    now: datetime,
) -> bool:
    """End a notification as ``delivered`` or ``failed`` (given up)."""
    result = conn.execute(
        deliveries.update()
        .where(_D.id == claim.id, _D.status == "sending", _D.lease_owner == owner)
        .values(
            status=status,
            lease_owner=None,
            last_status_code=status_code,
            last_error=error,
            updated_at=now,
            delivered_at=now if status == "delivered" else None,
        )
    )
    return result.rowcount == 1


def retry_delivery_later(
    conn: sa.Connection,
    claim: DeliveryClaim,
    *,
    owner: str,
    at: datetime,
    status_code: int | None,
    error: str | None,
    now: datetime,
) -> bool:
    """Give a notification back, due again at ``at``."""
    result = conn.execute(
        deliveries.update()
        .where(_D.id == claim.id, _D.status == "sending", _D.lease_owner == owner)
        .values(
            status="pending",
            lease_owner=None,
            available_at=at,
            last_status_code=status_code,
            last_error=error,
            updated_at=now,
        )
    )
    return result.rowcount == 1


_DELIVERIES = (
    sa.select(deliveries).where(_D.request_id == sa.bindparam("request_id")).order_by(_D.id)
)


def read_deliveries(conn: sa.Connection, request_id: UUID) -> list[DeliveryInfo]:
    """A request's notifications, oldest first."""
    rows = conn.execute(_DELIVERIES, {"request_id": request_id}).all()
    return [
        DeliveryInfo(
            id=row.id,
            message_id=row.message_id,
            notifier=row.notifier,
            event=row.event,
            target=row.target,
            status=row.status,
            attempts=row.attempts,
            last_status_code=row.last_status_code,
            last_error=row.last_error,
            created_at=row.created_at,
            delivered_at=row.delivered_at,
            next_attempt_at=row.available_at if row.status == "pending" else None,
        )
        for row in rows
    ]
