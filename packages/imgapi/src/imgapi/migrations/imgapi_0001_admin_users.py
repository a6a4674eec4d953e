"""imgapi owns admin_users

Revision ID: imgapi_0001
Revises:
Create Date: 2026-12-02

The table was created by imgcore's revision 0001 while imgcore still owned it, so a database
migrated then has it already: this revision adopts it, and creates it where it is missing.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import mysql

revision: str = "imgapi_0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = ("imgapi",)
depends_on: str | Sequence[str] | None = "0001"

# Spelt out, so that this revision keeps creating the same table whatever imgapi.tables does.
UTCDateTime = sa.DateTime().with_variant(mysql.DATETIME(fsp=6), "mysql", "mariadb")
BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
MYSQL_TABLE_OPTIONS: dict[str, Any] = {"mysql_engine": "InnoDB", "mysql_charset": "utf8mb4"}


def upgrade() -> None:
    if sa.inspect(op.get_bind()).has_table("admin_users"):
        return
    op.create_table(
        "admin_users",
        sa.Column("id", BigId, autoincrement=True, nullable=False),
        sa.Column("username", sa.String(length=150), nullable=False),
        sa.Column("password_hash", sa.String(length=255), nullable=False),
        sa.Column("failed_logins", sa.Integer(), server_default="0", nullable=False),
        sa.Column("locked_until", UTCDateTime, nullable=True),
        sa.Column("created_at", UTCDateTime, nullable=False),
        sa.Column("last_login_at", UTCDateTime, nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_admin_users")),
        sa.UniqueConstraint("username", name=op.f("uq_admin_users_username")),
        **MYSQL_TABLE_OPTIONS,
    )


def downgrade() -> None:
    # Nothing: imgcore's revision 0001 created the table and its downgrade drops it.
    pass
