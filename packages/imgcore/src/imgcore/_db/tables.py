"""The database schema (SQLAlchemy Core), the same on SQLite, PostgreSQL and MariaDB/MySQL.

Alembic migrations in ``imgcore/_db/migrations`` create exactly this (plus ``admin_users``,
which revision 0001 created before imgapi took it over); a test compares them.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from imgcore._sqltypes import UTCDateTime

__all__ = [
    "UTCDateTime",
    "deliveries",
    "images",
    "metadata",
    "products",
    "renditions",
    "requests",
    "sources",
]

metadata = sa.MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "ck": "ck_%(table_name)s_%(constraint_name)s",
        "fk": "fk_%(table_name)s_%(column_0_N_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)


# InnoDB for transactions and row locks; utf8mb4 whatever the database's default charset
# (MariaDB still defaults to latin1, which rejects most non-ASCII product names).
MYSQL_TABLE_OPTIONS: dict[str, Any] = {"mysql_engine": "InnoDB", "mysql_charset": "utf8mb4"}

# BIGINT ids everywhere, but SQLite only autoincrements an INTEGER PRIMARY KEY.
BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")

requests = sa.Table(
    "requests",
    metadata,
    sa.Column("id", sa.Uuid(), primary_key=True),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("webhook_url", sa.String(2048)),
    sa.Column("filename", sa.String(255)),
    # The input header as written, so the output CSV repeats it (extra columns included).
    sa.Column("header", sa.JSON(), nullable=False),
    # The chosen preset's whole definition (imgcore.presets.Preset); NULL: stored before
    # presets, which is `default` as the settings describe it.
    sa.Column("preset", sa.JSON()),
    sa.Column("total_products", sa.Integer(), nullable=False),
    sa.Column("total_images", sa.Integer(), nullable=False),
    sa.Column("done_images", sa.Integer(), nullable=False, server_default="0"),
    sa.Column("failed_images", sa.Integer(), nullable=False, server_default="0"),
    sa.Column("input_bytes", sa.BigInteger(), nullable=False, server_default="0"),
    sa.Column("output_bytes", sa.BigInteger(), nullable=False, server_default="0"),
    sa.Column("error", sa.Text()),
    sa.Column("created_at", UTCDateTime(), nullable=False),
    sa.Column("updated_at", UTCDateTime(), nullable=False),
    sa.Column("finished_at", UTCDateTime()),
    # Who submitted it: an opaque id the API gives (its API client), None for local use.
    # Readers scoped to a client see only its requests; the executor shares work among them.
    sa.Column("client", sa.String(64)),
    # Set by a cancel: pending images were failed, the request ends Failed ("cancelled").
    sa.Column("cancelled_at", UTCDateTime()),
    # Of done_images, those that reused a remembered source's outputs.
    sa.Column("reused_images", sa.Integer(), nullable=False, server_default="0"),
    sa.Index(None, "created_at"),
    sa.Index(None, "status", "created_at"),
    sa.Index(None, "client", "created_at"),
    **MYSQL_TABLE_OPTIONS,
)

products = sa.Table(
    "products",
    metadata,
    sa.Column(
        "request_id",
        sa.Uuid(),
        sa.ForeignKey("requests.id", ondelete="CASCADE"),
        primary_key=True,
    ),
    # 0-based order of the row in the input CSV.
    sa.Column("position", sa.Integer(), primary_key=True, autoincrement=False),
    sa.Column("row", sa.Integer(), nullable=False),
    sa.Column("serial", sa.BigInteger(), nullable=False),
    sa.Column("name", sa.Text(), nullable=False),
    sa.Column("extra", sa.JSON()),
    **MYSQL_TABLE_OPTIONS,
)

images = sa.Table(
    "images",
    metadata,
    sa.Column("id", BigId, primary_key=True, autoincrement=True),
    sa.Column("request_id", sa.Uuid(), nullable=False),
    sa.Column("product_position", sa.Integer(), nullable=False),
    # 0-based order of the URL within its product's cell.
    sa.Column("position", sa.Integer(), nullable=False),
    sa.Column("url", sa.String(2048), nullable=False),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("attempts", sa.Integer(), nullable=False, server_default="0"),
    # Pending: when the next attempt may start. Processing: when the claim's lease expires.
    sa.Column("available_at", UTCDateTime(), nullable=False),
    sa.Column("lease_owner", sa.String(64)),
    sa.Column("error_reason", sa.String(64)),
    sa.Column("error", sa.Text()),
    sa.Column("storage_key", sa.String(512)),
    sa.Column("thumbnail_key", sa.String(512)),
    sa.Column("input_bytes", sa.BigInteger()),
    sa.Column("output_bytes", sa.BigInteger()),
    sa.Column("input_width", sa.Integer()),
    sa.Column("input_height", sa.Integer()),
    sa.Column("output_width", sa.Integer()),
    sa.Column("output_height", sa.Integer()),
    sa.Column("input_format", sa.String(8)),
    sa.Column("output_format", sa.String(8)),
    sa.Column("started_at", UTCDateTime()),
    sa.Column("finished_at", UTCDateTime()),
    # A done image's outputs, one per variant of its request's preset, in the preset's order
    # (name, key, format, width, height, bytes); the first is also storage_key and output_*.
    sa.Column("variants", sa.JSON()),
    # SHA-256 of the downloaded source, hex.
    sa.Column("content_hash", sa.String(64)),
    # The rendition whose outputs a done image shows (made for it, or reused); NULL when
    # reuse was off. No foreign key: a rendition counts its users and goes with the last.
    sa.Column("rendition_id", sa.BigInteger()),
    # Why a done image's outputs were reused rather than made: not_modified, same_content,
    # max_age; NULL when they were made for it.
    sa.Column("reused", sa.String(16)),
    sa.ForeignKeyConstraint(
        ["request_id", "product_position"],
        ["products.request_id", "products.position"],
        ondelete="CASCADE",
    ),
    sa.UniqueConstraint("request_id", "product_position", "position"),
    # Claiming: the oldest available work of a status.
    sa.Index(None, "status", "available_at"),
    sa.Index(None, "request_id", "status"),
    sa.Index(None, "lease_owner"),
    **MYSQL_TABLE_OPTIONS,
)

sources = sa.Table(
    "sources",
    metadata,
    sa.Column("id", BigId, primary_key=True, autoincrement=True),
    # Whose imports remember it ('' for requests without a client): one client's re-import
    # never learns from, nor serves, another's.
    sa.Column("client", sa.String(64), nullable=False),
    # SHA-256 of the URL, hex: a URL can be longer than an index may be wide.
    sa.Column("url_hash", sa.String(64), nullable=False),
    sa.Column("url", sa.String(2048), nullable=False),
    # The origin's validators for content_hash, as it sent them.
    sa.Column("etag", sa.String(1024)),
    sa.Column("last_modified", sa.String(64)),
    # SHA-256 of the body the origin last served, hex.
    sa.Column("content_hash", sa.String(64), nullable=False),
    # When the origin last served or confirmed (304) that content, and for which request:
    # a URL named again in the same request is not asked for again.
    sa.Column("checked_at", UTCDateTime(), nullable=False),
    sa.Column("checked_by", sa.Uuid()),
    sa.UniqueConstraint("client", "url_hash"),
    # Ids never reused (SQLite otherwise reuses the highest after a delete): a rendition
    # looked up before a delete must not match one made after it.
    sqlite_autoincrement=True,
    **MYSQL_TABLE_OPTIONS,
)

renditions = sa.Table(
    "renditions",
    metadata,
    sa.Column("id", BigId, primary_key=True, autoincrement=True),
    sa.Column(
        "source_id",
        BigId,
        sa.ForeignKey("sources.id", ondelete="CASCADE"),
        nullable=False,
    ),
    # SHA-256 of what decides the outputs: the preset's variants, the codec and its options.
    sa.Column("recipe", sa.String(64), nullable=False),
    # The source content they were made from.
    sa.Column("content_hash", sa.String(64), nullable=False),
    # The done image's result (imgcore._db.images.ImageResult) every user shows.
    sa.Column("result", sa.JSON(), nullable=False),
    # Images showing these outputs; at 0 the rendition and its objects are deleted.
    sa.Column("users", sa.Integer(), nullable=False),
    sa.Column("created_at", UTCDateTime(), nullable=False),
    sa.UniqueConstraint("source_id", "recipe", "content_hash"),
    sqlite_autoincrement=True,
    **MYSQL_TABLE_OPTIONS,
)

deliveries = sa.Table(
    "deliveries",
    metadata,
    sa.Column("id", BigId, primary_key=True, autoincrement=True),
    sa.Column(
        "request_id",
        sa.Uuid(),
        sa.ForeignKey("requests.id", ondelete="CASCADE"),
        nullable=False,
    ),
    # Stable across retries: receivers de-duplicate on it (Standard Webhooks' webhook-id).
    sa.Column("message_id", sa.String(64), nullable=False, unique=True),
    sa.Column("notifier", sa.String(64), nullable=False),
    sa.Column("event", sa.String(64), nullable=False),
    sa.Column("target", sa.String(2048)),
    sa.Column("payload", sa.JSON(), nullable=False),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("attempts", sa.Integer(), nullable=False, server_default="0"),
    sa.Column("available_at", UTCDateTime(), nullable=False),
    sa.Column("lease_owner", sa.String(64)),
    sa.Column("last_status_code", sa.Integer()),
    sa.Column("last_error", sa.Text()),
    sa.Column("created_at", UTCDateTime(), nullable=False),
    sa.Column("updated_at", UTCDateTime(), nullable=False),
    sa.Column("delivered_at", UTCDateTime()),
    sa.Index(None, "status", "available_at"),
    sa.Index(None, "request_id"),
    **MYSQL_TABLE_OPTIONS,
)
