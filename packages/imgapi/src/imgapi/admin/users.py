"""Admin users: the ``AdminUser`` record and every query on imgapi's ``admin_users`` table.

Each query is a function of a synchronous connection, run by the Engine's database
(``engine.database.read(fn)`` / ``write(fn)``).
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import msgspec
import sqlalchemy as sa
from imgcore.plugin import UTCDateTime

from imgapi.tables import admin_users

__all__ = [
    "AdminUser",
    "get_admin_user",
    "record_admin_login",
    "record_admin_login_failure",
    "save_admin_user",
]

_U = admin_users.c


class AdminUser(msgspec.Struct, frozen=True, kw_only=True):
    """A person allowed into the admin pages (the password only as its hash)."""

    id: int
    username: str
    password_hash: str
    failed_logins: int
    locked_until: datetime | None
    created_at: datetime
    last_login_at: datetime | None


def get_admin_user(
    conn: sa.Connection, *, username: str | None = None, user_id: int | None = None
) -> AdminUser | None:
    """The admin user with this username or id, or None."""
    query = sa.select(admin_users)
    if username is not None:
        query = query.where(_U.username == username)
    elif user_id is not None:
        query = query.where(_U.id == user_id)
    else:
        raise ValueError("pass username or user_id")
    row = (conn.execute(query)).one_or_none()
    if row is None:
        return None
    # Column names come back as SQLAlchemy's quoted_name (a str subclass msgspec refuses).
    return msgspec.convert({str(k): v for k, v in row._mapping.items()}, AdminUser)


def save_admin_user(
    conn: sa.Connection, username: str, password_hash: str, *, now: datetime
) -> bool:
    """Create the user, or set its password (which also lifts a lockout); True if created."""
    updated = conn.execute(
        admin_users.update()
        .where(_U.username == username)
        .values(password_hash=password_hash, failed_logins=0, locked_until=None)
    )
    if updated.rowcount:
        return False
    conn.execute(
        admin_users.insert().values(
            username=username, password_hash=password_hash, failed_logins=0, created_at=now
        )
    )
    return True


def _unlocked(now: datetime) -> sa.ColumnElement[bool]:
    return sa.or_(_U.locked_until.is_(None), _U.locked_until <= now)


def record_admin_login_failure(
    conn: sa.Connection,
    user_id: int,
    *,
    now: datetime,
    max_failures: int,
    lock_for: timedelta,
) -> datetime | None:
    """Count a wrong password; the ``max_failures``-th in a row locks the user for ``lock_for``.

    One UPDATE counts and locks, so concurrent failures each count once and exactly one of
    them sets the lock; a failure while locked counts nothing. Returns when the lock ends if
    the user is locked now, else None.
    """
    failures = _U.failed_logins + 1
    locks = failures >= max_failures
    conn.execute(
        admin_users.update()
        .where(_U.id == user_id, _unlocked(now))
        # locked_until first: MariaDB assigns left to right, each later expression seeing
        # the new values; PostgreSQL and SQLite read the old row throughout.
        .ordered_values(
            (
                _U.locked_until,
                sa.case((locks, sa.literal(now + lock_for, UTCDateTime())), else_=_U.locked_until),
            ),
            (_U.failed_logins, sa.case((locks, 0), else_=failures)),
        )
    )
    until: datetime | None = conn.execute(
        sa.select(_U.locked_until).where(_U.id == user_id)
    ).scalar_one_or_none()
    return until if until is not None and until > now else None


def record_admin_login(
    conn: sa.Connection,
    user_id: int,
    *,
    now: datetime,
    checked_hash: str,
    password_hash: str | None = None,
) -> bool:
    """A right password: log in unless the user is locked now or its password changed since.

    ``checked_hash`` is the hash the password was checked against. Decided by one UPDATE on
    the row as it is now, after the slow check: a lock set by concurrent failures meanwhile
    refuses this login. On success the failure count is reset and ``password_hash``, if
    given, replaces an outdated hash. True if logged in.
    """
    values: dict[str, Any] = {"failed_logins": 0, "locked_until": None, "last_login_at": now}
    if password_hash is not None:
        values["password_hash"] = password_hash
    updated = conn.execute(
        admin_users.update()
        .where(_U.id == user_id, _U.password_hash == checked_hash, _unlocked(now))
        .values(**values)
    )
    return bool(updated.rowcount)
