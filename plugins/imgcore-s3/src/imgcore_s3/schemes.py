"""The URL schemes this storage serves, known without loading obstore (the plugin registers
from this)."""

from __future__ import annotations

from typing import Final

__all__ = ["SCHEMES"]

SCHEMES: Final = frozenset({"s3", "s3a", "gs", "az", "azure", "abfs", "abfss", "adl"})
"""URL schemes this plugin claims (the object stores obstore builds from a URL)."""
