"""API clients and their keys: create, list and revoke keys, and find the client of a key.

A key is 256 random bits, shown once when created; the database keeps only its SHA-256 (a
fast hash is right for a key nobody could guess, unlike a password), so a key is looked up
by its hash. Keys in ``IMGAPI_API_KEYS`` are a client each, named ``env:`` and the start of
their hash. The name of a key's client is what imgcore records as the owner of the requests
it uploads.
"""

from __future__ import annotations

import hashlib
import re
import secrets
from datetime import UTC, datetime
from functools import partial

import msgspec
import sqlalchemy as sa
from imgcore import Database
from imgcore.errors import ImgcoreError

from imgapi.tables import api_clients, api_keys

__all__ = [
    "KEY_PREFIX",
    "ClientError",
    "ClientInfo",
    "KeyInfo",
    "any_key",
    "client_limit",
    "client_of_key",
    "create_key",
    "env_client_name",
    "hash_key",
    "list_clients",
    "revoke_keys",
    "set_limit",
]

KEY_PREFIX = "imgapi_"
"""Every key created by ``imgapi keys create`` starts with it (secret scanners match on it)."""
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._@-]{0,63}")
_SHOWN = 12  # characters of a key kept to tell keys apart: the prefix and 5 random ones
_C = api_clients.c
_K = api_keys.c


class ClientError(ImgcoreError):
    """A client name that cannot be used, or no such client or key."""

    reason = "bad_client"


class KeyInfo(msgspec.Struct, frozen=True, kw_only=True):
    """One key of a client (never the key itself)."""

    prefix: str
    created_at: datetime
    revoked_at: datetime | None


class ClientInfo(msgspec.Struct, frozen=True, kw_only=True):
    """A client and its keys."""

    name: str
    created_at: datetime
    max_unfinished_images: int | None
    keys: list[KeyInfo]


def hash_key(key: bytes) -> str:
    """The stored form of a key: its SHA-256, in hex."""
    return hashlib.sha256(key).hexdigest()


def env_client_name(key: bytes) -> str:
    """The client an ``IMGAPI_API_KEYS`` key stands for: stable, and naming no part of it."""
    return f"env:{hash_key(key)[:16]}"


def check_name(name: str) -> str:
    """``name`` if it can name a client: 1-64 letters, digits and ``._@-``, not ``env:…``."""
    if not _NAME.fullmatch(name):
        raise ClientError(
            f"a client name is 1 to 64 letters, digits, '.', '_', '@' or '-', "
            f"starting with a letter or digit: {name!r}"
        )
    return name


def _now() -> datetime:
    return datetime.now(UTC)


def _create_key(conn: sa.Connection, name: str, key: str, now: datetime) -> None:
    client_id = conn.execute(sa.select(_C.id).where(_C.name == name)).scalar_one_or_none()
    if client_id is None:
        result = conn.execute(api_clients.insert().values(name=name, created_at=now))
        inserted = result.inserted_primary_key
        assert inserted is not None
        client_id = inserted[0]
    conn.execute(
        api_keys.insert().values(
            client_id=client_id,
            key_hash=hash_key(key.encode()),
            prefix=key[:_SHOWN],
            created_at=now,
        )
    )


async def create_key(database: Database, name: str) -> str:
    """A new key for client ``name`` (created if new); returns the key, which is not stored."""
    check_name(name)
    key = KEY_PREFIX + secrets.token_urlsafe(32)
    await database.write(partial(_create_key, name=name, key=key, now=_now()))
    return key


def _revoke(conn: sa.Connection, name: str, prefix: str | None, now: datetime) -> int:
    client_id = conn.execute(sa.select(_C.id).where(_C.name == name)).scalar_one_or_none()
    if client_id is None:
        raise ClientError(f"no client named {name!r}")
    query = api_keys.update().where(_K.client_id == client_id, _K.revoked_at.is_(None))
    if prefix is not None:
        query = query.where(_K.prefix == prefix[:_SHOWN])
    return conn.execute(query.values(revoked_at=now)).rowcount


async def revoke_keys(database: Database, name: str, *, prefix: str | None = None) -> int:
    """Revoke client ``name``'s keys (only the one starting with ``prefix``, if given);
    returns how many. Raises :class:`ClientError` for an unknown client."""
    if prefix is not None and len(prefix) < len(KEY_PREFIX) + 1:
        raise ClientError("give a key's first characters as `imgapi keys list` shows them")
    return await database.write(partial(_revoke, name=name, prefix=prefix, now=_now()))


def _list(conn: sa.Connection) -> list[ClientInfo]:
    clients = conn.execute(sa.select(api_clients).order_by(_C.name)).all()
    keys = conn.execute(sa.select(api_keys).order_by(_K.created_at, _K.id)).all()
    by_client: dict[int, list[KeyInfo]] = {}
    for key in keys:
        by_client.setdefault(key.client_id, []).append(
            KeyInfo(prefix=key.prefix, created_at=key.created_at, revoked_at=key.revoked_at)
        )
    return [
        ClientInfo(
            name=row.name,
            created_at=row.created_at,
            max_unfinished_images=row.max_unfinished_images,
            keys=by_client.get(row.id, []),
        )
        for row in clients
    ]


async def list_clients(database: Database) -> list[ClientInfo]:
    """Every client with its keys, by name."""
    return await database.read(_list)


def _set_limit(conn: sa.Connection, name: str, limit: int | None) -> None:
    result = conn.execute(
        api_clients.update().where(_C.name == name).values(max_unfinished_images=limit)
    )
    if result.rowcount != 1:
        raise ClientError(f"no client named {name!r}")


async def set_limit(database: Database, name: str, limit: int | None) -> None:
    """Set client ``name``'s own limit on unfinished images (None: the setting's)."""
    if limit is not None and limit < 0:
        raise ClientError(f"a limit is 0 (none) or more images, not {limit}")
    await database.write(partial(_set_limit, name=name, limit=limit))


def client_limit(conn: sa.Connection, name: str) -> int | None:
    """Client ``name``'s own limit on unfinished images, if it has one."""
    limit: int | None = conn.execute(
        sa.select(_C.max_unfinished_images).where(_C.name == name)
    ).scalar_one_or_none()
    return limit


_CLIENT_OF_KEY = (
    sa.select(_C.name)
    .join(api_keys, _K.client_id == _C.id)
    .where(_K.key_hash == sa.bindparam("key_hash"), _K.revoked_at.is_(None))
)
_ANY_KEY = sa.select(_K.id).limit(1)


def client_of_key(conn: sa.Connection, key: bytes) -> str | None:
    """The client holding the unrevoked key ``key``, or None."""
    name: str | None = conn.execute(
        _CLIENT_OF_KEY, {"key_hash": hash_key(key)}
    ).scalar_one_or_none()
    return name


def any_key(conn: sa.Connection) -> bool:
    """Whether a key was ever created (revoked ones count: revoking every key must not open
    the API)."""
    return conn.execute(_ANY_KEY).first() is not None
