"""Codec plugins for tests: module-level, so that worker processes import them by name."""

from __future__ import annotations

import ctypes
import os

from imgcore.plugin import (
    OUTPUT_FORMATS,
    CodecSpec,
    CompressedImage,
    CompressOptions,
    UnsupportedImageError,
    hookimpl,
)

CRASH = b"segfault, please"
"""A body :class:`CrashingCodec` crashes on."""


class EchoCodec:
    """Returns the body as it came, tagged with the worker's pid (which process ran it)."""

    def compress(self, data: bytes, options: CompressOptions) -> CompressedImage:
        if data == CRASH:
            ctypes.string_at(0)  # a hostile file meets a buggy decoder: SIGSEGV
        if not data:
            raise UnsupportedImageError("empty body")
        media_type, extension = OUTPUT_FORMATS[options.format]
        return CompressedImage(
            data=f"{os.getpid()}:".encode() + data,
            format=options.format,
            media_type=media_type,
            extension=extension,
            width=1,
            height=1,
            input_format="ECHO",
            input_width=1,
            input_height=1,
            input_bytes=len(data),
            output_bytes=len(data),
        )


ECHO = CodecSpec(
    name="echo",
    factory=EchoCodec,
    formats=frozenset({"JPEG", "PNG"}),
    outputs=frozenset({"JPEG"}),
    rank=100,
    description="test codec: echoes, and segfaults on CRASH",
)


class EchoPlugin:
    """Contributes :data:`ECHO`."""

    @hookimpl
    def imgcore_codecs(self) -> list[CodecSpec]:
        return [ECHO]


def broken_factory() -> EchoCodec:
    """A codec whose library is missing."""
    raise OSError("libecho.so: cannot open shared object file")


BROKEN = CodecSpec(
    name="broken",
    factory=broken_factory,
    formats=frozenset({"JPEG"}),
    outputs=frozenset({"JPEG"}),
)
