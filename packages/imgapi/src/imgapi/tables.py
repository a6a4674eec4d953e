"""imgapi's own tables in imgcore's database (admin users and their sessions), and the hook
that migrates them.

imgapi registers this module as an ``imgcore`` plugin (an entry point), so that
``imgcore db upgrade`` and an Engine's start-up check include imgapi's migration branch
(``imgapi/migrations``) beside imgcore's own.
"""

from __future__ import annotations

from pathlib import Path

import sqlalchemy as sa
from imgcore.plugin import UTCDateTime, hookimpl

__all__ = ["MIGRATIONS", "admin_sessions", "admin_users", "imgcore_migrations", "metadata"]

MIGRATIONS = Path(__file__).parent / "migrations"
"""imgapi's Alembic branch (label ``imgapi``)."""

metadata = sa.MetaData(
    naming_convention={
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "pk": "pk_%(table_name)s",
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
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


@hookimpl
def imgcore_migrations() -> list[Path]:
    """imgapi's migration branch."""
    return [MIGRATIONS]
