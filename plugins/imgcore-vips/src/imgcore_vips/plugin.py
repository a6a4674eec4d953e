"""Registers the ``vips`` codec (entry point ``vips = "imgcore_vips.plugin"``)."""

from __future__ import annotations

from imgcore.plugin import CodecSpec, hookimpl

from imgcore_vips.codec import FORMATS, VipsCodec

__all__ = ["VIPS", "imgcore_codecs"]

VIPS = CodecSpec(
    name="vips",
    factory=VipsCodec,
    formats=FORMATS,
    outputs=frozenset({"JPEG", "WEBP", "AVIF"}),
    rank=10,
    description="libvips: streams pixels and shrinks on load; BMP goes to pillow",
)
"""The codec's registration: preferred over Pillow when installed."""


@hookimpl
def imgcore_codecs() -> list[CodecSpec]:
    """Register :data:`VIPS`."""
    return [VIPS]
