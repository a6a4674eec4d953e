"""imgapi's own tables in imgcore's database (admin users and their sessions, API clients
and their keys), and the hook that migrates them.

imgapi registers this module as an ``imgcore`` plugin (an entry point), so that
``imgcore db upgrade`` and an Engine's start-up check include imgapi's migration branch
(``imgapi/migrations``) beside imgcore's own.
"""

from __future__ import annotations

from pathlib import Path

import sqlalchemy as sa
from imgcore.plugin import UTCDateTime, hookimpl

__all__ = [
    "MIGRATIONS",
    "admin_sessions",
    "admin_users",
    "api_clients",
    "api_keys",
    "imgcore_migrations",
    "metadata",
]

MIGRATIONS = Path(__file__).parent / "migrations"
"""imgapi's Alembic branch (label ``imgapi``)."""

metadata = sa.MetaData(
    naming_convention={
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "pk": "pk_%(table_name)s",
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "fk": "fk_%(table_name)s_%(column_0_N_name)s_%(referred_table_name)s",
    }
)


admin_users = sa.Table(
    "admin_users",
    metadata,
    # BIGINT, but SQLite only autoincrements an INTEGER PRIMARY KEY.
    sa.Column(
        "id",
        sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
        primary_key=True,
        autoincrement=True,
    ),
    sa.Column("username", sa.String(150), nullable=False, unique=True),
    sa.Column("password_hash", sa.String(255), nullable=False),
    sa.Column("failed_logins", sa.Integer(), nullable=False, server_default="0"),
    sa.Column("locked_until", UTCDateTime()),
    sa.Column("created_at", UTCDateTime(), nullable=False),
    sa.Column("last_login_at", UTCDateTime()),
    mysql_engine="InnoDB",
    mysql_charset="utf8mb4",
)

admin_sessions = sa.Table(
    "admin_sessions",
    metadata,
    sa.Column(
        "id",
        sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
        primary_key=True,
        autoincrement=True,
    ),
    # SHA-256 of the session's token (hex): the token itself lives only in the cookie.
    sa.Column("token_hash", sa.String(64), nullable=False, unique=True),
    sa.Column(
        "user_id",
        sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
        sa.ForeignKey("admin_users.id", ondelete="CASCADE"),
        nullable=False,
        index=True,
    ),
    sa.Column("created_at", UTCDateTime(), nullable=False),
    sa.Column("expires_at", UTCDateTime(), nullable=False, index=True),
    mysql_engine="InnoDB",
    mysql_charset="utf8mb4",
)

# An API client: requests belong to it (imgcore's requests.client holds its name).
api_clients = sa.Table(
    "api_clients",
    metadata,
    sa.Column(
        "id",
        sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
        primary_key=True,
        autoincrement=True,
    ),
    sa.Column("name", sa.String(64), nullable=False, unique=True),
    # This client's limit on images not finished yet; None: IMGAPI_MAX_UNFINISHED_IMAGES.
    sa.Column("max_unfinished_images", sa.BigInteger()),
    sa.Column("created_at", UTCDateTime(), nullable=False),
    mysql_engine="InnoDB",
    mysql_charset="utf8mb4",
)

# Its keys: only a SHA-256 of each (a random 256-bit key needs no slow hash), looked up by it.
api_keys = sa.Table(
    "api_keys",
    metadata,
    sa.Column(
        "id",
        sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
        primary_key=True,
        autoincrement=True,
    ),
    sa.Column(
        "client_id",
        sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
        sa.ForeignKey("api_clients.id", ondelete="CASCADE"),
        nullable=False,
    ),
    sa.Column("key_hash", sa.String(64), nullable=False, unique=True),
    # The key's first characters, shown by `imgapi keys list` to tell keys apart.
    sa.Column("prefix", sa.String(16), nullable=False),
    sa.Column("created_at", UTCDateTime(), nullable=False),
    sa.Column("revoked_at", UTCDateTime()),
    sa.Index(None, "client_id"),
    mysql_engine="InnoDB",
    mysql_charset="utf8mb4",
)


@hookimpl
def imgcore_migrations() -> list[Path]:
    """imgapi's migration branch."""
    return [MIGRATIONS]
