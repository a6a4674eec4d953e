"""Test images made in memory: encoded files, metadata blocks, ICC profiles and bombs."""

from __future__ import annotations

import io
import struct
import zlib
from functools import cache
from typing import Any

from PIL import Image, ImageCms

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def encode(im: Image.Image, format: str, **params: Any) -> bytes:
    """``im`` saved as ``format`` with Pillow."""
    buffer = io.BytesIO()
    im.save(buffer, format, **params)
    return buffer.getvalue()


def decode(data: bytes) -> Image.Image:
    """``data`` opened and loaded with Pillow."""
    im = Image.open(io.BytesIO(data))
    im.load()
    return im


def halves(size: tuple[int, int], left: tuple[int, ...], right: tuple[int, ...]) -> Image.Image:
    """An RGB image whose left half is ``left`` and right half ``right``."""
    im = Image.new("RGB", size, right)
    im.paste(left, (0, 0, size[0] // 2, size[1]))
    return im


def exif(orientation: int | None = None, *, gps: bool = False) -> bytes:
    """An EXIF block with a camera model, and optionally an orientation and a GPS position."""
    block = Image.Exif()
    block[0x0110] = "Test Camera"  # Model
    if orientation is not None:
        block[0x0112] = orientation
    if gps:
        block[0x8825] = {1: "N", 2: (48.0, 51.0, 24.0), 3: "E", 4: (2.0, 21.0, 3.0)}
    return block.tobytes()


def srgb_icc() -> bytes:
    """A real sRGB ICC profile (LittleCMS)."""
    return ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()


def _s15(value: float) -> bytes:
    return struct.pack(">i", round(value * 65536))


def odd_cmyk_icc() -> bytes:
    """A tiny ICC v2 CMYK profile that maps pure cyan to *red*.

    No naive CMYK → RGB formula gives red for cyan, so a red output proves that the
    embedded profile was used.
    """

    def lab(lightness: int, a: int, b: int) -> bytes:
        return bytes([round(lightness * 255 / 100), a + 128, b + 128])

    clut = b""  # 2x2x2x2 grid, C varies slowest
    for c in (0, 1):
        for m in (0, 1):
            for y in (0, 1):
                for k in (0, 1):
                    if k:
                        clut += lab(0, 0, 0)
                    elif c:
                        clut += lab(54, 80, 67)
                    elif m or y:
                        clut += lab(50, 0, 0)
                    else:
                        clut += lab(100, 0, 0)
    identity = bytes(range(256))
    matrix = b"".join(_s15(v) for v in (1, 0, 0, 0, 1, 0, 0, 0, 1))
    a2b0 = b"mft1" + bytes(4) + bytes([4, 3, 2, 0]) + matrix + identity * 4 + clut + identity * 3
    d50 = _s15(0.9642) + _s15(1.0) + _s15(0.8249)
    tags = [(b"A2B0", a2b0), (b"wtpt", b"XYZ " + bytes(4) + d50)]
    start = 128 + 4 + 12 * len(tags)
    table, body = struct.pack(">I", len(tags)), b""
    for signature, data in tags:
        body += bytes(-(start + len(body)) % 4)
        table += signature + struct.pack(">II", start + len(body), len(data))
        body += data
    header = (
        struct.pack(">I", start + len(body))
        + bytes(4)
        + bytes([2, 0x10, 0, 0])
        + b"prtrCMYKLab "
        + bytes(12)
        + b"acsp"
        + bytes(28)
        + d50
        + bytes(48)
    )
    return header + table + body


def _png_chunk(kind: bytes, payload: bytes) -> bytes:
    return (
        struct.pack(">I", len(payload))
        + kind
        + payload
        + struct.pack(">I", zlib.crc32(kind + payload))
    )


@cache
def bomb_png(width: int, height: int) -> bytes:
    """A valid all-black 1-bit PNG of ``width`` x ``height``: huge in pixels, small in bytes.

    Built with zlib directly (Pillow would need the pixels in memory); cached for the session.
    """
    row = bytes(1 + (width + 7) // 8)  # filter byte 0, then zero bits
    compressor = zlib.compressobj(9)
    rows_per_call = 64
    parts = [compressor.compress(row * rows_per_call) for _ in range(height // rows_per_call)]
    parts += [compressor.compress(row * (height % rows_per_call)), compressor.flush()]
    ihdr = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)  # 1-bit greyscale
    return (
        PNG_SIGNATURE
        + _png_chunk(b"IHDR", ihdr)
        + _png_chunk(b"IDAT", b"".join(parts))
        + _png_chunk(b"IEND", b"")
    )


@cache
def text_bomb_png(inflated_bytes: int = 4 * 1024 * 1024) -> bytes:
    """A 1x1 PNG with a zTXt chunk that inflates to ``inflated_bytes`` of zeros."""
    small = encode(Image.new("L", (1, 1)), "PNG")
    ztxt = b"Comment\0\0" + zlib.compress(bytes(inflated_bytes), 9)
    ihdr_end = len(PNG_SIGNATURE) + 8 + 13 + 4
    return small[:ihdr_end] + _png_chunk(b"zTXt", ztxt) + small[ihdr_end:]


def animated(format: str, colours: list[tuple[int, int, int]], size: tuple[int, int]) -> bytes:
    """An animated GIF or WebP with one solid frame per colour."""
    frames = [Image.new("RGB", size, colour) for colour in colours]
    return encode(frames[0], format, save_all=True, append_images=frames[1:], duration=100)


def close(pixel: object, expected: tuple[int, ...], tolerance: int = 12) -> bool:
    """Whether ``pixel`` (a value or a tuple) is within ``tolerance`` of ``expected``."""
    values = pixel if isinstance(pixel, tuple) else (pixel,)
    return len(values) == len(expected) and all(
        abs(int(v) - e) <= tolerance for v, e in zip(values, expected, strict=True)
    )


def mad(a: bytes, b: bytes) -> float:
    """Mean absolute difference of two encoded images, per channel, 0..255."""
    from PIL import ImageChops, ImageStat

    with Image.open(io.BytesIO(a)) as x, Image.open(io.BytesIO(b)) as y:
        diff = ImageChops.difference(x.convert("RGB"), y.convert("RGB"))
    return sum(ImageStat.Stat(diff).mean) / 3
