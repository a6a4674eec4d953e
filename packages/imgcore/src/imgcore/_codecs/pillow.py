"""The built-in codec: Pillow, with every rule of :mod:`imgcore._compress`."""

from __future__ import annotations

from imgcore._compress import compress
from imgcore.contracts import (
    ALLOWED_FORMATS,
    OUTPUT_FORMATS,
    CodecSpec,
    CompressedImage,
    CompressOptions,
)
from imgcore.hookspecs import hookimpl

__all__ = ["PILLOW", "PillowCodec", "imgcore_codecs"]


class PillowCodec:
    """:func:`imgcore._compress.compress` as a :class:`~imgcore.contracts.Codec`."""

    def compress(self, data: bytes, options: CompressOptions) -> CompressedImage:
        """See :func:`imgcore._compress.compress`."""
        return compress(data, options)


PILLOW = CodecSpec(
    name="pillow",
    factory=PillowCodec,
    formats=ALLOWED_FORMATS,
    outputs=frozenset(OUTPUT_FORMATS),
    rank=0,
    description="Pillow (built in): decodes every allowed format",
)
"""The Pillow codec's registration; the lowest rank, so any installed codec is preferred."""


@hookimpl
def imgcore_codecs() -> list[CodecSpec]:
    """Register :data:`PILLOW`."""
    return [PILLOW]
