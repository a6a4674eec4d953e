"""Persistence: schema, migrations and queries (SQLAlchemy, async)."""

from __future__ import annotations

from imgcore._db.connect import create_engine, reader
from imgcore._db.migrate import upgrade

__all__ = ["create_engine", "reader", "upgrade"]
