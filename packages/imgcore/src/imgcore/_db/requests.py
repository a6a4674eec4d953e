"""Requests: submitting one, reading its status and product pages, listing, retrying, deleting.

Every function takes a connection inside a transaction that
:class:`imgcore._db.database.Database` opened.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable, Sequence
from datetime import datetime
from typing import Any, TypeVar
from uuid import UUID

import sqlalchemy as sa

from imgcore._db.images import settle_request
from imgcore._db.tables import deliveries, images, products, requests
from imgcore.contracts import Settlement
from imgcore.models import (
    ImageInfo,
    ImageProgress,
    ProductInfo,
    ProductProgress,
    RequestInfo,
    output_url,
    variant_outputs,
)
from imgcore.states import ImageStatus, RequestStatus

T = TypeVar("T")
_I = images.c
_P = products.c
_R = requests.c
_D = deliveries.c

__all__ = [
    "Cursor",
    "add_products",
    "cancel_request",
    "create_request",
    "delete_request",
    "get_header",
    "get_preset",
    "get_preset_and_client",
    "list_requests",
    "lock_request",
    "page_requests",
    "read_product_page",
    "read_progress_page",
    "read_request",
    "read_requests",
    "retry_failed",
    "set_request_totals",
    "storage_keys",
    "unfinished_images",
]


def create_request(
    conn: sa.Connection,
    *,
    request_id: UUID,
    header: dict[str, Any],
    filename: str | None,
    webhook_url: str | None,
    now: datetime,
    preset: dict[str, Any] | None = None,
    client: str | None = None,
) -> None:
    """Insert a request with no rows yet (totals are set once every row is in)."""
    conn.execute(
        requests.insert().values(
            id=request_id,
            preset=preset,
            client=client,
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


def add_products(
    conn: sa.Connection,
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
        conn.execute(products.insert(), product_rows)
    if image_rows:
        conn.execute(images.insert(), image_rows)
    return len(image_rows)


def set_request_totals(
    conn: sa.Connection, request_id: UUID, *, total_products: int, total_images: int
) -> None:
    """Record how many products and images a fully inserted request has."""
    conn.execute(
        requests.update()
        .where(_R.id == request_id)
        .values(total_products=total_products, total_images=total_images)
    )


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
        preset=row.preset["name"] if isinstance(row.preset, dict) else "default",
        client=row.client,
        cancelled_at=row.cancelled_at,
        reused=row.reused_images,
    )


_REQUEST = sa.select(requests).where(_R.id == sa.bindparam("request_id"))


def read_request(conn: sa.Connection, request_id: UUID) -> RequestInfo | None:
    """One request, or None."""
    row = conn.execute(_REQUEST, {"request_id": request_id}).first()
    return None if row is None else _request_info(row)


def read_requests(conn: sa.Connection, request_ids: Sequence[UUID]) -> list[RequestInfo]:
    """Those of ``request_ids`` that exist, in one query."""
    if not request_ids:
        return []
    rows = conn.execute(sa.select(requests).where(_R.id.in_(list(request_ids)))).all()
    return [_request_info(row) for row in rows]


def unfinished_images(conn: sa.Connection, client: str | None) -> int:
    """Images of ``client``'s running requests that have not ended (None: of local ones)."""
    owner = _R.client.is_(None) if client is None else _R.client == client
    total = conn.execute(
        sa.select(
            sa.func.coalesce(sa.func.sum(_R.total_images - _R.done_images - _R.failed_images), 0)
        ).where(
            owner,
            _R.status.in_((RequestStatus.PENDING.value, RequestStatus.IN_PROCESS.value)),
        )
    ).scalar_one()
    return int(total)


def get_header(conn: sa.Connection, request_id: UUID) -> dict[str, Any] | None:
    """The input CSV header a request was submitted with (as stored by ``create_request``)."""
    header = (conn.execute(sa.select(_R.header).where(_R.id == request_id))).scalar_one_or_none()
    return header if isinstance(header, dict) else None


def get_preset(conn: sa.Connection, request_id: UUID) -> tuple[bool, dict[str, Any] | None]:
    """``(found, preset)``: the preset definition a request recorded (``None``: stored before
    presets); ``found`` is False for an unknown request."""
    row = conn.execute(sa.select(_R.preset).where(_R.id == request_id)).first()
    if row is None:
        return False, None
    return True, row.preset if isinstance(row.preset, dict) else None


def get_preset_and_client(
    conn: sa.Connection, request_id: UUID
) -> tuple[dict[str, Any] | None, str | None] | None:
    """A request's recorded preset (as :func:`get_preset`) and client; None if unknown."""
    row = conn.execute(sa.select(_R.preset, _R.client).where(_R.id == request_id)).first()
    if row is None:
        return None
    return (row.preset if isinstance(row.preset, dict) else None), row.client


def list_requests(
    conn: sa.Connection,
    *,
    status: RequestStatus | None = None,
    search: str | None = None,
    client: str | None = None,
    limit: int = 50,
    offset: int = 0,
) -> tuple[list[RequestInfo], int]:
    """Newest first, filtered by status, client and a request id or product name; with the
    total."""
    query = sa.select(requests)
    if status is not None:
        query = query.where(_R.status == status.value)
    if client is not None:
        query = query.where(_R.client == client)
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
    total = (conn.execute(sa.select(sa.func.count()).select_from(query.subquery()))).scalar_one()
    rows = (
        conn.execute(query.order_by(_R.created_at.desc(), _R.id).limit(limit).offset(offset))
    ).all()
    return [_request_info(row) for row in rows], total


Cursor = tuple[datetime, UUID]
"""A place in the newest-first list of requests: a request's ``(created_at, id)``."""


def page_requests(
    conn: sa.Connection,
    *,
    client: str | None,
    status: RequestStatus | None = None,
    created_after: datetime | None = None,
    created_before: datetime | None = None,
    after: Cursor | None = None,
    before: Cursor | None = None,
    limit: int = 50,
) -> tuple[list[RequestInfo], bool]:
    """A page of requests newest first (keyset pagination); ``client`` None: every client's.

    ``after``: the page that follows that place; ``before``: the page that precedes it.
    Returns the page and whether more requests lie beyond it in the direction read.
    """
    query = sa.select(requests)
    if client is not None:
        query = query.where(_R.client == client)
    if status is not None:
        query = query.where(_R.status == status.value)
    if created_after is not None:
        query = query.where(_R.created_at >= created_after)
    if created_before is not None:
        query = query.where(_R.created_at < created_before)
    # Row-value comparison spelt out: SQLite, PostgreSQL and MariaDB all read it, and each
    # can walk the (client, created_at) index to it.
    if before is not None:
        at, rid = before
        query = query.where(sa.or_(_R.created_at > at, sa.and_(_R.created_at == at, _R.id > rid)))
        order = (_R.created_at.asc(), _R.id.asc())
    else:
        if after is not None:
            at, rid = after
            query = query.where(
                sa.or_(_R.created_at < at, sa.and_(_R.created_at == at, _R.id < rid))
            )
        order = (_R.created_at.desc(), _R.id.desc())
    rows = conn.execute(query.order_by(*order).limit(limit + 1)).all()
    more = len(rows) > limit
    page = [_request_info(row) for row in rows[:limit]]
    if before is not None:
        page.reverse()
    return page, more


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
    "variants",
    "content_hash",
    "reused",
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
    # Keys only here: the engine knows the storage that turns them into URLs.
    fields["variants"] = variant_outputs(fields["variants"], str)
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


# What a status poll shows of a page: of the JSON, timestamps and sizes whose decoding makes
# up most of read_product_page's time (see docs/performance.md), only the variants (none for
# `default` requests) and the source's size and hash.
_PROGRESS_PAGE = _page_statement(
    _P.serial,
    _P.name,
    _I.position.label("image_position"),
    _I.status,
    _I.storage_key,
    _I.error_reason,
    _I.error,
    _I.variants,
    _I.input_width,
    _I.input_height,
    _I.content_hash,
    _I.reused,
)


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
            variants=variant_outputs(row.variants, url_for),
            source_width=row.input_width,
            source_height=row.input_height,
            content_hash=row.content_hash,
            reused=row.reused,
        )

    return [
        ProductProgress(
            position=row.position, serial=row.serial, name=row.name, images=tuple(product_images)
        )
        for row, product_images in _read_page(conn, _PROGRESS_PAGE, request_id, start, limit, image)
    ]


def retry_failed(conn: sa.Connection, request_id: UUID, *, now: datetime) -> int:
    """Queue a request's failed images again (an operator's retry); returns how many."""
    # Images first, then the request row: the order finish_image locks them in. Locking the
    # request first deadlocked on MariaDB/MySQL against a worker finishing one of its images.
    result = conn.execute(
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
        conn.execute(
            requests.update()
            .where(_R.id == request_id)
            .values(
                failed_images=_R.failed_images - count,
                status=RequestStatus.IN_PROCESS.value,
                error=None,
                cancelled_at=None,
                finished_at=None,
                updated_at=now,
            )
        )
    return count


def cancel_request(
    conn: sa.Connection, request_id: UUID, *, now: datetime
) -> tuple[int, Settlement | None]:
    """Fail a running request's pending images as ``cancelled`` and mark it cancelled.

    Images in flight finish; the last one to end settles the request (``Failed``, error
    ``"cancelled"``). Returns how many images were cancelled, and the settlement when no
    image was in flight, so the request ended here.
    """
    # Pending images, and processing ones whose lease expired (their worker died): nobody
    # will finish those. Images first, then the request row, the order finish_image locks.
    result = conn.execute(
        images.update()
        .where(
            _I.request_id == request_id,
            sa.or_(
                _I.status == ImageStatus.PENDING.value,
                sa.and_(_I.status == ImageStatus.PROCESSING.value, _I.available_at <= now),
            ),
        )
        .values(
            status=ImageStatus.FAILED.value,
            lease_owner=None,
            error_reason="cancelled",
            error="cancelled",
            finished_at=now,
        )
    )
    count = result.rowcount
    marked = conn.execute(
        requests.update()
        .where(
            _R.id == request_id,
            _R.status.in_((RequestStatus.PENDING.value, RequestStatus.IN_PROCESS.value)),
        )
        .values(
            failed_images=_R.failed_images + count,
            # settle_request moves only in-process requests.
            status=RequestStatus.IN_PROCESS.value,
            cancelled_at=now,
            updated_at=now,
        )
    )
    if marked.rowcount != 1:
        return count, None
    return count, settle_request(conn, request_id, now=now)


def storage_keys(conn: sa.Connection, request_id: UUID) -> tuple[list[str], list[int]]:
    """Every recorded object key of a request (outputs, variants and thumbnails), and the
    ids of its images that were claimed but have not ended (an attempt may have written
    their keys, which the caller derives from the request's preset)."""
    rows = (
        conn.execute(
            sa.select(_I.id, _I.status, _I.storage_key, _I.thumbnail_key, _I.variants).where(
                _I.request_id == request_id,
                sa.or_(
                    _I.storage_key.is_not(None),
                    _I.thumbnail_key.is_not(None),
                    _I.attempts > 0,
                ),
            )
        )
    ).all()
    keys: list[str] = []
    attempted: list[int] = []
    for row in rows:
        keys.extend(key for key in (row.storage_key, row.thumbnail_key) if key)
        keys.extend(v["key"] for v in row.variants or ())
        # Any attempt of an image not done may have written keys that were never recorded
        # (one still running, or one cancelled while its attempt ran); so may one of an
        # image done with outputs not its own (reused), whose own were never kept.
        own = (f"requests/{request_id}/{row.id}.", f"requests/{request_id}/{row.id}-")
        if row.status != ImageStatus.DONE.value or not (row.storage_key or "").startswith(own):
            attempted.append(row.id)
    return list(dict.fromkeys(keys)), attempted


def lock_request(conn: sa.Connection, request_id: UUID) -> bool:
    """Lock the request's row for the rest of the transaction; False if it is gone (a
    concurrent delete took it, and whoever waits here must not delete it again)."""
    row = conn.execute(sa.select(_R.id).where(_R.id == request_id).with_for_update()).first()
    return row is not None


def delete_request(conn: sa.Connection, request_id: UUID) -> bool:
    """Delete a request with its products, images and notifications."""
    # Explicit child deletes: SQLite only cascades with foreign keys on, MySQL only on InnoDB.
    conn.execute(deliveries.delete().where(_D.request_id == request_id))
    conn.execute(images.delete().where(_I.request_id == request_id))
    conn.execute(products.delete().where(products.c.request_id == request_id))
    result = conn.execute(requests.delete().where(_R.id == request_id))
    return result.rowcount == 1
