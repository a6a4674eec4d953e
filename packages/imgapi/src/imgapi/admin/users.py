"""Admin users: the ``AdminUser`` record and every query on imgapi's ``admin_users`` table.

Each query is a function of a synchronous connection, run by the Engine's database
(``engine.database.read(fn)`` / ``write(fn)``).
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import msgspec
import sqlalchemy as sa

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


def record_admin_login_failure(
    conn: sa.Connection,
    user_id: int,
    *,
    now: datetime,
    max_failures: int,
    lock_for: timedelta,
) -> datetime | None:
    """Count a wrong password; the ``max_failures``-th in a row locks the user for ``lock_for``.

    Returns when the lock ends if this failure set one, else None.
    """
    # One UPDATE: concurrent failures cannot both read the same count.
    conn.execute(
        admin_users.update().where(_U.id == user_id).values(failed_logins=_U.failed_logins + 1)
    )
    failures = (
        conn.execute(sa.select(_U.failed_logins).where(_U.id == user_id))
    ).scalar_one_or_none()
    if failures is None or failures < max_failures:
        return None
    until = now + lock_for
    conn.execute(
        admin_users.update().where(_U.id == user_id).values(failed_logins=0, locked_until=until)
    )
    return until


def record_admin_login(
    conn: sa.Connection, user_id: int, *, now: datetime, password_hash: str | None = None
) -> None:
    """A successful login: reset the failure count; ``password_hash`` replaces an outdated one."""
    values: dict[str, Any] = {"failed_logins": 0, "locked_until": None, "last_login_at": now}
    if password_hash is not None:
        values["password_hash"] = password_hash
    conn.execute(admin_users.update().where(_U.id == user_id).values(**values))
