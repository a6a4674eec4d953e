"""presets: the preset each request chose, each image's variants and its source's hash

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-02 09:50:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Nullable, no default: a request stored before presets has none (it is `default`, as
    # the settings describe it), and adding a nullable column rewrites no table.
    with op.batch_alter_table("requests") as batch:
        batch.add_column(sa.Column("preset", sa.JSON(), nullable=True))
    with op.batch_alter_table("images") as batch:
        batch.add_column(sa.Column("variants", sa.JSON(), nullable=True))
        batch.add_column(sa.Column("content_hash", sa.String(length=64), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("images") as batch:
        batch.drop_column("content_hash")
        batch.drop_column("variants")
    with op.batch_alter_table("requests") as batch:
        batch.drop_column("preset")
