"""Every query imgcore runs, as functions of an open connection (the caller owns the transaction).

Claims are leases: a claimed image's ``available_at`` is when its lease expires, so work of a
process that died becomes claimable again without any bookkeeping. PostgreSQL and MariaDB/MySQL
claim with ``FOR UPDATE SKIP LOCKED``; SQLite serialises writers (``BEGIN IMMEDIATE``), which
makes one claiming transaction enough.
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from datetime import datetime, timedelta
from typing import Any, TypeVar
from uuid import UUID

import msgspec
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from imgcore._db.tables import deliveries, images, products, requests
from imgcore.contracts import Claim, DeliveryClaim, Settlement
from imgcore.models import (
    DeliveryInfo,
    ImageInfo,
    ImageProgress,
    ProductInfo,
    ProductProgress,
    RequestInfo,
)
from imgcore.states import ImageStatus, RequestStatus, failure_summary, settle

__all__ = [
    "Claim",
    "DeliveryClaim",
    "ImageResult",
    "Settlement",
    "add_deliveries",
    "add_products",
    "claim_deliveries",
    "claim_images",
    "create_request",
    "defer_image",
    "delete_request",
    "done_image_keys",
    "finish_delivery",
    "finish_image",
    "get_header",
    "iter_products",
    "list_requests",
    "output_url",
    "read_deliveries",
    "read_product_page",
    "read_progress_page",
    "read_request",
    "release_images",
    "renew_leases",
    "retry_delivery_later",
    "retry_failed",
    "set_request_totals",
    "set_thumbnail_key",
    "storage_keys",
]

T = TypeVar("T")
_I = images.c
_P = products.c
_R = requests.c
_D = deliveries.c


class ImageResult(msgspec.Struct, frozen=True, kw_only=True):
    """What processing one image produced, stored when it ends."""

    status: ImageStatus
    storage_key: str | None = None
    thumbnail_key: str | None = None
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


# -- submitting ---------------------------------------------------------------------------------


async def create_request(
    conn: AsyncConnection,
    *,
    request_id: UUID,
    header: dict[str, Any],
    filename: str | None,
    webhook_url: str | None,
    now: datetime,
) -> None:
    """Insert a request with no rows yet (totals are set once every row is in)."""
    await conn.execute(
        requests.insert().values(
            id=request_id,
            status=RequestStatus.PENDING.value,
            webhook_url=webhook_url,
            filename=filename,
            header=header,
            total_products=0,
            total_images=0,
            created_at=now,
            updated_at=now,
        )
    )


async def add_products(
    conn: AsyncConnection,
    request_id: UUID,
    rows: Iterable[tuple[int, int, int, str, Sequence[str], Sequence[str]]],
    *,
    now: datetime,
) -> int:
    """Bulk-insert ``(position, row, serial, name, urls, extra)`` rows; returns images added."""
    product_rows: list[dict[str, Any]] = []
    image_rows: list[dict[str, Any]] = []
    pending = ImageStatus.PENDING.value
    for position, row, serial, name, urls, extra in rows:
        product_rows.append(
            {
                "request_id": request_id,
                "position": position,
                "row": row,
                "serial": serial,
                "name": name,
                "extra": list(extra) if extra else None,
            }
        )
        image_rows.extend(
            {
                "request_id": request_id,
                "product_position": position,
                "position": index,
                "url": url,
                "status": pending,
                "available_at": now,
            }
            for index, url in enumerate(urls)
        )
    if product_rows:
        await conn.execute(products.insert(), product_rows)
    if image_rows:
        await conn.execute(images.insert(), image_rows)
    return len(image_rows)


async def set_request_totals(
    conn: AsyncConnection, request_id: UUID, *, total_products: int, total_images: int
) -> None:
    """Record how many products and images a fully inserted request has."""
    await conn.execute(
        requests.update()
        .where(_R.id == request_id)
        .values(total_products=total_products, total_images=total_images)
    )


# -- claiming and finishing images ----------------------------------------------------------------


def claim_images(
    conn: sa.Connection, *, owner: str, limit: int, lease: timedelta, now: datetime
) -> list[Claim]:
    """Lease up to ``limit`` due images: pending ones, and processing ones whose lease expired."""
    due = sa.select(_I.id, _I.request_id, _I.url, _I.attempts, _I.started_at).where(
        _I.status.in_((ImageStatus.PENDING.value, ImageStatus.PROCESSING.value)),
        _I.available_at <= now,
    )
    rows = (
        conn.execute(
            due.order_by(_I.available_at, _I.id).limit(limit).with_for_update(skip_locked=True)
        )
    ).all()
    if not rows:
        return []
    return _lease(conn, rows, owner=owner, lease=lease, now=now)


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
    values = msgspec.structs.asdict(result)
    values["status"] = result.status.value
    ended = conn.execute(
        images.update()
        .where(
            _I.id == claim.id,
            _I.status == ImageStatus.PROCESSING.value,
            _I.lease_owner == owner,
        )
        .values(**values, lease_owner=None, finished_at=now)
    )
    if ended.rowcount != 1:
        return False, None
    counter = "done_images" if result.status is ImageStatus.DONE else "failed_images"
    # The row lock this update takes serialises every finisher of the request, so exactly one
    # of them sees the last count.
    conn.execute(
        requests.update()
        .where(_R.id == claim.request_id)
        .values(
            {
                counter: requests.c[counter] + 1,
                "input_bytes": _R.input_bytes + (result.input_bytes or 0),
                "output_bytes": _R.output_bytes + (result.output_bytes or 0),
                "updated_at": now,
            }
        )
    )
    return True, _settle(conn, claim.request_id, now=now)


def _settle(conn: sa.Connection, request_id: UUID, *, now: datetime) -> Settlement | None:
    row = (
        conn.execute(
            sa.select(_R.status, _R.total_images, _R.done_images, _R.failed_images, _R.webhook_url)
            .where(_R.id == request_id)
            .with_for_update()
        )
    ).one()
    terminal = settle(row.total_images, row.done_images, row.failed_images)
    if terminal is None or row.status != RequestStatus.IN_PROCESS.value:
        return None
    error = None
    if row.failed_images:
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


async def retry_failed(conn: AsyncConnection, request_id: UUID, *, now: datetime) -> int:
    """Queue a request's failed images again (an operator's retry); returns how many."""
    # Images first, then the request row: the order finish_image locks them in. Locking the
    # request first deadlocked on MariaDB/MySQL against a worker finishing one of its images.
    result = await conn.execute(
        images.update()
        .where(_I.request_id == request_id, _I.status == ImageStatus.FAILED.value)
        .values(
            status=ImageStatus.PENDING.value,
            attempts=0,
            available_at=now,
            error=None,
            error_reason=None,
            # A fresh deadline: it counts from the first claim after the retry.
            started_at=None,
            finished_at=None,
        )
    )
    count = result.rowcount
    if count:
        await conn.execute(
            requests.update()
            .where(_R.id == request_id)
            .values(
                failed_images=_R.failed_images - count,
                status=RequestStatus.IN_PROCESS.value,
                error=None,
                finished_at=None,
                updated_at=now,
            )
        )
    return count


# -- notifications (the outbox) --------------------------------------------------------------------


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


async def claim_deliveries(
    conn: AsyncConnection, *, owner: str, limit: int, lease: timedelta, now: datetime
) -> list[DeliveryClaim]:
    """Lease up to ``limit`` notifications that are due."""
    rows = (
        await conn.execute(
            sa.select(deliveries)
            .where(_D.status.in_(("pending", "sending")), _D.available_at <= now)
            .order_by(_D.available_at, _D.id)
            .limit(limit)
            .with_for_update(skip_locked=True)
        )
    ).all()
    if not rows:
        return []
    await conn.execute(
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


async def finish_delivery(
    conn: AsyncConnection,
    claim: DeliveryClaim,
    *,
    owner: str,
    status: str,
    status_code: int | None,
    error: str | None,
    now: datetime,
) -> bool:
    """End a notification as ``delivered`` or ``failed`` (given up)."""
    result = await conn.execute(
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


async def retry_delivery_later(
    conn: AsyncConnection,
    claim: DeliveryClaim,
    *,
    owner: str,
    at: datetime,
    status_code: int | None,
    error: str | None,
    now: datetime,
) -> bool:
    """Give a notification back, due again at ``at``."""
    result = await conn.execute(
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


# -- reading ---------------------------------------------------------------------------------


def _request_info(row: sa.Row[Any]) -> RequestInfo:
    return RequestInfo(
        request_id=row.id,
        status=RequestStatus(row.status),
        filename=row.filename,
        webhook_url=row.webhook_url,
        total_products=row.total_products,
        total=row.total_images,
        done=row.done_images,
        failed=row.failed_images,
        input_bytes=row.input_bytes,
        output_bytes=row.output_bytes,
        error=row.error,
        created_at=row.created_at,
        updated_at=row.updated_at,
        finished_at=row.finished_at,
        columns=tuple(row.header.get("columns", ())),
    )


_REQUEST = sa.select(requests).where(_R.id == sa.bindparam("request_id"))


def read_request(conn: sa.Connection, request_id: UUID) -> RequestInfo | None:
    """One request, or None."""
    row = conn.execute(_REQUEST, {"request_id": request_id}).first()
    return None if row is None else _request_info(row)


async def get_header(conn: AsyncConnection, request_id: UUID) -> dict[str, Any] | None:
    """The input CSV header a request was submitted with (as stored by ``create_request``)."""
    header = (
        await conn.execute(sa.select(_R.header).where(_R.id == request_id))
    ).scalar_one_or_none()
    return header if isinstance(header, dict) else None


async def list_requests(
    conn: AsyncConnection,
    *,
    status: RequestStatus | None = None,
    search: str | None = None,
    limit: int = 50,
    offset: int = 0,
) -> tuple[list[RequestInfo], int]:
    """Newest first, filtered by status and by a request id or product name; with the total."""
    query = sa.select(requests)
    if status is not None:
        query = query.where(_R.status == status.value)
    term = (search or "").strip()
    if term:
        # icontains (lower() on both sides): LIKE alone ignores case on MySQL and SQLite but
        # not on PostgreSQL.
        condition: sa.ColumnElement[bool] = sa.exists().where(
            products.c.request_id == _R.id, products.c.name.icontains(term, autoescape=True)
        )
        with contextlib.suppress(ValueError):
            condition = sa.or_(condition, _R.id == UUID(term))
        query = query.where(condition)
    total = (
        await conn.execute(sa.select(sa.func.count()).select_from(query.subquery()))
    ).scalar_one()
    rows = (
        await conn.execute(query.order_by(_R.created_at.desc(), _R.id).limit(limit).offset(offset))
    ).all()
    return [_request_info(row) for row in rows], total


_IMAGE_FIELDS = (
    "id",
    "position",
    "status",
    "attempts",
    "storage_key",
    "thumbnail_key",
    "error_reason",
    "error",
    "input_bytes",
    "output_bytes",
    "input_width",
    "input_height",
    "output_width",
    "output_height",
    "input_format",
    "output_format",
    "started_at",
    "finished_at",
)


def _page_statement(*columns: sa.ColumnElement[Any]) -> sa.Select[Any]:
    """Products ``start`` … ``stop - 1`` of a request outer-joined to their images, in order.

    Built once per module, since building a statement costs more than SQLite takes to run it.
    """
    return (
        sa.select(_P.position, _I.url, *columns)
        .outerjoin(
            images, sa.and_(_I.request_id == _P.request_id, _I.product_position == _P.position)
        )
        .where(
            _P.request_id == sa.bindparam("request_id"),
            _P.position >= sa.bindparam("start"),
            _P.position < sa.bindparam("stop"),
        )
        .order_by(_P.position, _I.position)
    )


def _read_page(
    conn: sa.Connection,
    statement: sa.Select[Any],
    request_id: UUID,
    start: int,
    limit: int,
    image: Callable[[Any], T],
) -> list[tuple[Any, list[T]]]:
    """Each product row of the page with ``image(row)`` of each of its image rows."""
    rows = conn.execute(
        statement, {"request_id": request_id, "start": start, "stop": start + limit}
    ).all()
    found: dict[int, tuple[Any, list[T]]] = {}
    for row in rows:
        entry = found.get(row.position)
        if entry is None:
            entry = found[row.position] = (row, [])
        if row.url is not None:  # None: a product without images (outer join)
            entry[1].append(image(row))
    return list(found.values())


_PRODUCT_PAGE = _page_statement(
    _P.row,
    _P.serial,
    _P.name,
    _P.extra,
    *(_I[f].label(f"image_{f}") for f in _IMAGE_FIELDS),
)


def _image_info(row: Any) -> ImageInfo:
    fields = dict(zip(_IMAGE_FIELDS, row[-len(_IMAGE_FIELDS) :], strict=True))
    fields["status"] = ImageStatus(fields["status"])
    return ImageInfo(input_url=row.url, **fields)


def read_product_page(
    conn: sa.Connection, request_id: UUID, *, start: int, limit: int
) -> list[ProductInfo]:
    """Products with positions ``start`` … ``start+limit-1``, each with its images, in order."""
    return [
        ProductInfo(
            position=row.position,
            row=row.row,
            serial=row.serial,
            name=row.name,
            extra=tuple(row.extra or ()),
            images=tuple(product_images),
        )
        for row, product_images in _read_page(
            conn, _PRODUCT_PAGE, request_id, start, limit, _image_info
        )
    ]


# What a status poll shows of a page: none of the JSON, timestamps and sizes whose decoding
# made up most of read_product_page's time (0.18 against 0.36 ms for 10 products on SQLite).
_PROGRESS_PAGE = _page_statement(
    _P.serial,
    _P.name,
    _I.position.label("image_position"),
    _I.status,
    _I.storage_key,
    _I.error_reason,
    _I.error,
)


def output_url(
    status: ImageStatus, storage_key: str | None, url_for: Callable[[str], str]
) -> str | None:
    """An image's output URL: ``url_for(storage_key)`` once it is done, else None."""
    return url_for(storage_key) if status is ImageStatus.DONE and storage_key else None


def read_progress_page(
    conn: sa.Connection,
    request_id: UUID,
    *,
    start: int,
    limit: int,
    url_for: Callable[[str], str],
) -> list[ProductProgress]:
    """Products ``start`` … ``start+limit-1`` as a status poll shows them; a done image's
    ``output_url`` is ``url_for(storage key)``."""

    def image(row: Any) -> ImageProgress:
        status = ImageStatus(row.status)
        return ImageProgress(
            position=row.image_position,
            input_url=row.url,
            status=status,
            output_url=output_url(status, row.storage_key, url_for),
            error_reason=row.error_reason,
            error=row.error,
        )

    return [
        ProductProgress(
            position=row.position, serial=row.serial, name=row.name, images=tuple(product_images)
        )
        for row, product_images in _read_page(conn, _PROGRESS_PAGE, request_id, start, limit, image)
    ]


async def iter_products(
    conn: AsyncConnection, request_id: UUID, *, batch: int = 1000
) -> AsyncIterator[list[ProductInfo]]:
    """Every product of a request in input order, ``batch`` at a time (memory stays flat)."""
    start = 0
    while True:
        page = await conn.run_sync(read_product_page, request_id, start=start, limit=batch)
        if not page:
            return
        yield page
        start = page[-1].position + 1


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


async def storage_keys(conn: AsyncConnection, request_id: UUID) -> list[str]:
    """Every stored object key of a request (outputs and thumbnails)."""
    rows = (
        await conn.execute(
            sa.select(_I.storage_key, _I.thumbnail_key).where(
                _I.request_id == request_id,
                sa.or_(_I.storage_key.is_not(None), _I.thumbnail_key.is_not(None)),
            )
        )
    ).all()
    return [key for row in rows for key in (row.storage_key, row.thumbnail_key) if key]


async def delete_request(conn: AsyncConnection, request_id: UUID) -> bool:
    """Delete a request with its products, images and notifications."""
    # Explicit child deletes: SQLite only cascades with foreign keys on, MySQL only on InnoDB.
    await conn.execute(deliveries.delete().where(_D.request_id == request_id))
    await conn.execute(images.delete().where(_I.request_id == request_id))
    await conn.execute(products.delete().where(products.c.request_id == request_id))
    result = await conn.execute(requests.delete().where(_R.id == request_id))
    return result.rowcount == 1


# -- claiming chosen images (executors fed with image ids, such as a job queue) -------------------

__all__ += ["claim_image_ids", "image_due_at", "pending_image_ids"]

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


async def pending_image_ids(
    conn: AsyncConnection, request_id: UUID | None, *, after_id: int = 0, limit: int = 1000
) -> list[int]:
    """Ids above ``after_id`` of images not ended yet (pending or processing), ascending.

    Of one request, or of every request when ``request_id`` is None; page with the last id.
    """
    query = sa.select(_I.id).where(_I.status.in_(_UNFINISHED), _I.id > after_id)
    if request_id is not None:
        query = query.where(_I.request_id == request_id)
    return list((await conn.execute(query.order_by(_I.id).limit(limit))).scalars())


# -- admin users -----------------------------------------------------------------------------------

__all__ += [
    "AdminUser",
    "get_admin_user",
    "record_admin_login",
    "record_admin_login_failure",
    "save_admin_user",
]


class AdminUser(msgspec.Struct, frozen=True, kw_only=True):
    """A person allowed into the admin pages (the password only as its hash)."""

    id: int
    username: str
    password_hash: str
    failed_logins: int
    locked_until: datetime | None
    created_at: datetime
    last_login_at: datetime | None


def _admin_users() -> sa.Table:
    from imgcore._db.tables import admin_users

    return admin_users


async def get_admin_user(
    conn: AsyncConnection, *, username: str | None = None, user_id: int | None = None
) -> AdminUser | None:
    """The admin user with this username or id, or None."""
    table = _admin_users()
    query = sa.select(table)
    if username is not None:
        query = query.where(table.c.username == username)
    elif user_id is not None:
        query = query.where(table.c.id == user_id)
    else:
        raise ValueError("pass username or user_id")
    row = (await conn.execute(query)).one_or_none()
    if row is None:
        return None
    # Column names come back as SQLAlchemy's quoted_name (a str subclass msgspec refuses).
    return msgspec.convert({str(k): v for k, v in row._mapping.items()}, AdminUser)


async def save_admin_user(
    conn: AsyncConnection, username: str, password_hash: str, *, now: datetime
) -> bool:
    """Create the user, or set its password (which also lifts a lockout); True if created."""
    table = _admin_users()
    updated = await conn.execute(
        table.update()
        .where(table.c.username == username)
        .values(password_hash=password_hash, failed_logins=0, locked_until=None)
    )
    if updated.rowcount:
        return False
    await conn.execute(
        table.insert().values(
            username=username, password_hash=password_hash, failed_logins=0, created_at=now
        )
    )
    return True


async def record_admin_login_failure(
    conn: AsyncConnection,
    user_id: int,
    *,
    now: datetime,
    max_failures: int,
    lock_for: timedelta,
) -> datetime | None:
    """Count a wrong password; the ``max_failures``-th in a row locks the user for ``lock_for``.

    Returns when the lock ends if this failure set one, else None.
    """
    table = _admin_users()
    # One UPDATE: concurrent failures cannot both read the same count.
    await conn.execute(
        table.update().where(table.c.id == user_id).values(failed_logins=table.c.failed_logins + 1)
    )
    failures = (
        await conn.execute(sa.select(table.c.failed_logins).where(table.c.id == user_id))
    ).scalar_one_or_none()
    if failures is None or failures < max_failures:
        return None
    until = now + lock_for
    await conn.execute(
        table.update().where(table.c.id == user_id).values(failed_logins=0, locked_until=until)
    )
    return until


async def record_admin_login(
    conn: AsyncConnection, user_id: int, *, now: datetime, password_hash: str | None = None
) -> None:
    """A successful login: reset the failure count; ``password_hash`` replaces an outdated one."""
    table = _admin_users()
    values: dict[str, Any] = {"failed_logins": 0, "locked_until": None, "last_login_at": now}
    if password_hash is not None:
        values["password_hash"] = password_hash
    await conn.execute(table.update().where(table.c.id == user_id).values(**values))
