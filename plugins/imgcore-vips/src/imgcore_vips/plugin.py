"""Registers the ``vips`` codec (entry point ``vips = "imgcore_vips.plugin"``)."""

from __future__ import annotations

from imgcore.plugin import Codec, CodecSpec, hookimpl

from imgcore_vips.formats import FORMATS

__all__ = ["VIPS", "imgcore_codecs", "make_codec"]


def make_codec() -> Codec:
    """The codec, built in a compression worker: libvips is loaded there, and only there."""
    from imgcore_vips.codec import VipsCodec

    return VipsCodec()


VIPS = CodecSpec(
    name="vips",
    factory=make_codec,
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
