"""The built-in codec's registration: Pillow, with every rule of :mod:`imgcore._compress`.

Pillow loads only where the codec is built (a compression worker), so a process that uses
another codec, or only plans work, does not hold it.
"""

from __future__ import annotations

from collections.abc import Sequence

from imgcore.contracts import (
    ALLOWED_FORMATS,
    OUTPUT_FORMATS,
    CodecSpec,
    CompressedImage,
    CompressOptions,
    Variant,
)
from imgcore.hookspecs import hookimpl

__all__ = ["PILLOW", "PillowCodec", "imgcore_codecs"]


class PillowCodec:
    """:func:`imgcore._compress.compress` as a :class:`~imgcore.contracts.Codec`."""

    def compress(self, data: bytes, options: CompressOptions) -> CompressedImage:
        """See :func:`imgcore._compress.compress`."""
        from imgcore._compress import compress

        return compress(data, options)

    def variants(
        self, data: bytes, variants: Sequence[Variant], options: CompressOptions
    ) -> list[CompressedImage]:
        """See :func:`imgcore._compress.compress_variants`."""
        from imgcore._compress import compress_variants

        return compress_variants(data, variants, options)


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
