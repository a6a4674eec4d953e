"""Admin users: argon2 password hashes, login with lockout, ``imgapi create-admin``."""

from __future__ import annotations

import functools
import hashlib
from datetime import UTC, datetime, timedelta
from functools import partial

import anyio
import msgspec
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from imgcore import Database
from imgcore.errors import ImgcoreError

from imgapi.admin import users
from imgapi.admin.users import AdminUser

__all__ = [
    "LOCK_FOR",
    "MAX_FAILURES",
    "MIN_PASSWORD_LENGTH",
    "PasswordError",
    "authenticate",
    "check_password_rules",
    "password_stamp",
    "save_admin",
]

#: Wrong passwords in a row that lock a user, and for how long.
MAX_FAILURES = 5
LOCK_FOR = timedelta(minutes=15)
MIN_PASSWORD_LENGTH = 8
MAX_USERNAME_LENGTH = 150

_hasher = PasswordHasher()


class PasswordError(ImgcoreError):
    """A username or password that cannot be used."""

    reason = "bad_password"


@functools.cache
def _dummy_hash() -> str:
    return _hasher.hash("not a password anyone has")


def _now() -> datetime:
    return datetime.now(UTC)


def _verify(password_hash: str, password: str) -> bool:
    try:
        return _hasher.verify(password_hash, password)
    except (VerificationError, InvalidHashError):
        return False


def password_stamp(user: AdminUser) -> str:
    """A short digest of the user's hash, kept in the session: a new password ends old sessions."""
    return hashlib.sha256(user.password_hash.encode()).hexdigest()[:16]


def check_password_rules(username: str, password: str) -> None:
    """Raise :class:`PasswordError` for an empty or too long username, or a short password."""
    if not username.strip() or username != username.strip():
        raise PasswordError("the username must not be empty nor start or end with spaces")
    if len(username) > MAX_USERNAME_LENGTH:
        raise PasswordError(f"the username is longer than {MAX_USERNAME_LENGTH} characters")
    if len(password) < MIN_PASSWORD_LENGTH:
        raise PasswordError(f"the password needs at least {MIN_PASSWORD_LENGTH} characters")


async def save_admin(database: Database, username: str, password: str) -> bool:
    """Create an admin user or set its password (lifting any lockout); True if created."""
    check_password_rules(username, password)
    password_hash = await anyio.to_thread.run_sync(_hasher.hash, password)
    return await database.write(
        partial(users.save_admin_user, username=username, password_hash=password_hash, now=_now())
    )


async def authenticate(database: Database, username: str, password: str) -> AdminUser | None:
    """The user if the password is right and the user is not locked out, else None.

    Every attempt hashes once, known user or not, so timing does not tell which names
    exist. The ``MAX_FAILURES``-th wrong password in a row locks the user for ``LOCK_FOR``;
    while locked, even the right password is refused.
    """
    user = await database.read(partial(users.get_admin_user, username=username), short=True)
    stored = user.password_hash if user is not None else _dummy_hash()
    valid = await anyio.to_thread.run_sync(_verify, stored, password)
    if user is None:
        return None
    now = _now()
    if user.locked_until is not None and user.locked_until > now:
        return None
    if not valid:
        await database.write(
            partial(
                users.record_admin_login_failure,
                user_id=user.id,
                now=now,
                max_failures=MAX_FAILURES,
                lock_for=LOCK_FOR,
            )
        )
        return None
    new_hash = None
    if _hasher.check_needs_rehash(user.password_hash):
        new_hash = await anyio.to_thread.run_sync(_hasher.hash, password)
    await database.write(
        partial(users.record_admin_login, user_id=user.id, now=now, password_hash=new_hash)
    )
    return user if new_hash is None else msgspec.structs.replace(user, password_hash=new_hash)
