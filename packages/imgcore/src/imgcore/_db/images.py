"""Image claims and leases: what executors call to take, renew, end and give back work.

Claims are leases: a claimed image's ``available_at`` is when its lease expires, so work of a
process that died becomes claimable again without any bookkeeping. PostgreSQL and MariaDB/MySQL
claim with ``FOR UPDATE SKIP LOCKED``; SQLite serialises writers (``BEGIN IMMEDIATE``), which
makes one claiming transaction enough. Every function takes a connection inside a transaction
that :class:`imgcore._db.database.Database` opened.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any
from uuid import UUID

import msgspec
import sqlalchemy as sa

from imgcore._db.tables import images, requests
from imgcore.contracts import Claim, Settlement
from imgcore.states import ImageStatus, RequestStatus, failure_summary, settle

_I = images.c
_R = requests.c

__all__ = [
    "ImageResult",
    "claim_image_ids",
    "claim_images",
    "defer_image",
    "done_image_keys",
    "finish_image",
    "image_due_at",
    "pending_image_ids",
    "release_images",
    "renew_leases",
    "set_thumbnail_key",
    "settle_request",
    "shows_other_outputs",
]


class ImageResult(msgspec.Struct, frozen=True, kw_only=True):
    """What processing one image produced, stored when it ends."""

    status: ImageStatus
    storage_key: str | None = None
    error_reason: str | None = None
    error: str | None = None
    input_bytes: int | None = None
    output_bytes: int | None = None
    input_width: int | None = None
    input_height: int | None = None
    output_width: int | None = None
    output_height: int | None = None
    input_format: str | None = None
    output_format: str | None = None
    variants: list[dict[str, Any]] | None = None
    """Each variant's output (name, key, format, width, height, bytes), in preset order."""
    content_hash: str | None = None
    """SHA-256 of the downloaded source, hex."""
    rendition_id: int | None = None
    """The rendition (see :mod:`imgcore._db.sources`) whose outputs these are."""
    reused: str | None = None
    """Why the outputs were reused (``not_modified``, ``same_content``, ``max_age``)."""


def claim_images(
    conn: sa.Connection, *, owner: str, limit: int, lease: timedelta, now: datetime
) -> list[Claim]:
    """Lease up to ``limit`` due images, shared fairly among the clients with work.

    First the processing images whose lease expired (their worker died), then pending ones:
    each client with a running request gets an equal share of what is left (its oldest
    requests first, each in input order), a client with fewer due images leaving the rest to
    the others; the client served first changes at random. So one client's huge import
    takes at most its share while another client's small request waits.
    """
    rows = list(conn.execute(_EXPIRED, {"now": now, "limit": limit}).all())
    picked = {row.id for row in rows}
    running = conn.execute(_RUNNING).all()
    by_client: dict[str | None, list[UUID]] = {}
    for request in running:
        by_client.setdefault(request.client, []).append(request.id)
    clients = list(by_client.values())
    if clients:
        start = random.randrange(len(clients))
        clients = clients[start:] + clients[:start]
    left = limit - len(rows)
    while left > 0 and clients:
        share = -(-left // len(clients))  # ceil: every client may take its whole share
        hungry = []
        for request_ids in clients:
            want = min(share, left)
            got = _pending_of(conn, request_ids, want, picked, now)
            rows += got
            left -= len(got)
            if len(got) == want:
                hungry.append(request_ids)  # it may have more
            if left <= 0:
                break
        clients = hungry
    if not rows:
        return []
    return _lease(conn, rows, owner=owner, lease=lease, now=now)


_CLAIM_COLUMNS = (_I.id, _I.request_id, _I.url, _I.attempts, _I.started_at)
_EXPIRED = (
    sa.select(*_CLAIM_COLUMNS)
    .where(_I.status == ImageStatus.PROCESSING.value, _I.available_at <= sa.bindparam("now"))
    .order_by(_I.available_at, _I.id)
    .limit(sa.bindparam("limit"))
    .with_for_update(skip_locked=True)
)
_RUNNING = (
    sa.select(_R.id, _R.client)
    .where(_R.status.in_((RequestStatus.PENDING.value, RequestStatus.IN_PROCESS.value)))
    .order_by(_R.created_at, _R.id)
)


def _pending_of(
    conn: sa.Connection, request_ids: Sequence[UUID], want: int, picked: set[int], now: datetime
) -> list[Any]:
    """Up to ``want`` due pending images of ``request_ids`` (in that order), locked, skipping
    those already ``picked`` in this claim (and adding theirs)."""
    found: list[Any] = []
    for request_id in request_ids:
        if len(found) >= want:
            break
        query = sa.select(*_CLAIM_COLUMNS).where(
            _I.request_id == request_id,
            _I.status == ImageStatus.PENDING.value,
            _I.available_at <= now,
        )
        if picked:
            query = query.where(_I.id.not_in(picked))
        rows = conn.execute(
            query.order_by(_I.id).limit(want - len(found)).with_for_update(skip_locked=True)
        ).all()
        found += rows
        picked.update(row.id for row in rows)
    return found


def _lease(
    conn: sa.Connection,
    rows: Sequence[Any],
    *,
    owner: str,
    lease: timedelta,
    now: datetime,
) -> list[Claim]:
    """Lease the locked image ``rows`` (id, request_id, url, attempts, started_at) to ``owner``."""
    conn.execute(
        images.update()
        .where(_I.id.in_([row.id for row in rows]))
        .values(
            status=ImageStatus.PROCESSING.value,
            lease_owner=owner,
            available_at=now + lease,
            attempts=_I.attempts + 1,
            started_at=sa.func.coalesce(_I.started_at, now),
        )
    )
    # Sorted, so concurrent claimers lock request rows in one order.
    request_ids = sorted({row.request_id for row in rows})
    conn.execute(
        requests.update()
        .where(_R.id.in_(request_ids), _R.status == RequestStatus.PENDING.value)
        .values(status=RequestStatus.IN_PROCESS.value, updated_at=now)
    )
    return [
        Claim(
            id=row.id,
            request_id=row.request_id,
            url=row.url,
            attempts=row.attempts + 1,
            started_at=row.started_at or now,
        )
        for row in rows
    ]


def renew_leases(conn: sa.Connection, *, owner: str, ids: Sequence[int], until: datetime) -> int:
    """Extend the leases ``owner`` still holds on ``ids``; returns how many it still holds."""
    if not ids:
        return 0
    result = conn.execute(
        images.update()
        .where(
            _I.id.in_(list(ids)),
            _I.lease_owner == owner,
            _I.status == ImageStatus.PROCESSING.value,
        )
        .values(available_at=until)
    )
    return result.rowcount


def finish_image(
    conn: sa.Connection,
    claim: Claim,
    *,
    owner: str,
    result: ImageResult,
    now: datetime,
) -> tuple[bool, Settlement | None]:
    """End a claimed image as done or failed, and settle its request if it was the last.

    Returns ``(ended, settlement)``: ``ended`` is False when the lease was lost (another worker
    owns the image now and will end it); ``settlement`` is set only for the one call that moved
    the request to its terminal status.
    """
    if not result.status.is_terminal:
        raise ValueError(f"not a terminal image status: {result.status}")
    values = {f"v_{name}": value for name, value in msgspec.structs.asdict(result).items()}
    values["v_status"] = result.status.value
    ended = conn.execute(_FINISH, {**values, "image_id": claim.id, "owner": owner, "now": now})
    if ended.rowcount != 1:
        return False, None
    # The row lock this update takes serialises every finisher of the request, so exactly one
    # of them sees the last count.
    conn.execute(
        _COUNT_DONE if result.status is ImageStatus.DONE else _COUNT_FAILED,
        {
            "request_id": claim.request_id,
            "add_input": result.input_bytes or 0,
            "add_output": result.output_bytes or 0,
            "add_reused": 1 if result.reused else 0,
            "now": now,
        },
    )
    return True, settle_request(conn, claim.request_id, now=now)


# Built once: building a statement costs more than SQLite takes to run it, and every image
# ends through these.
_FINISH = (
    images.update()
    .where(
        _I.id == sa.bindparam("image_id"),
        _I.status == ImageStatus.PROCESSING.value,
        _I.lease_owner == sa.bindparam("owner"),
    )
    .values(
        {
            **{
                name: sa.bindparam(f"v_{name}", type_=images.c[name].type)
                for name in ImageResult.__struct_fields__
            },
            "lease_owner": None,
            "finished_at": sa.bindparam("now", type_=images.c.finished_at.type),
        }
    )
)


def _count(counter: str) -> sa.Update:
    return (
        requests.update()
        .where(_R.id == sa.bindparam("request_id"))
        .values(
            {
                counter: requests.c[counter] + 1,
                "input_bytes": _R.input_bytes + sa.bindparam("add_input"),
                "output_bytes": _R.output_bytes + sa.bindparam("add_output"),
                "reused_images": _R.reused_images + sa.bindparam("add_reused"),
                "updated_at": sa.bindparam("now", type_=_R.updated_at.type),
            }
        )
    )


_COUNT_DONE = _count("done_images")
_COUNT_FAILED = _count("failed_images")


def shows_other_outputs(conn: sa.Connection, image_id: int, storage_key: str | None) -> bool:
    """Whether the image ended without the outputs at ``storage_key`` (and its variants):
    failed (a cancel, or another worker, ended it), or done showing other outputs (reused,
    or made by another attempt). Outputs an attempt stored then belong to nothing."""
    row = conn.execute(sa.select(_I.status, _I.storage_key).where(_I.id == image_id)).first()
    if row is None or row.status == ImageStatus.FAILED.value:
        return True
    return bool(row.status == ImageStatus.DONE.value and row.storage_key != storage_key)


_SETTLING = (
    sa.select(
        _R.status,
        _R.total_images,
        _R.done_images,
        _R.failed_images,
        _R.webhook_url,
        _R.cancelled_at,
    )
    .where(_R.id == sa.bindparam("request_id"))
    .with_for_update()
)


def settle_request(conn: sa.Connection, request_id: UUID, *, now: datetime) -> Settlement | None:
    """Move an in-process request whose images all ended to its terminal status.

    Returns the settlement for the one call that moved it, else None. A cancelled request
    ends ``Failed`` with the error ``"cancelled"`` whatever its counts.
    """
    row = conn.execute(_SETTLING, {"request_id": request_id}).one()
    terminal = settle(row.total_images, row.done_images, row.failed_images)
    if terminal is None or row.status != RequestStatus.IN_PROCESS.value:
        return None
    error = None
    if row.cancelled_at is not None:
        terminal, error = RequestStatus.FAILED, "cancelled"
    elif row.failed_images:
        failed = conn.execute(
            sa.select(_I.error_reason, sa.func.count())
            .where(_I.request_id == request_id, _I.status == ImageStatus.FAILED.value)
            .group_by(_I.error_reason)
        ).all()
        error = failure_summary(row.total_images, {r or "error": n for r, n in failed})
    moved = conn.execute(
        requests.update()
        .where(_R.id == request_id, _R.status == RequestStatus.IN_PROCESS.value)
        .values(status=terminal.value, error=error, finished_at=now, updated_at=now)
    )
    if moved.rowcount != 1:
        return None
    return Settlement(
        request_id=request_id,
        status=terminal,
        webhook_url=row.webhook_url,
        total=row.total_images,
        done=row.done_images,
        failed=row.failed_images,
    )


def defer_image(
    conn: sa.Connection,
    claim: Claim,
    *,
    owner: str,
    at: datetime,
    error_reason: str,
    error: str,
) -> bool:
    """Give a claimed image back as pending, to be tried again at ``at`` (a transient error)."""
    result = conn.execute(
        images.update()
        .where(
            _I.id == claim.id,
            _I.status == ImageStatus.PROCESSING.value,
            _I.lease_owner == owner,
        )
        .values(
            status=ImageStatus.PENDING.value,
            lease_owner=None,
            available_at=at,
            error_reason=error_reason,
            error=error,
        )
    )
    return result.rowcount == 1


def release_images(conn: sa.Connection, *, owner: str, now: datetime) -> int:
    """Return every image ``owner`` holds to the queue, uncounted (a graceful shutdown)."""
    result = conn.execute(
        images.update()
        .where(_I.lease_owner == owner, _I.status == ImageStatus.PROCESSING.value)
        .values(
            status=ImageStatus.PENDING.value,
            lease_owner=None,
            available_at=now,
            attempts=sa.case((_I.attempts > 0, _I.attempts - 1), else_=0),
        )
    )
    return result.rowcount


_UNFINISHED = (ImageStatus.PENDING.value, ImageStatus.PROCESSING.value)


def claim_image_ids(
    conn: sa.Connection, ids: Sequence[int], *, owner: str, lease: timedelta, now: datetime
) -> list[Claim]:
    """Lease those of ``ids`` that are due: pending ones, and processing ones whose lease expired.

    Images that ended, wait for a retry, or are leased by a live worker are left alone, so a
    message delivered twice claims nothing the second time.
    """
    if not ids:
        return []
    rows = (
        conn.execute(
            sa.select(_I.id, _I.request_id, _I.url, _I.attempts, _I.started_at)
            .where(_I.id.in_(list(ids)), _I.status.in_(_UNFINISHED), _I.available_at <= now)
            .order_by(_I.id)
            .with_for_update(skip_locked=True)
        )
    ).all()
    if not rows:
        return []
    return _lease(conn, rows, owner=owner, lease=lease, now=now)


def image_due_at(conn: sa.Connection, image_id: int) -> datetime | None:
    """When an unfinished image may next be claimed (its retry time or lease expiry).

    None when the image ended (done or failed) or does not exist.
    """
    return (
        conn.execute(
            sa.select(_I.available_at).where(_I.id == image_id, _I.status.in_(_UNFINISHED))
        )
    ).scalar_one_or_none()


def pending_image_ids(
    conn: sa.Connection, request_id: UUID | None, *, after_id: int = 0, limit: int = 1000
) -> list[int]:
    """Ids above ``after_id`` of images not ended yet (pending or processing), ascending.

    Of one request, or of every request when ``request_id`` is None; page with the last id.
    """
    query = sa.select(_I.id).where(_I.status.in_(_UNFINISHED), _I.id > after_id)
    if request_id is not None:
        query = query.where(_I.request_id == request_id)
    return list((conn.execute(query.order_by(_I.id).limit(limit))).scalars())


def done_image_keys(
    conn: sa.Connection, request_id: UUID, image_id: int
) -> tuple[str, str | None] | None:
    """A done image's output key and thumbnail key; None if it is not a done image of the
    request."""
    row = conn.execute(
        sa.select(_I.storage_key, _I.thumbnail_key).where(
            _I.id == image_id,
            _I.request_id == request_id,
            _I.status == ImageStatus.DONE.value,
            _I.storage_key.is_not(None),
        )
    ).first()
    return None if row is None else (row.storage_key, row.thumbnail_key)


def set_thumbnail_key(conn: sa.Connection, image_id: int, key: str) -> None:
    """Record where an image's thumbnail is stored."""
    conn.execute(images.update().where(_I.id == image_id).values(thumbnail_key=key))
