"""Managing stored requests for their owner: who may see one, pages of them, retry, cancel,
delete. The engine's methods of those names call these; they hold the rules, the queries hold
the SQL."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import datetime
from functools import partial
from uuid import UUID

import sqlalchemy as sa

from imgcore._clock import utcnow
from imgcore._db import outbox, sources
from imgcore._db import requests as queries
from imgcore._db.database import Database
from imgcore._notify.planning import plan_deliveries
from imgcore.config import Config
from imgcore.contracts import Notifier, Settlement, Storage
from imgcore.errors import RequestNotFoundError, RequestStateError
from imgcore.models import RequestInfo
from imgcore.presets import recorded_preset
from imgcore.states import RequestStatus

log = logging.getLogger(__name__)

__all__ = ["cancel", "delete", "owned", "page", "retry", "visible"]


def visible(info: RequestInfo | None, client: str | None) -> bool:
    """Whether ``client`` may see the request (None: every request is visible)."""
    return info is not None and (client is None or info.client == client)


async def owned(database: Database, request_id: UUID, client: str | None) -> RequestInfo:
    """The request if ``client`` may see it; else :class:`RequestNotFoundError`, as for an
    unknown id (another client's request is not even said to exist)."""
    info = await database.read(lambda conn: queries.read_request(conn, request_id), short=True)
    if info is None or not visible(info, client):
        raise RequestNotFoundError(request_id)
    return info


async def page(
    database: Database,
    *,
    client: str | None,
    status: RequestStatus | None,
    created_after: datetime | None,
    created_before: datetime | None,
    after: queries.Cursor | None,
    before: queries.Cursor | None,
    limit: int,
) -> tuple[list[RequestInfo], bool]:
    """A keyset page of requests newest first (see :func:`queries.page_requests`)."""
    return await database.read(
        partial(
            queries.page_requests,
            client=client,
            status=status,
            created_after=created_after,
            created_before=created_before,
            after=after,
            before=before,
            limit=limit,
        ),
        short=limit <= 100,
    )


async def retry(database: Database, request_id: UUID, client: str | None) -> int:
    """Queue an ended request's failed images again; returns how many.

    Raises :class:`RequestStateError` (``still_running``) while the request runs.
    """
    info = await owned(database, request_id, client)
    if not info.status.is_terminal:
        raise RequestStateError(
            "the request is still running: retry it once it has ended",
            reason="still_running",
            status=info.status.value,
        )
    return await database.write(partial(queries.retry_failed, request_id=request_id, now=utcnow()))


async def cancel(
    database: Database, notifiers: Sequence[Notifier], request_id: UUID, client: str | None
) -> tuple[int, Settlement | None]:
    """Cancel a running request (see :func:`queries.cancel_request`); when it ends here, its
    notifications are recorded in the same transaction.

    Raises :class:`RequestStateError` (``already_ended``) for a request that has ended.
    """
    info = await owned(database, request_id, client)
    now = utcnow()

    def write(conn: sa.Connection) -> tuple[int, Settlement | None, bool]:
        # Read again inside the transaction: it may have ended since.
        current = queries.read_request(conn, request_id)
        if current is None:
            raise RequestNotFoundError(request_id)
        if current.status.is_terminal:
            return 0, None, False
        count, settlement = queries.cancel_request(conn, request_id, now=now)
        if settlement is not None:
            outbox.add_deliveries(conn, request_id, plan_deliveries(notifiers, settlement), now=now)
        return count, settlement, True

    count, settlement, running = await database.write(write)
    if not running:
        raise RequestStateError(
            "the request has already ended",
            reason="already_ended",
            status=info.status.value,
        )
    return count, settlement


async def delete(
    database: Database, storage: Storage, request_id: UUID, client: str | None, config: Config
) -> bool:
    """Delete an ended request, its rows and its stored objects, but not the objects that
    other requests show too (outputs they reused).

    Raises :class:`RequestStateError` (``still_running``) while it runs: images in flight
    would store objects after the delete (cancel it first).
    """
    info = await owned(database, request_id, client)
    if not info.status.is_terminal:
        raise RequestStateError(
            "the request is still running: cancel it, then delete it",
            reason="still_running",
            status=info.status.value,
        )

    def write(conn: sa.Connection) -> tuple[list[str], set[int], bool]:
        # First: two deletes at once must not both count the images off their renditions.
        if not queries.lock_request(conn, request_id):
            return [], set(), False
        keys, attempted = queries.storage_keys(conn, request_id)
        _, recorded = queries.get_preset(conn, request_id)
        # What an attempt that never ended done may have written: the keys its preset fixes.
        preset = recorded_preset(recorded, config)
        keys += [key for image in attempted for key in preset.keys(request_id, image)]
        # Outputs other requests still show (reused) stay; those whose last user this was go.
        gone, kept, left = sources.release(conn, request_id)
        keys = [key for key in dict.fromkeys(keys + gone) if key not in kept]
        return keys, left, queries.delete_request(conn, request_id)

    keys, left, deleted = await database.write(write)
    if left:
        # Sources no rendition is made from any more are forgotten (their URLs and
        # validators too), each in a transaction of its own, locking as processing does.
        await database.write(partial(sources.forget, source_ids=left))
    for key in keys:
        try:
            await storage.delete(key)
        except Exception:
            # The rows are gone already: one object that cannot be deleted must not keep the
            # others; it is logged for the operator.
            log.warning("could not delete %s of deleted request %s", key, request_id, exc_info=True)
    return deleted
