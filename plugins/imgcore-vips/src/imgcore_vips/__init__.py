"""imgcore-vips: an imgcore codec on libvips (pyvips, libvips from the pyvips-binary wheel)."""

from __future__ import annotations

from imgcore_vips.codec import FORMATS, VipsCodec

__all__ = ["FORMATS", "VipsCodec"]
