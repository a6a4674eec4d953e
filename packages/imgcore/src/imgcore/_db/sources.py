"""Remembered sources and their renditions: what a re-import reuses instead of redoing.

A *source* is a URL one client imported, with the validators and content hash of what the
origin last served. A *rendition* is the outputs made from one content of a source for one
recipe (preset variants, codec, options), counted by the images that show them: the last
image to go (its request deleted) takes the rendition, and its objects, with it.

Every function takes a connection inside a transaction that
:class:`imgcore._db.database.Database` opened.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from datetime import datetime
from typing import Any
from uuid import UUID

import msgspec
import sqlalchemy as sa

from imgcore._db.images import ImageResult, finish_image
from imgcore._db.tables import images, renditions, sources
from imgcore.contracts import Claim, Settlement
from imgcore.states import ImageStatus

__all__ = [
    "Known",
    "Recorded",
    "finish_new",
    "finish_reused",
    "forget",
    "lookup",
    "lookup_many",
    "release",
    "url_hash",
]

_S = sources.c
_N = renditions.c
_I = images.c

# What a rendition stores of the result that made it: everything but the per-image fields.
_PER_IMAGE = frozenset({"status", "error_reason", "error", "rendition_id", "reused"})


class Known(msgspec.Struct, frozen=True, kw_only=True):
    """A remembered source, and its rendition for the recipe asked about (if any)."""

    etag: str | None
    last_modified: str | None
    content_hash: str
    checked_at: datetime
    checked_by: UUID | None
    rendition_id: int | None
    """The rendition of the source's current content for the recipe; None if none."""


class Recorded(msgspec.Struct, frozen=True, kw_only=True):
    """How recording a processed image ended."""

    ended: bool
    """False: the lease was lost and nothing was recorded."""
    settlement: Settlement | None
    adopted: bool
    """True: another worker had recorded a rendition of the same content and recipe; the
    image shows that one and the outputs just stored belong to nothing."""
    result: ImageResult
    """What the image shows (the adopted rendition's outputs when ``adopted``)."""


def url_hash(url: str) -> str:
    """The key a URL is remembered by (SHA-256 of its text, hex)."""
    return hashlib.sha256(url.encode()).hexdigest()


# Built once: building a statement costs more than SQLite takes to run it, and each image
# of a re-import runs these.
_LOOKUP = (
    sa.select(
        _S.url_hash,
        _S.etag,
        _S.last_modified,
        _S.content_hash,
        _S.checked_at,
        _S.checked_by,
        _N.id.label("rendition_id"),
    )
    .select_from(
        sources.outerjoin(
            renditions,
            sa.and_(
                _N.source_id == _S.id,
                _N.recipe == sa.bindparam("recipe"),
                _N.content_hash == _S.content_hash,
            ),
        )
    )
    .where(
        _S.client == sa.bindparam("client"),
        _S.url_hash.in_(sa.bindparam("url_hashes", expanding=True)),
    )
)
_ADD_USER = (
    renditions.update()
    .where(_N.id == sa.bindparam("rendition_id"))
    .values(users=_N.users + sa.bindparam("change"))
)
# Taking a rendition checks it is still the one looked up: made from that content.
_TAKE = _ADD_USER.where(_N.content_hash == sa.bindparam("made_from"))
_RESULT = sa.select(_N.result).where(_N.id == sa.bindparam("rendition_id"))
_CHECKED = (
    sources.update()
    .where(
        _S.client == sa.bindparam("by_client"),
        _S.url_hash == sa.bindparam("by_url_hash"),
        # Only while it still holds the content confirmed: another worker may have
        # recorded newer content meanwhile, whose validators these are not.
        _S.content_hash == sa.bindparam("made_from"),
    )
    .values(
        checked_at=sa.bindparam("now", type_=_S.checked_at.type),
        checked_by=sa.bindparam("request_id", type_=_S.checked_by.type),
    )
)
_CHECKED_WITH_VALIDATORS = _CHECKED.values(
    etag=sa.bindparam("new_etag"), last_modified=sa.bindparam("new_last_modified")
)

# Each image processed anew runs these.
_SOURCE_ID = (
    sa.select(_S.id)
    .where(_S.client == sa.bindparam("by_client"), _S.url_hash == sa.bindparam("by_url_hash"))
    .with_for_update()
)
# The columns set are the parameters' keys (its id is the WHERE clause's own name).
_UPDATE_SOURCE = sources.update().where(_S.id == sa.bindparam("source_id"))
_NEW_SOURCE = sources.insert()
_RENDITION_OF = (
    sa.select(_N.id, _N.result)
    .where(
        _N.source_id == sa.bindparam("source_id"),
        _N.recipe == sa.bindparam("recipe"),
        _N.content_hash == sa.bindparam("content_hash"),
    )
    .with_for_update()
)
_NEW_RENDITION = renditions.insert()
_DROP_RENDITION = renditions.delete().where(_N.id == sa.bindparam("rendition_id"))


def lookup(conn: sa.Connection, *, client: str, url: str, recipe: str) -> Known | None:
    """What is remembered of ``url`` for ``client``; None if it never was processed."""
    return lookup_many(conn, client=client, urls=[url], recipe=recipe).get(url)


def lookup_many(
    conn: sa.Connection, *, client: str, urls: Iterable[str], recipe: str
) -> dict[str, Known]:
    """:func:`lookup` of several URLs in one query: what is remembered, by URL."""
    by_hash = {url_hash(url): url for url in urls}
    rows = conn.execute(
        _LOOKUP, {"client": client, "url_hashes": list(by_hash), "recipe": recipe}
    ).all()
    return {
        by_hash[row.url_hash]: Known(
            etag=row.etag,
            last_modified=row.last_modified,
            content_hash=row.content_hash,
            checked_at=row.checked_at,
            checked_by=row.checked_by,
            rendition_id=row.rendition_id,
        )
        for row in rows
    }


def finish_reused(
    conn: sa.Connection,
    claim: Claim,
    *,
    owner: str,
    rendition_id: int,
    content_hash: str,
    reason: str,
    client: str,
    now: datetime,
    validators: tuple[str | None, str | None] | None = None,
) -> tuple[bool, Settlement | None, ImageResult] | None:
    """End a claimed image done with the outputs of rendition ``rendition_id``, made from
    the source content ``content_hash``.

    Returns None when the rendition is gone (its last user was deleted meanwhile: process
    the image instead), else :func:`finish_image`'s ``(ended, settlement)`` and the result
    the image now shows. Unless the reason is ``max_age``, the origin has just confirmed the
    source: its check time moves, and ``validators`` (``(etag, last_modified)`` of a body
    just downloaded) replace the stored ones.
    """
    # Counting the new user first locks the row: a delete that would take the rendition
    # waits for this transaction, or has taken it and this matches nothing.
    taken = conn.execute(
        _TAKE, {"rendition_id": rendition_id, "made_from": content_hash, "change": 1}
    )
    if taken.rowcount != 1:
        return None
    stored = conn.execute(_RESULT, {"rendition_id": rendition_id}).scalar_one()
    result = _result_of(stored, rendition_id=rendition_id, reused=reason)
    ended, settlement = finish_image(conn, claim, owner=owner, result=result, now=now)
    if not ended:
        conn.execute(_ADD_USER, {"rendition_id": rendition_id, "change": -1})
        return ended, settlement, result
    if reason != "max_age":
        params = {
            "by_client": client,
            "by_url_hash": url_hash(claim.url),
            "made_from": content_hash,
            "now": now,
            "request_id": claim.request_id,
        }
        if validators is None:
            conn.execute(_CHECKED, params)
        else:
            params["new_etag"] = _fits(validators[0], 1024)
            params["new_last_modified"] = _fits(validators[1], 64)
            conn.execute(_CHECKED_WITH_VALIDATORS, params)
    return ended, settlement, result


def finish_new(
    conn: sa.Connection,
    claim: Claim,
    *,
    owner: str,
    client: str,
    recipe: str,
    etag: str | None,
    last_modified: str | None,
    result: ImageResult,
    now: datetime,
) -> Recorded:
    """End a claimed image done with the outputs just made for it, and remember its source
    (validators, content hash) and the rendition.

    When another worker recorded a rendition of the same content and recipe first, the image
    shows that one instead (``adopted``). A concurrent insert of the same source or
    rendition raises :class:`sqlalchemy.exc.IntegrityError`: run the function again.
    """
    if result.content_hash is None:
        raise ValueError("a processed image's result must carry its content hash")
    source_id = _remember(
        conn,
        client=client,
        url=claim.url,
        request_id=claim.request_id,
        etag=etag,
        last_modified=last_modified,
        content_hash=result.content_hash,
        now=now,
    )
    existing = conn.execute(
        _RENDITION_OF,
        {"source_id": source_id, "recipe": recipe, "content_hash": result.content_hash},
    ).first()
    if existing is not None:
        rendition_id = existing.id
        conn.execute(_ADD_USER, {"rendition_id": rendition_id, "change": 1})
        final = _result_of(existing.result, rendition_id=rendition_id, reused=None)
    else:
        inserted = conn.execute(
            _NEW_RENDITION,
            {
                "source_id": source_id,
                "recipe": recipe,
                "content_hash": result.content_hash,
                "result": _stored(result),
                "users": 1,
                "created_at": now,
            },
        ).inserted_primary_key
        assert inserted is not None
        rendition_id = int(inserted[0])
        final = msgspec.structs.replace(result, rendition_id=rendition_id)
    ended, settlement = finish_image(conn, claim, owner=owner, result=final, now=now)
    if not ended:
        # Undo within the transaction: the image's new owner records its own outcome.
        if existing is not None:
            conn.execute(_ADD_USER, {"rendition_id": rendition_id, "change": -1})
        else:
            conn.execute(_DROP_RENDITION, {"rendition_id": rendition_id})
    return Recorded(
        ended=ended, settlement=settlement, adopted=existing is not None and ended, result=final
    )


def release(conn: sa.Connection, request_id: UUID) -> tuple[list[str], set[str], set[int]]:
    """Count a request's images off the renditions they show (before the request's rows are
    deleted): ``(keys, kept, sources)``, the object keys of the renditions that lost their
    last user (deleted here), those of the renditions other requests still show (keep
    them), and the sources of the deleted ones (see :func:`forget`)."""
    counts = conn.execute(
        sa.select(_I.rendition_id, sa.func.count())
        .where(_I.request_id == request_id, _I.rendition_id.is_not(None))
        .group_by(_I.rendition_id)
        .order_by(_I.rendition_id)  # one lock order for concurrent deletes
    ).all()
    if not counts:
        return [], set(), set()
    for rendition_id, count in counts:
        conn.execute(_ADD_USER, {"rendition_id": rendition_id, "change": -count})
    ids = [rendition_id for rendition_id, _ in counts]
    rows = conn.execute(
        sa.select(_N.id, _N.source_id, _N.users, _N.result).where(_N.id.in_(ids))
    ).all()
    gone = [row for row in rows if row.users <= 0]
    if gone:
        conn.execute(renditions.delete().where(_N.id.in_([row.id for row in gone])))
    keys = [key for row in gone for key in _keys(row.result)]
    kept = {key for row in rows if row.users > 0 for key in _keys(row.result)}
    return keys, kept, {row.source_id for row in gone}


def forget(conn: sa.Connection, source_ids: Iterable[int]) -> int:
    """Delete those of ``source_ids`` no rendition is made from any more; returns how many.

    Each source row is locked first, as :func:`finish_new` locks it before it adds a
    rendition, and the renditions are then read with a lock (the latest, whatever the
    isolation level): a rendition added meanwhile keeps its source.
    """
    forgotten = 0
    for source_id in sorted(source_ids):
        locked = conn.execute(sa.select(_S.id).where(_S.id == source_id).with_for_update()).first()
        if locked is None:
            continue
        used = conn.execute(
            sa.select(_N.id).where(_N.source_id == source_id).limit(1).with_for_update()
        ).first()
        if used is None:
            conn.execute(sources.delete().where(_S.id == source_id))
            forgotten += 1
    return forgotten


def _remember(
    conn: sa.Connection,
    *,
    client: str,
    url: str,
    request_id: UUID,
    etag: str | None,
    last_modified: str | None,
    content_hash: str,
    now: datetime,
) -> int:
    """Insert or update the source ``url`` of ``client``; returns its id."""
    hashed = url_hash(url)
    values = {
        "etag": _fits(etag, 1024),
        "last_modified": _fits(last_modified, 64),
        "content_hash": content_hash,
        "checked_at": now,
        "checked_by": request_id,
    }
    source_id = conn.execute(_SOURCE_ID, {"by_client": client, "by_url_hash": hashed}).scalar()
    if source_id is not None:
        conn.execute(_UPDATE_SOURCE, {"source_id": source_id, **values})
        return int(source_id)
    inserted = conn.execute(
        _NEW_SOURCE, {"client": client, "url_hash": hashed, "url": url, **values}
    )
    key = inserted.inserted_primary_key
    assert key is not None
    return int(key[0])


def _fits(value: str | None, width: int) -> str | None:
    # A validator too long to store is not remembered: that source is fetched in full.
    return value if value is not None and len(value) <= width else None


def _stored(result: ImageResult) -> dict[str, Any]:
    return {k: v for k, v in msgspec.to_builtins(result).items() if k not in _PER_IMAGE}


def _result_of(stored: dict[str, Any], *, rendition_id: int, reused: str | None) -> ImageResult:
    fields = {k: v for k, v in stored.items() if k not in _PER_IMAGE}
    return ImageResult(status=ImageStatus.DONE, rendition_id=rendition_id, reused=reused, **fields)


def _keys(stored: dict[str, Any]) -> Iterable[str]:
    keys = [stored.get("storage_key"), *(v["key"] for v in stored.get("variants") or ())]
    return dict.fromkeys(key for key in keys if key)
