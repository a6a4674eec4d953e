"""Alembic, run on a connection :class:`imgcore._db.database.Database` hands over.

imgcore's own migrations are one branch; each directory a plugin returns from the
``imgcore_migrations`` hook is another, with its own root and head. Upgrading applies every
head, and the database is current when it is at every head.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import sqlalchemy as sa
from alembic import command
from alembic.config import Config as AlembicConfig
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from alembic.util import CommandError

__all__ = [
    "MIGRATIONS",
    "VERSIONS",
    "alembic_config",
    "current_heads",
    "missing_heads",
    "script_heads",
    "upgrade",
]

MIGRATIONS = Path(__file__).parent / "migrations"
"""The Alembic environment (``env.py``) every branch runs in."""
VERSIONS = MIGRATIONS / "versions"
"""imgcore's own branch."""


def alembic_config(
    locations: Sequence[Path] = (VERSIONS,), connection: sa.Connection | None = None
) -> AlembicConfig:
    """An Alembic config over the branches in ``locations`` (and on ``connection`` if given)."""
    config = AlembicConfig()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.set_main_option("path_separator", "os")
    config.set_main_option("version_locations", os.pathsep.join(str(path) for path in locations))
    if connection is not None:
        config.attributes["connection"] = connection
    return config


def script_heads(locations: Sequence[Path] = (VERSIONS,)) -> frozenset[str]:
    """The newest revision of each branch in ``locations``."""
    return frozenset(ScriptDirectory.from_config(alembic_config(locations)).get_heads())


def current_heads(connection: sa.Connection) -> frozenset[str]:
    """The revisions the database is at (empty when it has never been migrated)."""
    return frozenset(MigrationContext.configure(connection).get_current_heads())


def missing_heads(
    connection: sa.Connection, locations: Sequence[Path] = (VERSIONS,)
) -> frozenset[str]:
    """The branch heads the database has not reached (empty when it is up to date).

    Alembic records only the revisions nothing applied depends on (a branch whose first
    revision depends on imgcore's ``0001`` leaves just its own), so each head is looked for
    among the current revisions and everything they descend from or depend on.
    """
    script = ScriptDirectory.from_config(alembic_config(locations))
    heads = frozenset(script.get_heads())
    try:
        applied = {
            rev.revision
            for rev in script.iterate_revisions(tuple(current_heads(connection)), "base")
        }
    except CommandError:  # a revision this version does not know (a newer one's)
        return heads
    return heads - applied


def upgrade(connection: sa.Connection, locations: Sequence[Path] = (VERSIONS,)) -> None:
    """Bring every branch in ``locations`` to its head, in the caller's transaction."""
    command.upgrade(alembic_config(locations, connection), "heads")
