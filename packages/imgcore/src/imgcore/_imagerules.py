"""The image rules every codec shares: what a body is, how large an output may be, what a
JPEG carries, when PNG metadata is a bomb, which encoder setting gives a quality's look.
:mod:`imgcore.contracts` re-exports them."""

from __future__ import annotations

import itertools
import struct
import zlib
from collections.abc import Mapping
from typing import Final

__all__ = [
    "PNG_MAX_TEXT_CHUNK",
    "PNG_MAX_TEXT_MEMORY",
    "encoder_setting",
    "fit_size",
    "jpeg_has_nothing_to_strip",
    "png_metadata_bomb",
    "sniff_format",
]

# BITMAPINFOHEADER sizes Pillow's BMP decoder understands (OS/2 v1 … v5).
_BMP_HEADER_SIZES: Final = frozenset({12, 40, 52, 56, 64, 108, 124})
# JPEG segments that carry no personal data: (marker, payload prefix).
_HARMLESS_JPEG_SEGMENTS: Final = ((0xE0, b"JFIF\0"), (0xE2, b"ICC_PROFILE\0"), (0xEE, b"Adobe"))
_SOS, _EOI, _COM = 0xDA, 0xD9, 0xFE
_STANDALONE_MARKERS: Final = frozenset({0x01, 0xD8, *range(0xD0, 0xD8)})

PNG_MAX_TEXT_CHUNK: Final = 1024 * 1024
"""Most bytes one compressed PNG metadata chunk may inflate to (as Pillow's ``MAX_TEXT_CHUNK``)."""
PNG_MAX_TEXT_MEMORY: Final = 64 * PNG_MAX_TEXT_CHUNK
"""Most bytes all of a PNG's compressed metadata chunks may inflate to (``MAX_TEXT_MEMORY``)."""


def sniff_format(data: bytes) -> str | None:
    """The allowed image format ``data`` starts with (by magic bytes only), else None."""
    if data.startswith(b"\xff\xd8\xff"):
        return "JPEG"
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "PNG"
    if data[:6] in (b"GIF87a", b"GIF89a"):
        return "GIF"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "WEBP"
    # "BM" alone is too weak (text can start with it): require a DIB header size too.
    if data[:2] == b"BM" and len(data) >= 18:
        (header_size,) = struct.unpack_from("<I", data, 14)
        if header_size in _BMP_HEADER_SIZES:
            return "BMP"
    if data[:4] in (b"II*\0", b"MM\0*", b"II+\0", b"MM\0+"):  # classic TIFF and BigTIFF
        return "TIFF"
    if data[4:8] == b"ftyp" and _is_avif_ftyp(data):
        return "AVIF"
    return None


def _is_avif_ftyp(data: bytes) -> bool:
    # Same acceptance as Pillow's AVIF plugin: an AVIF coding brand, or a generic HEIF
    # container brand that lists an AVIF brand as compatible (HEIC does not).
    major = data[8:12]
    if major in (b"avif", b"avis"):
        return True
    if major not in (b"mif1", b"msf1"):
        return False
    (box_size,) = struct.unpack_from(">I", data, 0)
    box = data[16 : min(box_size, len(data), 256)]
    brands = {box[i : i + 4] for i in range(0, len(box) - 3, 4)}
    return bool(brands & {b"avif", b"avis"})


def fit_size(
    size: tuple[int, int], max_width: int | None, max_height: int | None
) -> tuple[int, int]:
    """``size`` scaled down, keeping its aspect ratio, to fit the limits (never scaled up)."""
    width, height = size
    scale = min(
        1.0,
        max_width / width if max_width else 1.0,
        max_height / height if max_height else 1.0,
    )
    if scale >= 1.0:
        return size
    return max(1, round(width * scale)), max(1, round(height * scale))


def jpeg_has_nothing_to_strip(data: bytes) -> bool:
    """Whether a JPEG holds only JFIF, ICC and Adobe segments before its scan, and nothing
    after its end marker: no EXIF, XMP, IPTC, comments or trailing bytes to strip."""
    if not (data.startswith(b"\xff\xd8") and data.endswith(b"\xff\xd9")):
        return False
    i = 2
    while i + 1 < len(data):
        if data[i] != 0xFF:
            return False
        marker = data[i + 1]
        if marker == 0xFF:  # fill byte
            i += 1
            continue
        if marker in _STANDALONE_MARKERS:
            i += 2
            continue
        if marker in (_SOS, _EOI):
            return True
        if i + 4 > len(data):
            return False
        (length,) = struct.unpack_from(">H", data, i + 2)
        if 0xE0 <= marker <= 0xEF or marker == _COM:
            payload = data[i + 4 : i + 2 + length]
            if not any(
                marker == harmless and payload.startswith(prefix)
                for harmless, prefix in _HARMLESS_JPEG_SEGMENTS
            ):
                return False
        i += 2 + length
    return False


def png_metadata_bomb(data: bytes) -> bool:
    """Whether a PNG's compressed metadata (zTXt, compressed iTXt, iCCP) inflates past
    :data:`PNG_MAX_TEXT_CHUNK` in one chunk or :data:`PNG_MAX_TEXT_MEMORY` in all: the limits
    Pillow enforces, for codecs whose decoder does not. Inflates at most one chunk's limit."""
    total = 0
    i = 8  # after the signature
    while i + 8 <= len(data):
        (length,) = struct.unpack_from(">I", data, i)
        kind = data[i + 4 : i + 8]
        body = data[i + 8 : i + 8 + length]
        i += 12 + length
        if kind == b"zTXt" or kind == b"iCCP":
            compressed = body.partition(b"\0")[2][1:]  # keyword NUL, method byte
        elif kind == b"iTXt":
            rest = body.partition(b"\0")[2]
            if rest[:1] != b"\x01":  # not compressed
                continue
            # flag, method, language NUL, translated keyword NUL, then the text
            compressed = rest[2:].split(b"\0", 2)[-1]
        elif kind == b"IEND":
            break
        else:
            continue
        inflater = zlib.decompressobj()
        try:
            size = len(inflater.decompress(compressed, PNG_MAX_TEXT_CHUNK + 1))
        except zlib.error:
            continue  # broken metadata: the decoder decides
        total += size
        if size > PNG_MAX_TEXT_CHUNK or total > PNG_MAX_TEXT_MEMORY:
            return True
    return False


def encoder_setting(calibration: Mapping[int, int], quality: int) -> int:
    """The setting at which an encoder gives the look of libjpeg at ``quality``.

    ``calibration`` maps qualities to the encoder settings measured to reach their look
    (``benchmarks/bench_quality.py``). Between two points the setting is interpolated; beyond
    the outermost, it keeps that point's offset from the quality. Clamped to 1..100.
    """
    if not calibration:
        raise ValueError("a calibration needs at least one point")
    points = sorted(calibration.items())
    if quality <= points[0][0]:
        setting = quality + points[0][1] - points[0][0]
    elif quality >= points[-1][0]:
        setting = quality + points[-1][1] - points[-1][0]
    else:
        (q0, s0), (q1, s1) = next(
            (a, b) for a, b in itertools.pairwise(points) if a[0] <= quality <= b[0]
        )
        setting = round(s0 + (s1 - s0) * (quality - q0) / (q1 - q0))
    return max(1, min(100, setting))
