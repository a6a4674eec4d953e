"""What the codec reads, known without loading libvips (the plugin registers from this)."""

from __future__ import annotations

from typing import Final

__all__ = ["FORMATS", "LOADERS"]

LOADERS: Final[dict[str, str]] = {
    "JPEG": "jpegload",
    "PNG": "pngload",
    "GIF": "gifload",
    "WEBP": "webpload",
    "TIFF": "tiffload",
    "AVIF": "heifload",
}
"""The libvips loader each input format must be read by (BMP has none in libvips)."""

FORMATS: Final = frozenset(LOADERS)
"""Input formats this codec decodes."""
