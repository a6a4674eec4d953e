"""requests.client and requests.cancelled_at

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-02

A request's owner (an opaque client id the API gives) and when it was cancelled.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import mysql

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

UTCDateTime = sa.DateTime().with_variant(mysql.DATETIME(fsp=6), "mysql", "mariadb")


def upgrade() -> None:
    with op.batch_alter_table("requests") as batch:
        batch.add_column(sa.Column("client", sa.String(length=64), nullable=True))
        batch.add_column(sa.Column("cancelled_at", UTCDateTime, nullable=True))
    op.create_index(
        op.f("ix_requests_client_created_at"), "requests", ["client", "created_at"], unique=False
    )


def downgrade() -> None:
    op.drop_index(op.f("ix_requests_client_created_at"), table_name="requests")
    with op.batch_alter_table("requests") as batch:
        batch.drop_column("cancelled_at")
        batch.drop_column("client")
