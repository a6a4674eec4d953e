"""Persistence: the :class:`Database` every query goes through, schema, migrations, queries."""

from __future__ import annotations

from imgcore._db.database import Database

__all__ = ["Database"]
