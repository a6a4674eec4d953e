"""initial schema

Revision ID: 0001
Revises:
Create Date: 2026-11-23 21:13:53.086043
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import mysql

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# imgcore._db.tables' UTCDateTime, BigId and MySQL table options, spelt out so that this
# revision keeps creating the same schema whatever later versions of that module do.
UTCDateTime = sa.DateTime().with_variant(mysql.DATETIME(fsp=6), "mysql", "mariadb")
BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
MYSQL_TABLE_OPTIONS: dict[str, Any] = {"mysql_engine": "InnoDB", "mysql_charset": "utf8mb4"}


def upgrade() -> None:
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
    op.create_table(
        "requests",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("webhook_url", sa.String(length=2048), nullable=True),
        sa.Column("filename", sa.String(length=255), nullable=True),
        sa.Column("header", sa.JSON(), nullable=False),
        sa.Column("total_products", sa.Integer(), nullable=False),
        sa.Column("total_images", sa.Integer(), nullable=False),
        sa.Column("done_images", sa.Integer(), server_default="0", nullable=False),
        sa.Column("failed_images", sa.Integer(), server_default="0", nullable=False),
        sa.Column("input_bytes", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("output_bytes", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("created_at", UTCDateTime, nullable=False),
        sa.Column("updated_at", UTCDateTime, nullable=False),
        sa.Column("finished_at", UTCDateTime, nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_requests")),
        **MYSQL_TABLE_OPTIONS,
    )
    op.create_index(op.f("ix_requests_created_at"), "requests", ["created_at"])
    op.create_index(op.f("ix_requests_status_created_at"), "requests", ["status", "created_at"])
    op.create_table(
        "deliveries",
        sa.Column("id", BigId, autoincrement=True, nullable=False),
        sa.Column("request_id", sa.Uuid(), nullable=False),
        sa.Column("message_id", sa.String(length=64), nullable=False),
        sa.Column("notifier", sa.String(length=64), nullable=False),
        sa.Column("event", sa.String(length=64), nullable=False),
        sa.Column("target", sa.String(length=2048), nullable=True),
        sa.Column("payload", sa.JSON(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("attempts", sa.Integer(), server_default="0", nullable=False),
        sa.Column("available_at", UTCDateTime, nullable=False),
        sa.Column("lease_owner", sa.String(length=64), nullable=True),
        sa.Column("last_status_code", sa.Integer(), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("created_at", UTCDateTime, nullable=False),
        sa.Column("updated_at", UTCDateTime, nullable=False),
        sa.Column("delivered_at", UTCDateTime, nullable=True),
        sa.ForeignKeyConstraint(
            ["request_id"],
            ["requests.id"],
            name=op.f("fk_deliveries_request_id_requests"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_deliveries")),
        sa.UniqueConstraint("message_id", name=op.f("uq_deliveries_message_id")),
        **MYSQL_TABLE_OPTIONS,
    )
    op.create_index(op.f("ix_deliveries_request_id"), "deliveries", ["request_id"])
    op.create_index(
        op.f("ix_deliveries_status_available_at"), "deliveries", ["status", "available_at"]
    )
    op.create_table(
        "products",
        sa.Column("request_id", sa.Uuid(), nullable=False),
        sa.Column("position", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("row", sa.Integer(), nullable=False),
        sa.Column("serial", sa.BigInteger(), nullable=False),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("extra", sa.JSON(), nullable=True),
        sa.ForeignKeyConstraint(
            ["request_id"],
            ["requests.id"],
            name=op.f("fk_products_request_id_requests"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("request_id", "position", name=op.f("pk_products")),
        **MYSQL_TABLE_OPTIONS,
    )
    op.create_table(
        "images",
        sa.Column("id", BigId, autoincrement=True, nullable=False),
        sa.Column("request_id", sa.Uuid(), nullable=False),
        sa.Column("product_position", sa.Integer(), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("url", sa.String(length=2048), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("attempts", sa.Integer(), server_default="0", nullable=False),
        sa.Column("available_at", UTCDateTime, nullable=False),
        sa.Column("lease_owner", sa.String(length=64), nullable=True),
        sa.Column("error_reason", sa.String(length=64), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("storage_key", sa.String(length=512), nullable=True),
        sa.Column("thumbnail_key", sa.String(length=512), nullable=True),
        sa.Column("input_bytes", sa.BigInteger(), nullable=True),
        sa.Column("output_bytes", sa.BigInteger(), nullable=True),
        sa.Column("input_width", sa.Integer(), nullable=True),
        sa.Column("input_height", sa.Integer(), nullable=True),
        sa.Column("output_width", sa.Integer(), nullable=True),
        sa.Column("output_height", sa.Integer(), nullable=True),
        sa.Column("input_format", sa.String(length=8), nullable=True),
        sa.Column("output_format", sa.String(length=8), nullable=True),
        sa.Column("started_at", UTCDateTime, nullable=True),
        sa.Column("finished_at", UTCDateTime, nullable=True),
        sa.ForeignKeyConstraint(
            ["request_id", "product_position"],
            ["products.request_id", "products.position"],
            name=op.f("fk_images_request_id_product_position_products"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_images")),
        sa.UniqueConstraint(
            "request_id",
            "product_position",
            "position",
            name=op.f("uq_images_request_id_product_position_position"),
        ),
        **MYSQL_TABLE_OPTIONS,
    )
    op.create_index(op.f("ix_images_lease_owner"), "images", ["lease_owner"])
    op.create_index(op.f("ix_images_request_id_status"), "images", ["request_id", "status"])
    op.create_index(op.f("ix_images_status_available_at"), "images", ["status", "available_at"])


def downgrade() -> None:
    # Dropping a table drops its indexes; children go before their parents.
    op.drop_table("images")
    op.drop_table("products")
    op.drop_table("deliveries")
    op.drop_table("requests")
    op.drop_table("admin_users")
