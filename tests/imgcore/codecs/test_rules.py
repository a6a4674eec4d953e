"""The shared rule functions every codec calls (exported by imgcore.plugin)."""

from __future__ import annotations

import zlib

import pytest
from imgcore.plugin import fit_size, jpeg_has_nothing_to_strip, png_metadata_bomb
from PIL import Image
from support.images import PNG_SIGNATURE, _png_chunk, encode, exif, srgb_icc, text_bomb_png

MIB = 1024 * 1024


def png_with(chunk: bytes) -> bytes:
    small = encode(Image.new("L", (1, 1)), "PNG")
    ihdr_end = len(PNG_SIGNATURE) + 8 + 13 + 4
    return small[:ihdr_end] + chunk + small[ihdr_end:]


def test_a_ztxt_chunk_inflating_past_one_mib_is_a_bomb() -> None:
    assert png_metadata_bomb(text_bomb_png(MIB + 1))
    assert not png_metadata_bomb(text_bomb_png(MIB))


def test_a_compressed_itxt_chunk_counts_too() -> None:
    text = b"XML:com.adobe.xmp\0\x01\x00en\0\0" + zlib.compress(bytes(2 * MIB))
    assert png_metadata_bomb(png_with(_png_chunk(b"iTXt", text)))
    plain = b"Comment\0\x00\x00en\0\0" + bytes(2 * MIB)  # uncompressed: no inflating
    assert not png_metadata_bomb(png_with(_png_chunk(b"iTXt", plain)))


def test_an_iccp_chunk_inflating_past_one_mib_is_a_bomb() -> None:
    icc = b"icc\0\x00" + zlib.compress(bytes(2 * MIB))
    assert png_metadata_bomb(png_with(_png_chunk(b"iCCP", icc)))


def test_many_chunks_together_past_64_mib_are_a_bomb() -> None:
    chunk = _png_chunk(b"zTXt", b"c\0\x00" + zlib.compress(bytes(MIB)))
    assert png_metadata_bomb(png_with(chunk * 65))
    assert not png_metadata_bomb(png_with(chunk * 3))


def test_a_png_with_an_ordinary_profile_is_not_a_bomb() -> None:
    assert not png_metadata_bomb(encode(Image.new("RGB", (4, 4)), "PNG", icc_profile=srgb_icc()))


def test_a_clean_jpeg_has_nothing_to_strip() -> None:
    assert jpeg_has_nothing_to_strip(encode(Image.new("RGB", (8, 8)), "JPEG"))
    assert jpeg_has_nothing_to_strip(
        encode(Image.new("RGB", (8, 8)), "JPEG", icc_profile=srgb_icc())
    )


@pytest.mark.parametrize(
    "params", [{"exif": exif(1)}, {"comment": b"hello"}, {"xmp": b"<x:xmpmeta/>"}]
)
def test_a_jpeg_with_metadata_has_something_to_strip(params: dict[str, bytes]) -> None:
    assert not jpeg_has_nothing_to_strip(encode(Image.new("RGB", (8, 8)), "JPEG", **params))


def test_a_jpeg_with_trailing_bytes_has_something_to_strip() -> None:
    assert not jpeg_has_nothing_to_strip(encode(Image.new("RGB", (8, 8)), "JPEG") + b"PK\x03\x04")


@pytest.mark.parametrize(
    ("size", "limits", "expected"),
    [
        ((640, 480), (320, None), (320, 240)),
        ((640, 480), (None, 120), (160, 120)),
        ((640, 480), (4000, 4000), (640, 480)),
        ((1, 1000), (10, 10), (1, 10)),
        ((1000, 1), (10, 10), (10, 1)),
    ],
)
def test_fit_size_scales_down_keeping_the_aspect_ratio(
    size: tuple[int, int], limits: tuple[int | None, int | None], expected: tuple[int, int]
) -> None:
    assert fit_size(size, *limits) == expected
