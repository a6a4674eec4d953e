"""compress(): decoding rules, colour modes, metadata, limits and output formats."""

from __future__ import annotations

import pickle
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from imgcore._compress import (
    ALLOWED_FORMATS,
    CompressedImage,
    CompressOptions,
    CorruptImageError,
    DecompressionBombError,
    ImageError,
    InvalidOptionsError,
    OutputFormat,
    UnsupportedImageError,
    compress,
    make_thumbnail,
    sniff_format,
)
from imgcore.errors import ImgcoreError
from PIL import Image, ImageSequence
from support.images import (
    animated,
    bomb_png,
    decode,
    encode,
    exif,
    halves,
    odd_cmyk_icc,
    srgb_icc,
    text_bomb_png,
)

RED = (255, 0, 0)
GREEN = (0, 255, 0)
BLUE = (0, 0, 255)
WHITE = (255, 255, 255)


def close(pixel: object, expected: tuple[int, ...], tolerance: int = 12) -> bool:
    """A decoded pixel within ``tolerance`` of ``expected`` on every channel."""
    values = pixel if isinstance(pixel, tuple) else (pixel,)
    return len(values) == len(expected) and all(
        abs(int(v) - e) <= tolerance for v, e in zip(values, expected, strict=True)
    )


def output_of(data: bytes, **options: Any) -> Image.Image:
    """The decoded output of compress(data, CompressOptions(**options))."""
    return decode(compress(data, CompressOptions(**options)).data)


@pytest.fixture(scope="module")
def photo(corpus_dir: Path) -> bytes:
    return (corpus_dir / "img" / "s03_astronaut.jpg").read_bytes()


# --- sniff_format -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fmt", "expected"),
    [
        ("JPEG", "JPEG"),
        ("PNG", "PNG"),
        ("GIF", "GIF"),
        ("WEBP", "WEBP"),
        ("BMP", "BMP"),
        ("TIFF", "TIFF"),
        ("AVIF", "AVIF"),
    ],
)
def test_sniff_format_names_each_allowed_format_pillow_writes(fmt: str, expected: str) -> None:
    assert sniff_format(encode(Image.new("RGB", (8, 8), RED), fmt)) == expected


@pytest.mark.parametrize(
    ("head", "expected"),
    [
        (b"GIF87a\x01\x00\x01\x00", "GIF"),
        (b"MM\x00*\x00\x00\x00\x08", "TIFF"),
        (b"II*\x00\x08\x00\x00\x00", "TIFF"),
        (b"II+\x00\x08\x00\x00\x00", "TIFF"),
        (b"\x00\x00\x00\x1cftypavis\x00\x00\x00\x00avismif1miaf", "AVIF"),
        (b"\x00\x00\x00\x1cftypmif1\x00\x00\x00\x00mif1avifmiaf", "AVIF"),
        (b"BM" + bytes(12) + b"\x28\x00\x00\x00", "BMP"),
    ],
)
def test_sniff_format_reads_the_magic_bytes(head: bytes, expected: str) -> None:
    assert sniff_format(head) == expected


@pytest.mark.parametrize(
    "head",
    [
        b"",
        b"\xff\xd8",
        b"<!DOCTYPE html><html></html>",
        b'<?xml version="1.0"?><svg xmlns="http://www.w3.org/2000/svg"/>',
        b"<svg xmlns='http://www.w3.org/2000/svg'></svg>",
        b"%PDF-1.7\n",
        b"%!PS-Adobe-3.0 EPSF-3.0\n",
        b"8BPS\x00\x01",
        b"\x00\x00\x01\x00\x01\x00\x10\x10",
        b"BMW dealers near you, page after page of text",
        b"\x00\x00\x00\x18ftypheic\x00\x00\x00\x00mif1heic",
        b"\x00\x00\x00\x18ftypmif1\x00\x00\x00\x00mif1heic",
        b"RIFF\x00\x00\x00\x00WAVEfmt ",
    ],
)
def test_sniff_format_returns_none_for_anything_else(head: bytes) -> None:
    assert sniff_format(head) is None


def test_allowed_formats_are_the_seven_input_formats() -> None:
    assert frozenset({"JPEG", "PNG", "WEBP", "GIF", "BMP", "TIFF", "AVIF"}) == ALLOWED_FORMATS


# --- options ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "bad",
    [
        {"quality": 0},
        {"quality": 96},
        {"quality": True},
        {"format": "PNG"},
        {"max_width": 0},
        {"max_height": -5},
        {"max_pixels": 0},
        {"background": "not-a-colour"},
    ],
)
def test_options_refuse_out_of_range_values(bad: dict[str, Any]) -> None:
    with pytest.raises(InvalidOptionsError) as caught:
        CompressOptions(**bad)
    assert isinstance(caught.value, ValueError)
    assert caught.value.reason == "invalid_options"


def test_options_default_to_jpeg_quality_50_at_full_resolution() -> None:
    options = CompressOptions()
    assert (options.format, options.quality, options.max_width, options.max_height) == (
        "JPEG",
        50,
        None,
        None,
    )


# --- real photographs -------------------------------------------------------------------------


PHOTOS = [
    *(f"s03_{name}" for name in ("astronaut", "chelsea", "coffee", "hubble_deep_field")),
    *(f"s03_{name}" for name in ("motorcycle_left", "motorcycle_right", "retina", "rocket")),
    "s2_00",
]


@pytest.mark.parametrize("name", PHOTOS)
def test_each_corpus_photo_becomes_a_smaller_jpeg_of_the_same_size(
    corpus_dir: Path, name: str
) -> None:
    data = (corpus_dir / "img" / f"{name}.jpg").read_bytes()
    result = compress(data)
    stored = decode(data)
    assert sniff_format(result.data) == "JPEG"
    assert (result.width, result.height) == stored.size == decode(result.data).size
    assert result.output_bytes == len(result.data) < len(data) == result.input_bytes
    assert not result.kept_original


def test_result_describes_input_and_output(photo: bytes) -> None:
    result = compress(photo)
    assert (result.format, result.media_type, result.extension) == ("JPEG", "image/jpeg", ".jpg")
    assert (result.input_format, result.input_width, result.input_height) == ("JPEG", 640, 480)
    assert (result.width, result.height) == (640, 480)


@pytest.mark.parametrize(
    "name", ["cmyk.jpg", "gray.jpg", "palette.gif", "png_photo.png", "progressive.jpg", "rgba.png"]
)
def test_each_corpus_edge_case_compresses_to_a_decodable_jpeg(corpus_dir: Path, name: str) -> None:
    data = (corpus_dir / "edge" / name).read_bytes()
    result = compress(data)
    assert decode(result.data).size == decode(data).size


def test_corpus_cmyk_jpeg_becomes_rgb(corpus_dir: Path) -> None:
    assert output_of((corpus_dir / "edge" / "cmyk.jpg").read_bytes()).mode == "RGB"


# --- colour modes -----------------------------------------------------------------------------


def test_fully_transparent_rgba_pixel_becomes_the_background() -> None:
    im = Image.new("RGBA", (16, 16), (255, 0, 0, 0))
    assert close(output_of(encode(im, "PNG")).getpixel((8, 8)), WHITE)


def test_transparency_is_flattened_on_the_configured_background() -> None:
    im = Image.new("RGBA", (16, 16), (0, 0, 0, 0))
    assert close(output_of(encode(im, "PNG"), background="#0000ff").getpixel((8, 8)), BLUE)


def test_opaque_red_rgba_pixel_stays_red() -> None:
    im = Image.new("RGBA", (16, 16), (255, 0, 0, 255))
    assert close(output_of(encode(im, "PNG")).getpixel((8, 8)), RED)


def test_half_transparent_black_blends_to_mid_grey_on_white() -> None:
    im = Image.new("RGBA", (16, 16), (0, 0, 0, 128))
    assert close(output_of(encode(im, "PNG")).getpixel((8, 8)), (127, 127, 127))


def test_transparent_la_pixel_becomes_the_background() -> None:
    im = Image.new("LA", (16, 16), (0, 0))
    assert close(output_of(encode(im, "PNG")).getpixel((8, 8)), WHITE)


def test_palette_transparency_index_becomes_the_background() -> None:
    im = Image.new("P", (16, 16), 1)
    im.putpalette([*RED, *GREEN] + [0] * 762)
    data = encode(im, "PNG", transparency=1)
    assert close(output_of(data).getpixel((8, 8)), WHITE)


def test_palette_opaque_entry_keeps_its_colour() -> None:
    im = Image.new("P", (16, 16), 0)
    im.putpalette([*RED, *GREEN] + [0] * 762)
    data = encode(im, "PNG", transparency=1)
    assert close(output_of(data).getpixel((8, 8)), RED)


def test_palette_alpha_trns_chunk_is_flattened() -> None:
    im = Image.new("P", (16, 16), 0)
    im.putpalette([*RED, *GREEN] + [0] * 762)
    data = encode(im, "PNG", transparency=bytes([0, 255]))  # entry 0 fully transparent
    assert close(output_of(data).getpixel((8, 8)), WHITE)


def test_pa_tiff_is_flattened_by_its_alpha() -> None:
    im = Image.new("PA", (16, 16), (0, 255))
    im.putpalette([*RED] * 256)
    im.paste((0, 0), (0, 0, 8, 16))  # left half fully transparent
    data = encode(im, "TIFF")
    assert decode(data).mode == "PA"
    out = output_of(data)
    assert close(out.getpixel((2, 8)), WHITE)
    assert close(out.getpixel((13, 8)), RED, tolerance=20)


def test_transparent_gif_pixel_becomes_the_background() -> None:
    im = Image.new("P", (16, 16), 1)
    im.putpalette([*RED, *GREEN] + [0] * 762)
    data = encode(im, "GIF", transparency=1)
    assert close(output_of(data).getpixel((8, 8)), WHITE)


def test_sixteen_bit_mid_grey_becomes_8_bit_mid_grey() -> None:
    data = encode(Image.new("I;16", (16, 16), 32768), "PNG")
    assert decode(data).mode == "I;16"
    out = output_of(data)
    assert out.mode == "L"
    assert close(out.getpixel((8, 8)), (128,), tolerance=3)


def test_sixteen_bit_tiff_white_stays_white_and_black_stays_black() -> None:
    im = Image.new("I;16", (16, 16), 65535)
    im.paste(0, (0, 0, 8, 16))
    out = output_of(encode(im, "TIFF"))
    assert close(out.getpixel((2, 8)), (0,), tolerance=3)
    assert close(out.getpixel((13, 8)), (255,), tolerance=3)


def test_32_bit_integer_image_of_16_bit_values_is_scaled_not_clipped() -> None:
    im = Image.new("I", (16, 16), 32768)
    assert close(output_of(encode(im, "TIFF")).getpixel((8, 8)), (128,), tolerance=3)


def test_float_image_in_0_to_1_is_scaled_to_8_bit() -> None:
    im = Image.new("F", (16, 16), 0.5)
    out = output_of(encode(im, "TIFF"))
    assert close(out.getpixel((8, 8)), (128,), tolerance=3)


def test_one_bit_image_becomes_black_and_white_grey() -> None:
    im = Image.new("1", (16, 16), 1)
    im.paste(0, (0, 0, 8, 16))
    out = output_of(encode(im, "PNG"))
    assert out.mode == "L"
    assert close(out.getpixel((2, 8)), (0,))
    assert close(out.getpixel((13, 8)), (255,))


def test_greyscale_stays_greyscale_in_jpeg(corpus_dir: Path) -> None:
    assert output_of((corpus_dir / "edge" / "gray.jpg").read_bytes()).mode == "L"


def test_greyscale_becomes_rgb_in_webp() -> None:
    data = encode(Image.new("L", (16, 16), 100), "PNG")
    out = output_of(data, format="WEBP")
    assert out.mode == "RGB"
    assert close(out.getpixel((8, 8)), (100, 100, 100), tolerance=4)


def test_cmyk_red_becomes_rgb_red() -> None:
    data = encode(Image.new("CMYK", (16, 16), (0, 255, 255, 0)), "JPEG", quality=95)
    out = output_of(data)
    assert out.mode == "RGB"
    assert close(out.getpixel((8, 8)), RED, tolerance=20)


def test_cmyk_tiff_becomes_rgb() -> None:
    data = encode(Image.new("CMYK", (16, 16), (0, 0, 0, 255)), "TIFF")
    assert close(output_of(data).getpixel((8, 8)), (0, 0, 0))


def test_cmyk_is_converted_through_its_embedded_profile() -> None:
    # The odd profile maps cyan to red; a plain CMYK→RGB conversion would give cyan.
    im = Image.new("CMYK", (16, 16), (255, 0, 0, 0))
    out = output_of(encode(im, "JPEG", quality=95, icc_profile=odd_cmyk_icc()))
    assert close(out.getpixel((8, 8)), RED, tolerance=20)
    assert "icc_profile" not in out.info


def test_broken_cmyk_profile_falls_back_to_plain_conversion() -> None:
    broken = odd_cmyk_icc()[:200]
    im = Image.new("CMYK", (16, 16), (255, 0, 0, 0))
    out = output_of(encode(im, "JPEG", quality=95, icc_profile=broken))
    assert close(out.getpixel((8, 8)), (0, 255, 255), tolerance=20)


@pytest.mark.parametrize(("lab", "rgb"), [((255, 128, 128), WHITE), ((138, 208, 195), RED)])
def test_cielab_tiff_is_converted_colorimetrically(
    lab: tuple[int, int, int], rgb: tuple[int, int, int]
) -> None:
    data = encode(Image.new("LAB", (16, 16), lab), "TIFF")
    assert decode(data).mode == "LAB"
    assert close(output_of(data).getpixel((8, 8)), rgb, tolerance=20)


def test_animated_gif_keeps_its_first_frame() -> None:
    data = animated("GIF", [RED, GREEN, BLUE], (16, 16))
    assert len(ImageSequence.all_frames(decode(data))) == 3
    assert close(output_of(data).getpixel((8, 8)), RED, tolerance=20)


def test_animated_webp_keeps_its_first_frame() -> None:
    data = animated("WEBP", [GREEN, RED], (16, 16))
    assert close(output_of(data).getpixel((8, 8)), GREEN, tolerance=20)


# --- input formats ----------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "GIF", "WEBP", "BMP", "TIFF", "AVIF"])
def test_each_allowed_format_decodes(fmt: str) -> None:
    im = Image.new("RGB", (24, 16), BLUE)
    result = compress(encode(im, fmt))
    assert result.input_format == fmt
    assert close(decode(result.data).getpixel((12, 8)), BLUE, tolerance=24)


@pytest.mark.parametrize(
    "data",
    [
        pytest.param(b"", id="empty"),
        pytest.param(b"<!DOCTYPE html><html><body>404</body></html>", id="html"),
        pytest.param(b'<svg xmlns="http://www.w3.org/2000/svg" width="10"/>', id="svg"),
        pytest.param(b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n1 0 obj\n", id="pdf"),
        pytest.param(b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 10 10\n", id="eps"),
        pytest.param(encode(Image.new("RGB", (16, 16)), "ICO"), id="ico"),
        pytest.param(encode(Image.new("RGB", (16, 16)), "PPM"), id="ppm"),
        pytest.param(encode(Image.new("RGB", (16, 16)), "JPEG2000"), id="jpeg2000"),
    ],
)
def test_disallowed_formats_are_unsupported(data: bytes) -> None:
    with pytest.raises(UnsupportedImageError) as caught:
        compress(data)
    assert caught.value.reason == "unsupported_format"


def test_truncated_jpeg_is_corrupt(corpus_dir: Path) -> None:
    with pytest.raises(CorruptImageError) as caught:
        compress((corpus_dir / "special" / "truncated.jpg").read_bytes())
    assert caught.value.reason == "corrupt_image"


def test_truncated_png_is_corrupt() -> None:
    data = encode(Image.effect_noise((64, 64), 50).convert("RGB"), "PNG")
    with pytest.raises(CorruptImageError):
        compress(data[: len(data) // 2])


def test_image_too_wide_for_webp_is_an_image_error() -> None:
    data = encode(Image.new("L", (17_000, 2)), "PNG")
    with pytest.raises(ImageError, match="WEBP"):
        compress(data, CompressOptions(format="WEBP"))


def test_image_magic_followed_by_garbage_is_corrupt() -> None:
    with pytest.raises(CorruptImageError):
        compress(b"\x89PNG\r\n\x1a\n" + b"garbage" * 20)


@pytest.mark.filterwarnings("ignore::UserWarning")
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    fmt=st.sampled_from(["JPEG", "PNG", "GIF", "WEBP", "BMP", "TIFF"]),
    edits=st.lists(st.tuples(st.integers(0, 10_000), st.integers(0, 255)), min_size=1, max_size=8),
    cut=st.integers(0, 10_000),
)
def test_damaged_images_raise_only_image_errors(
    fmt: str, edits: list[tuple[int, int]], cut: int
) -> None:
    source = bytearray(_small_images()[fmt])
    for position, value in edits:
        source[position % len(source)] = value
    damaged = bytes(source[: max(cut % (len(source) + 1), 1)])
    try:
        result = compress(damaged)
    except ImageError:
        return
    assert sniff_format(result.data) == "JPEG"


_SMALL: dict[str, bytes] = {}


def _small_images() -> dict[str, bytes]:
    if not _SMALL:
        im = Image.effect_noise((32, 24), 60).convert("RGB")
        for fmt in ("JPEG", "PNG", "GIF", "WEBP", "BMP", "TIFF"):
            _SMALL[fmt] = encode(im, fmt)
    return _SMALL


# --- decompression bombs ----------------------------------------------------------------------


def _allocations() -> int:
    """Pillow's count of images created so far (pixel buffers)."""
    return int(Image.core.get_stats()["new_count"])


def test_900_megapixel_png_is_a_bomb_refused_without_allocating() -> None:
    data = bomb_png(30_000, 30_000)
    before = _allocations()
    with pytest.raises(DecompressionBombError) as caught:
        compress(data)
    assert caught.value.reason == "decompression_bomb"
    assert _allocations() == before


@pytest.mark.filterwarnings("ignore::PIL.Image.DecompressionBombWarning")
def test_144_megapixel_png_is_a_bomb_under_the_default_limit() -> None:
    data = bomb_png(12_000, 12_000)
    before = _allocations()
    with pytest.raises(DecompressionBombError, match="144000000 pixels"):
        compress(data)
    assert _allocations() == before


@pytest.mark.filterwarnings("error::PIL.Image.DecompressionBombWarning")
def test_pillow_bomb_warning_raised_as_an_error_is_a_bomb_error() -> None:
    # 144 MP is over Pillow's warning threshold (~89 MP) but under the configured limit.
    with pytest.raises(DecompressionBombError):
        compress(bomb_png(12_000, 12_000), CompressOptions(max_pixels=150_000_000))


def test_configured_pixel_limit_is_enforced(photo: bytes) -> None:
    with pytest.raises(DecompressionBombError):
        compress(photo, CompressOptions(max_pixels=640 * 480 - 1))


def test_image_exactly_at_the_pixel_limit_is_accepted(photo: bytes) -> None:
    assert compress(photo, CompressOptions(max_pixels=640 * 480)).width == 640


def test_png_with_a_huge_compressed_text_chunk_is_a_bomb() -> None:
    with pytest.raises(DecompressionBombError):
        compress(text_bomb_png())


def test_thumbnail_refuses_bombs_too() -> None:
    with pytest.raises(DecompressionBombError):
        make_thumbnail(bomb_png(30_000, 30_000))


# --- orientation and metadata -----------------------------------------------------------------


def test_exif_rotation_is_applied(corpus_dir: Path) -> None:
    data = (corpus_dir / "edge" / "exif_rot6.jpg").read_bytes()
    stored = decode(data).size
    result = compress(data)
    assert (result.width, result.height) == (stored[1], stored[0])
    assert decode(result.data).size == (stored[1], stored[0])


def test_exif_is_stripped(corpus_dir: Path) -> None:
    out = output_of((corpus_dir / "edge" / "exif_rot6.jpg").read_bytes())
    assert "exif" not in out.info
    assert len(out.getexif()) == 0


def test_orientation_6_turns_the_left_half_into_the_top_half() -> None:
    data = encode(halves((40, 20), RED, BLUE), "JPEG", quality=95, exif=exif(6))
    out = output_of(data)
    assert out.size == (20, 40)
    assert close(out.getpixel((10, 5)), RED, tolerance=30)
    assert close(out.getpixel((10, 35)), BLUE, tolerance=30)


@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "WEBP"])
def test_gps_position_is_stripped(fmt: str) -> None:
    data = encode(Image.new("RGB", (16, 16), RED), fmt, exif=exif(gps=True))
    assert decode(data).getexif().get_ifd(0x8825)  # the source does carry GPS
    out = output_of(data)
    assert "exif" not in out.info
    assert not out.getexif().get_ifd(0x8825)


@pytest.mark.parametrize("fmt", ["JPEG", "WEBP", "AVIF"])
def test_output_of_each_format_carries_no_exif_xmp_or_comment(fmt: OutputFormat) -> None:
    xmp = b'<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF/></x:xmpmeta>'
    data = encode(
        Image.new("RGB", (16, 16), RED), "JPEG", exif=exif(gps=True), xmp=xmp, comment=b"secret"
    )
    result = compress(data, CompressOptions(format=fmt))
    out = decode(result.data)
    assert not {"exif", "xmp", "XML:com.adobe.xmp", "comment"} & set(out.info)
    assert b"secret" not in result.data
    assert b"Test Camera" not in result.data


def test_icc_profile_is_kept() -> None:
    icc = srgb_icc()
    data = encode(Image.new("RGB", (16, 16), RED), "JPEG", icc_profile=icc)
    assert output_of(data).info.get("icc_profile") == icc


@pytest.mark.parametrize("fmt", ["WEBP", "AVIF"])
def test_icc_profile_is_kept_in_webp_and_avif(fmt: str) -> None:
    icc = srgb_icc()
    data = encode(Image.new("RGB", (16, 16), RED), "PNG", icc_profile=icc)
    assert output_of(data, format=fmt).info.get("icc_profile") == icc


def test_icc_profile_of_another_colour_space_is_dropped() -> None:
    data = encode(Image.new("L", (16, 16), 90), "PNG", icc_profile=srgb_icc())
    assert "icc_profile" not in output_of(data).info


# --- resizing ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("limits", "expected"),
    [
        ({"max_width": 320}, (320, 240)),
        ({"max_height": 120}, (160, 120)),
        ({"max_width": 320, "max_height": 100}, (133, 100)),
        ({"max_width": 1000, "max_height": 1000}, (640, 480)),
    ],
)
def test_max_dimensions_downscale_keeping_the_aspect_ratio(
    photo: bytes, limits: dict[str, Any], expected: tuple[int, int]
) -> None:
    result = compress(photo, CompressOptions(**limits))
    assert (result.width, result.height) == expected
    assert decode(result.data).size == expected
    assert (result.input_width, result.input_height) == (640, 480)


def test_large_jpeg_downscale_gives_the_exact_size(corpus_dir: Path) -> None:
    data = (corpus_dir / "img" / "s2_00.jpg").read_bytes()  # 1632x1224, decoded at 1/8 scale
    assert output_of(data, max_width=200).size == (200, 150)


def test_downscale_limits_apply_to_the_rotated_image(corpus_dir: Path) -> None:
    data = (corpus_dir / "edge" / "exif_rot6.jpg").read_bytes()  # stored 1632x1224
    assert output_of(data, max_width=306).size == (306, 408)


def test_png_downscale_keeps_colours() -> None:
    data = encode(halves((400, 200), RED, BLUE), "PNG")
    out = output_of(data, max_width=100)
    assert out.size == (100, 50)
    assert close(out.getpixel((10, 25)), RED, tolerance=20)
    assert close(out.getpixel((90, 25)), BLUE, tolerance=20)


# --- quality and output formats ---------------------------------------------------------------


def test_lower_quality_gives_fewer_bytes(photo: bytes) -> None:
    low = compress(photo, CompressOptions(quality=20, keep_original=False))
    high = compress(photo, CompressOptions(quality=80, keep_original=False))
    assert low.output_bytes < high.output_bytes


@pytest.mark.parametrize(
    ("fmt", "media_type", "extension"),
    [("WEBP", "image/webp", ".webp"), ("AVIF", "image/avif", ".avif")],
)
def test_webp_and_avif_output_is_what_it_says(
    photo: bytes, fmt: OutputFormat, media_type: str, extension: str
) -> None:
    result = compress(photo, CompressOptions(format=fmt))
    assert sniff_format(result.data) == fmt
    assert (result.format, result.media_type, result.extension) == (fmt, media_type, extension)
    assert decode(result.data).size == (640, 480)


def test_optimize_and_progressive_write_a_progressive_jpeg(photo: bytes) -> None:
    result = compress(photo, CompressOptions(optimize=True, progressive=True))
    assert decode(result.data).info.get("progressive")


# --- keep_original ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def small_jpeg(photo: bytes) -> bytes:
    """A clean JPEG at quality 20: re-encoding at 50 makes it larger."""
    return encode(decode(photo), "JPEG", quality=20)


def test_smaller_clean_jpeg_source_is_kept_byte_for_byte(small_jpeg: bytes) -> None:
    result = compress(small_jpeg)
    assert result.kept_original
    assert result.data == small_jpeg
    assert result.output_bytes == result.input_bytes
    assert (result.format, result.width, result.height) == ("JPEG", 640, 480)


def test_keep_original_off_always_re_encodes(small_jpeg: bytes) -> None:
    result = compress(small_jpeg, CompressOptions(keep_original=False))
    assert not result.kept_original
    assert result.output_bytes > len(small_jpeg)


def test_smaller_jpeg_with_exif_is_re_encoded_to_strip_it(photo: bytes) -> None:
    data = encode(decode(photo), "JPEG", quality=20, exif=exif(gps=True))
    result = compress(data)
    assert not result.kept_original
    assert "exif" not in decode(result.data).info


def test_smaller_jpeg_with_a_comment_is_re_encoded(photo: bytes) -> None:
    data = encode(decode(photo), "JPEG", quality=20, comment=b"owner: someone")
    assert not compress(data).kept_original


def test_smaller_jpeg_with_trailing_bytes_is_re_encoded(small_jpeg: bytes) -> None:
    result = compress(small_jpeg + b"PK\x03\x04 hidden archive")
    assert not result.kept_original
    assert b"hidden archive" not in result.data


def test_smaller_jpeg_is_re_encoded_when_resized(small_jpeg: bytes) -> None:
    assert not compress(small_jpeg, CompressOptions(max_width=320)).kept_original


def test_smaller_jpeg_is_re_encoded_for_webp_output(small_jpeg: bytes) -> None:
    result = compress(small_jpeg, CompressOptions(format="WEBP", quality=95))
    assert not result.kept_original
    assert result.format == "WEBP"


# --- thumbnails -------------------------------------------------------------------------------


def test_thumbnail_is_a_jpeg_within_256_pixels(corpus_dir: Path) -> None:
    thumb = decode(make_thumbnail((corpus_dir / "img" / "s2_00.jpg").read_bytes()))
    assert thumb.format == "JPEG"
    assert thumb.size == (256, 192)


def test_thumbnail_size_is_configurable(photo: bytes) -> None:
    assert decode(make_thumbnail(photo, size=64)).size == (64, 48)


def test_thumbnail_of_a_transparent_png_is_flattened() -> None:
    data = encode(Image.new("RGBA", (300, 300), (0, 0, 0, 0)), "PNG")
    thumb = decode(make_thumbnail(data))
    assert close(thumb.getpixel((10, 10)), WHITE)


# --- concurrency ------------------------------------------------------------------------------


def test_concurrent_calls_give_the_same_bytes_as_sequential_ones(corpus_dir: Path) -> None:
    sources = [p.read_bytes() for p in sorted((corpus_dir / "img").glob("s03_*.jpg"))]
    sequential = [compress(data).data for data in sources]
    with ThreadPoolExecutor(max_workers=4) as pool:
        concurrent = [r.data for r in pool.map(compress, sources * 2)]
    assert concurrent == sequential * 2


def test_results_options_and_errors_survive_pickling_for_process_pools(photo: bytes) -> None:
    options = CompressOptions(quality=70, max_width=100)
    result = compress(photo, options)
    assert pickle.loads(pickle.dumps(options)) == options
    assert pickle.loads(pickle.dumps(result)) == result
    assert isinstance(pickle.loads(pickle.dumps(result)), CompressedImage)
    error = pickle.loads(pickle.dumps(DecompressionBombError("too big")))
    assert (type(error), error.reason, error.message) == (
        DecompressionBombError,
        "decompression_bomb",
        "too big",
    )


def test_every_image_error_is_an_imgcore_error() -> None:
    for cls in (UnsupportedImageError, DecompressionBombError, CorruptImageError):
        assert issubclass(cls, ImageError)
    assert issubclass(ImageError, ImgcoreError)
    assert ImageError("x").reason == "image_error"


def test_variants_decode_a_jpeg_once_drafted_to_the_largest_variant(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from imgcore._compress import compress_variants
    from imgcore.presets import CATALOG
    from PIL import JpegImagePlugin

    drafts: list[tuple[int, int]] = []
    original = JpegImagePlugin.JpegImageFile.draft

    def recording(self: Any, mode: Any, size: Any, *args: Any) -> Any:
        drafts.append(size)
        return original(self, mode, size, *args)

    monkeypatch.setattr(JpegImagePlugin.JpegImageFile, "draft", recording)
    data = encode(Image.new("RGB", (4400, 3300), (200, 30, 30)), "JPEG")
    images = compress_variants(data, CATALOG.variants)
    assert drafts == [(2048, 1536)]  # large's size: libjpeg then decodes at 1/2
    assert [(i.width, i.height) for i in images] == [(2048, 1536), (1000, 750), (160, 160)]
