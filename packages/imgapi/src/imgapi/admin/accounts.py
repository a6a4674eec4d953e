"""Admin accounts: argon2 password hashes, login with lockout, sessions, ``imgapi create-admin``."""

from __future__ import annotations

import functools
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import TypeVar

import anyio
import anyio.to_thread
import msgspec
import sqlalchemy as sa
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from imgcore import Database
from imgcore.errors import ImgcoreError

from imgapi.admin import sessions, users
from imgapi.admin.throttle import LoginLimits
from imgapi.admin.users import AdminUser

T = TypeVar("T")

__all__ = [
    "LOCK_FOR",
    "MAX_FAILURES",
    "MIN_PASSWORD_LENGTH",
    "SESSION_LIFETIME",
    "PasswordError",
    "UnknownAdminError",
    "authenticate",
    "check_password_rules",
    "end_session",
    "revoke_sessions",
    "save_admin",
    "session_user",
    "start_session",
]

#: Wrong passwords in a row that lock a user, and for how long.
MAX_FAILURES = 5
LOCK_FOR = timedelta(minutes=15)
MIN_PASSWORD_LENGTH = 8
MAX_USERNAME_LENGTH = 150
#: A login lasts this long, however active the admin is.
SESSION_LIFETIME = timedelta(hours=12)

_hasher = PasswordHasher()


class PasswordError(ImgcoreError):
    """A username or password that cannot be used."""

    reason = "bad_password"


class UnknownAdminError(ImgcoreError):
    """No admin user has this username."""

    reason = "unknown_admin"


@functools.cache
def _dummy_hash() -> str:
    return _hasher.hash("not a password anyone has")


def _now() -> datetime:
    return datetime.now(UTC)


def _verify(password_hash: str | None, password: str) -> bool:
    """Check ``password``; with no hash (no such user), against a dummy one all the same."""
    try:
        if password_hash is None:
            _hasher.verify(_dummy_hash(), password)
            return False
        return _hasher.verify(password_hash, password)
    except (VerificationError, InvalidHashError):
        return False


def check_password_rules(username: str, password: str) -> None:
    """Raise :class:`PasswordError` for an empty or too long username, or a short password."""
    if not username.strip() or username != username.strip():
        raise PasswordError("the username must not be empty nor start or end with spaces")
    if len(username) > MAX_USERNAME_LENGTH:
        raise PasswordError(f"the username is longer than {MAX_USERNAME_LENGTH} characters")
    if len(password) < MIN_PASSWORD_LENGTH:
        raise PasswordError(f"the password needs at least {MIN_PASSWORD_LENGTH} characters")


async def save_admin(database: Database, username: str, password: str) -> bool:
    """Create an admin user or set its password; True if created.

    A new password lifts any lockout and ends every session of the user.
    """
    check_password_rules(username, password)
    password_hash = await anyio.to_thread.run_sync(_hasher.hash, password)
    return await database.write(
        partial(_save_admin, username=username, password_hash=password_hash, now=_now())
    )


def _save_admin(conn: sa.Connection, *, username: str, password_hash: str, now: datetime) -> bool:
    created = users.save_admin_user(conn, username, password_hash, now=now)
    user = users.get_admin_user(conn, username=username)
    if not created and user is not None:
        sessions.end_user_sessions(conn, user_id=user.id)
    return created


async def authenticate(
    database: Database, username: str, password: str, *, limits: LoginLimits | None = None
) -> AdminUser | None:
    """The user if the password is right and the user is not locked out, else None.

    Every attempt hashes once, known user or not, so timing does not tell which names
    exist; ``limits`` bounds how many hashes run at once (else they run on the default
    thread pool). The decision is made on the row as it is after the check: the
    ``MAX_FAILURES``-th wrong password in a row, counted atomically however many arrive at
    once, locks the user for ``LOCK_FOR``, and while locked even the right password is
    refused.
    """
    user = await database.read(partial(users.get_admin_user, username=username), short=True)
    stored = user.password_hash if user is not None else None
    valid = await _run_hash(limits, _verify, stored, password)
    if user is None:
        return None
    if not valid:
        await database.write(
            partial(
                users.record_admin_login_failure,
                user_id=user.id,
                now=_now(),
                max_failures=MAX_FAILURES,
                lock_for=LOCK_FOR,
            )
        )
        return None
    new_hash = None
    if _hasher.check_needs_rehash(user.password_hash):
        new_hash = await _run_hash(limits, _hasher.hash, password)
    logged_in = await database.write(
        partial(
            users.record_admin_login,
            user_id=user.id,
            now=_now(),
            checked_hash=user.password_hash,
            password_hash=new_hash,
        )
    )
    if not logged_in:
        return None
    return user if new_hash is None else msgspec.structs.replace(user, password_hash=new_hash)


async def _run_hash(limits: LoginLimits | None, fn: Callable[..., T], *args: object) -> T:
    if limits is None:
        return await anyio.to_thread.run_sync(fn, *args)
    return await limits.run_hash(fn, *args)


async def start_session(database: Database, user: AdminUser) -> str:
    """Open a session of ``SESSION_LIFETIME`` for ``user``; its token, for the cookie."""
    token = sessions.new_token()
    now = _now()
    await database.write(
        partial(
            sessions.open_session,
            user_id=user.id,
            token=token,
            now=now,
            expires_at=now + SESSION_LIFETIME,
        )
    )
    return token


async def session_user(database: Database, token: str) -> AdminUser | None:
    """The user of the live session with ``token``, or None.

    A plain read: it never waits for the SQLite write lock another process holds.
    """
    return await database.read(partial(sessions.session_user, token=token, now=_now()), short=True)


async def end_session(database: Database, token: str) -> None:
    """End the session with ``token`` (logout)."""
    await database.write(partial(sessions.end_session, token=token))


async def revoke_sessions(database: Database, username: str) -> int:
    """End every session of the admin ``username``; how many (UnknownAdminError if none)."""

    def revoke(conn: sa.Connection) -> int | None:
        user = users.get_admin_user(conn, username=username)
        return None if user is None else sessions.end_user_sessions(conn, user_id=user.id)

    ended = await database.write(revoke)
    if ended is None:
        raise UnknownAdminError(f"no admin user {username!r}")
    return ended
