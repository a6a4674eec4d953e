"""Admin sessions kept server-side: every query on imgapi's ``admin_sessions`` table.

The session cookie carries a random token; the table keeps only its SHA-256, the user and
when the session ends. Deleting a row ends that session at once, whatever copies of the
cookie exist: at logout, for every session of a user whose password is set, and when an
admin revokes them all. Each query is a function of a synchronous connection, run by the
Engine's database (``engine.database.read(fn)`` / ``write(fn)``).
"""

from __future__ import annotations

import hashlib
import secrets
from datetime import datetime

import msgspec
import sqlalchemy as sa

from imgapi.admin.users import AdminUser
from imgapi.tables import admin_sessions, admin_users

__all__ = [
    "delete_expired_sessions",
    "end_session",
    "end_user_sessions",
    "new_token",
    "open_session",
    "session_user",
    "token_hash",
]

_S = admin_sessions.c
_U = admin_users.c


def new_token() -> str:
    """A new session token (256 random bits), for the cookie."""
    return secrets.token_urlsafe(32)


def token_hash(token: str) -> str:
    """What the table keeps of a token: its SHA-256, in hex."""
    return hashlib.sha256(token.encode()).hexdigest()


def open_session(
    conn: sa.Connection, *, user_id: int, token: str, now: datetime, expires_at: datetime
) -> None:
    """Record a new session of ``user_id``; expired sessions of anyone are deleted meanwhile."""
    delete_expired_sessions(conn, now=now)
    conn.execute(
        admin_sessions.insert().values(
            token_hash=token_hash(token), user_id=user_id, created_at=now, expires_at=expires_at
        )
    )


def session_user(conn: sa.Connection, *, token: str, now: datetime) -> AdminUser | None:
    """The user of the unexpired session with this token, or None (a plain read)."""
    row = conn.execute(
        sa.select(admin_users)
        .join(admin_sessions, _S.user_id == _U.id)
        .where(_S.token_hash == token_hash(token), _S.expires_at > now)
    ).one_or_none()
    if row is None:
        return None
    # Column names come back as SQLAlchemy's quoted_name (a str subclass msgspec refuses).
    return msgspec.convert({str(k): v for k, v in row._mapping.items()}, AdminUser)


def end_session(conn: sa.Connection, *, token: str) -> bool:
    """Delete the session with this token; True if there was one."""
    deleted = conn.execute(admin_sessions.delete().where(_S.token_hash == token_hash(token)))
    return bool(deleted.rowcount)


def end_user_sessions(conn: sa.Connection, *, user_id: int, keep: str | None = None) -> int:
    """Delete every session of ``user_id`` (but the one with token ``keep``); how many."""
    query = admin_sessions.delete().where(_S.user_id == user_id)
    if keep is not None:
        query = query.where(_S.token_hash != token_hash(keep))
    return int(conn.execute(query).rowcount)


def delete_expired_sessions(conn: sa.Connection, *, now: datetime) -> int:
    """Delete the sessions that have ended by ``now``; how many."""
    return int(conn.execute(admin_sessions.delete().where(_S.expires_at <= now)).rowcount)
