"""Alembic environment: runs on the connection imgcore hands over (see imgcore._db.migrate)."""

from __future__ import annotations

from alembic import context
from imgcore._db.tables import metadata

connection = context.config.attributes.get("connection")
if connection is None:
    raise RuntimeError("run migrations through `imgcore db upgrade` or imgcore._db.migrate")

context.configure(
    connection=connection,
    target_metadata=metadata,
    render_as_batch=connection.dialect.name == "sqlite",
    compare_type=True,
)
with context.begin_transaction():
    context.run_migrations()
