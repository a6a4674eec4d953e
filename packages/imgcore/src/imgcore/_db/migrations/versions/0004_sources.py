"""sources and renditions: what re-imports reuse

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-02

Each source URL imgcore processed (per client), with its validators and content hash; the
outputs made from it per recipe, counted by the images that show them.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import mysql

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

UTCDateTime = sa.DateTime().with_variant(mysql.DATETIME(fsp=6), "mysql", "mariadb")
BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
TABLE_OPTIONS: dict[str, Any] = {"mysql_engine": "InnoDB", "mysql_charset": "utf8mb4"}


def upgrade() -> None:
    op.create_table(
        "sources",
        sa.Column("id", BigId, autoincrement=True, nullable=False),
        sa.Column("client", sa.String(length=64), nullable=False),
        sa.Column("url_hash", sa.String(length=64), nullable=False),
        sa.Column("url", sa.String(length=2048), nullable=False),
        sa.Column("etag", sa.String(length=1024), nullable=True),
        sa.Column("last_modified", sa.String(length=64), nullable=True),
        sa.Column("content_hash", sa.String(length=64), nullable=False),
        sa.Column("checked_at", UTCDateTime, nullable=False),
        sa.Column("checked_by", sa.Uuid(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_sources")),
        sa.UniqueConstraint("client", "url_hash", name=op.f("uq_sources_client_url_hash")),
        sqlite_autoincrement=True,
        **TABLE_OPTIONS,
    )
    op.create_table(
        "renditions",
        sa.Column("id", BigId, autoincrement=True, nullable=False),
        sa.Column("source_id", BigId, nullable=False),
        sa.Column("recipe", sa.String(length=64), nullable=False),
        sa.Column("content_hash", sa.String(length=64), nullable=False),
        sa.Column("result", sa.JSON(), nullable=False),
        sa.Column("users", sa.Integer(), nullable=False),
        sa.Column("created_at", UTCDateTime, nullable=False),
        sa.ForeignKeyConstraint(
            ["source_id"],
            ["sources.id"],
            name=op.f("fk_renditions_source_id_sources"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_renditions")),
        sa.UniqueConstraint(
            "source_id",
            "recipe",
            "content_hash",
            name=op.f("uq_renditions_source_id_recipe_content_hash"),
        ),
        sqlite_autoincrement=True,
        **TABLE_OPTIONS,
    )
    with op.batch_alter_table("images") as batch:
        batch.add_column(sa.Column("rendition_id", sa.BigInteger(), nullable=True))
        batch.add_column(sa.Column("reused", sa.String(length=16), nullable=True))
    with op.batch_alter_table("requests") as batch:
        batch.add_column(
            sa.Column("reused_images", sa.Integer(), server_default="0", nullable=False)
        )


def downgrade() -> None:
    with op.batch_alter_table("requests") as batch:
        batch.drop_column("reused_images")
    with op.batch_alter_table("images") as batch:
        batch.drop_column("reused")
        batch.drop_column("rendition_id")
    op.drop_table("renditions")
    op.drop_table("sources")
