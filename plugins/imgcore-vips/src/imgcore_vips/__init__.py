"""imgcore-vips: an imgcore codec on libvips (pyvips, libvips from the pyvips-binary wheel)."""

from __future__ import annotations

from imgcore_vips.formats import FORMATS

__all__ = ["FORMATS"]
