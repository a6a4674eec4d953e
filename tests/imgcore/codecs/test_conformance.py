"""One conformance suite for every installed codec: imgcore's image rules, codec by codec.

Each test runs once per codec the installed plugins contribute (``pillow`` built in,
``vips`` from imgcore-vips…), calling the codec as a worker does: built by its spec's
factory, then ``compress(data, options)``. A case whose input format a codec does not
decode is skipped for it (that image goes to the next codec; see test_seam.py).

Codecs agree with Pillow, the reference, on the output size exactly and on the look within
a stated tolerance: the mean absolute difference (MAD) of the decoded outputs, per channel
on the 0..255 scale, is at most ``SAME_SIZE_MAD`` at the source's size and
``RESIZED_MAD`` after a downscale (resampling filters differ between libraries). What the
codecs measure against them is in docs/codecs.md.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from imgcore._codecs import installed_codecs
from imgcore._codecs.pillow import PILLOW
from imgcore._plugins import create_plugin_manager
from imgcore.contracts import (
    ALLOWED_FORMATS,
    CodecSpec,
    CompressedImage,
    CompressOptions,
    jpeg_has_nothing_to_strip,
    sniff_format,
)
from imgcore.errors import (
    CorruptImageError,
    DecompressionBombError,
    ImageError,
    UnsupportedImageError,
)
from PIL import Image
from support.images import (
    animated,
    bomb_png,
    close,
    decode,
    encode,
    exif,
    halves,
    mad,
    srgb_icc,
    text_bomb_png,
)

SAME_SIZE_MAD = 1.0
"""Largest mean absolute difference from Pillow's output at the source's size."""
RESIZED_MAD = 6.0
"""Largest mean absolute difference from Pillow's output after a downscale."""

RED = (255, 0, 0)
BLUE = (0, 0, 255)
WHITE = (255, 255, 255)
CODECS = [c.spec for c in installed_codecs(create_plugin_manager(environ={}))]


@pytest.fixture(params=CODECS, ids=[spec.name for spec in CODECS])
def spec(request: pytest.FixtureRequest) -> CodecSpec:
    return request.param  # type: ignore[no-any-return]


def run(spec: CodecSpec, data: bytes, **options: Any) -> CompressedImage:
    """``data`` through the codec, as a worker runs it (skipped where it does not decode)."""
    fmt = sniff_format(data)
    if fmt is not None and fmt not in spec.formats:
        pytest.skip(f"{spec.name} does not decode {fmt}")
    return spec.factory().compress(data, CompressOptions(**options))


def out(spec: CodecSpec, data: bytes, **options: Any) -> Image.Image:
    return decode(run(spec, data, **options).data)


# --- the reference: agreement with Pillow ---------------------------------------------------


PHOTOS = ["img/s03_astronaut.jpg", "img/s2_00.jpg", "edge/progressive.jpg", "edge/gray.jpg",
          "edge/png_photo.png", "edge/rgba.png", "edge/palette.gif", "edge/cmyk.jpg",
          "edge/exif_rot6.jpg"]  # fmt: skip


@pytest.mark.parametrize("name", PHOTOS)
def test_codecs_agree_with_pillow_at_the_source_size(
    spec: CodecSpec, corpus_dir: Path, name: str
) -> None:
    data = (corpus_dir / name).read_bytes()
    ours = run(spec, data, keep_original=False, quality_mode="exact")
    reference = PILLOW.factory().compress(
        data, CompressOptions(keep_original=False, quality_mode="exact")
    )
    assert (ours.width, ours.height) == (reference.width, reference.height)
    assert decode(ours.data).mode == decode(reference.data).mode
    assert mad(ours.data, reference.data) <= SAME_SIZE_MAD


@pytest.mark.parametrize("name", PHOTOS)
def test_codecs_agree_with_pillow_after_a_downscale(
    spec: CodecSpec, corpus_dir: Path, name: str
) -> None:
    data = (corpus_dir / name).read_bytes()
    options = CompressOptions(max_width=300, max_height=300, quality_mode="exact")
    ours = run(spec, data, max_width=300, max_height=300, quality_mode="exact")
    reference = PILLOW.factory().compress(data, options)
    assert (ours.width, ours.height) == (reference.width, reference.height)
    assert mad(ours.data, reference.data) <= RESIZED_MAD


# --- orientation and metadata -----------------------------------------------------------------


def test_exif_orientation_is_applied(spec: CodecSpec, corpus_dir: Path) -> None:
    data = (corpus_dir / "edge" / "exif_rot6.jpg").read_bytes()
    width, height = decode(data).size
    result = run(spec, data)
    assert (result.width, result.height) == (height, width)
    assert decode(result.data).size == (height, width)


def test_orientation_6_turns_the_left_half_into_the_top_half(spec: CodecSpec) -> None:
    data = encode(halves((40, 20), RED, BLUE), "JPEG", quality=95, exif=exif(6))
    image = out(spec, data)
    assert image.size == (20, 40)
    assert close(image.getpixel((10, 5)), RED, tolerance=30)
    assert close(image.getpixel((10, 35)), BLUE, tolerance=30)


@pytest.mark.parametrize("fmt", ["JPEG", "WEBP", "AVIF"])
def test_metadata_is_stripped(spec: CodecSpec, fmt: str) -> None:
    xmp = b'<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF/></x:xmpmeta>'
    data = encode(
        Image.new("RGB", (16, 16), RED), "JPEG", exif=exif(gps=True), xmp=xmp, comment=b"secret"
    )
    result = run(spec, data, format=fmt)
    image = decode(result.data)
    assert not {"exif", "xmp", "XML:com.adobe.xmp", "comment"} & set(image.info)
    assert b"secret" not in result.data and b"Test Camera" not in result.data
    if fmt == "JPEG":
        assert jpeg_has_nothing_to_strip(result.data)


@pytest.mark.parametrize("fmt", ["JPEG", "WEBP", "AVIF"])
def test_icc_profile_is_kept(spec: CodecSpec, fmt: str) -> None:
    icc = srgb_icc()
    data = encode(Image.new("RGB", (16, 16), RED), "PNG", icc_profile=icc)
    assert out(spec, data, format=fmt).info.get("icc_profile") == icc


def test_icc_profile_of_another_colour_space_is_dropped(spec: CodecSpec) -> None:
    data = encode(Image.new("L", (16, 16), 128), "JPEG", icc_profile=srgb_icc())
    assert "icc_profile" not in out(spec, data).info


# --- modes ------------------------------------------------------------------------------------


def test_cmyk_becomes_rgb(spec: CodecSpec, corpus_dir: Path) -> None:
    image = out(spec, (corpus_dir / "edge" / "cmyk.jpg").read_bytes())
    assert image.mode == "RGB"


def test_cmyk_red_becomes_rgb_red(spec: CodecSpec) -> None:
    data = encode(Image.new("CMYK", (16, 16), (0, 255, 255, 0)), "JPEG", quality=95)
    assert close(out(spec, data).getpixel((8, 8)), RED, tolerance=20)


@pytest.mark.parametrize("background", ["#ffffff", "#00ff00"])
def test_alpha_is_flattened_on_the_background(spec: CodecSpec, background: str) -> None:
    data = encode(Image.new("RGBA", (16, 16), (0, 0, 0, 0)), "PNG")
    expected = (255, 255, 255) if background == "#ffffff" else (0, 255, 0)
    image = out(spec, data, background=background)
    assert image.mode == "RGB" and close(image.getpixel((8, 8)), expected)


def test_half_transparent_black_blends_to_mid_grey_on_white(spec: CodecSpec) -> None:
    data = encode(Image.new("RGBA", (16, 16), (0, 0, 0, 128)), "PNG")
    assert close(out(spec, data).getpixel((8, 8)), (127, 127, 127), tolerance=4)


def test_transparent_grey_alpha_pixel_becomes_the_background(spec: CodecSpec) -> None:
    data = encode(Image.new("LA", (16, 16), (0, 0)), "PNG")
    assert close(out(spec, data).getpixel((8, 8)), WHITE)


def test_sixteen_bit_mid_grey_becomes_8_bit_mid_grey(spec: CodecSpec) -> None:
    data = encode(Image.new("I;16", (16, 16), 32768), "PNG")
    image = out(spec, data)
    assert image.mode == "L" and close(image.getpixel((8, 8)), (128,), tolerance=2)


def test_one_bit_image_becomes_black_and_white_grey(spec: CodecSpec) -> None:
    im = Image.new("1", (16, 16), 0)
    im.paste(1, (8, 0, 16, 16))
    image = out(spec, encode(im, "PNG"))
    assert image.mode == "L"
    assert close(image.getpixel((2, 8)), (0,)) and close(image.getpixel((13, 8)), (255,))


def test_palette_image_keeps_its_colours(spec: CodecSpec) -> None:
    data = encode(Image.new("RGB", (16, 16), BLUE).convert("P"), "PNG")
    image = out(spec, data)
    assert image.mode == "RGB" and close(image.getpixel((8, 8)), BLUE)


def test_palette_transparency_becomes_the_background(spec: CodecSpec) -> None:
    im = Image.new("P", (16, 16), 0)
    im.putpalette([255, 0, 0, 0, 0, 255])
    data = encode(im, "PNG", transparency=0)
    assert close(out(spec, data).getpixel((8, 8)), WHITE)


def test_greyscale_stays_greyscale_in_jpeg_and_becomes_rgb_in_webp(spec: CodecSpec) -> None:
    data = encode(Image.new("L", (16, 16), 100), "PNG")
    assert out(spec, data).mode == "L"
    assert out(spec, data, format="WEBP").mode == "RGB"


@pytest.mark.parametrize("fmt", ["GIF", "WEBP"])
def test_animated_image_keeps_its_first_frame(spec: CodecSpec, fmt: str) -> None:
    data = animated(fmt, [RED, BLUE, (0, 255, 0)], (16, 16))
    assert close(out(spec, data).getpixel((8, 8)), RED, tolerance=30)


@pytest.mark.parametrize("fmt", sorted(ALLOWED_FORMATS))
def test_each_allowed_format_the_codec_lists_decodes(spec: CodecSpec, fmt: str) -> None:
    if fmt not in spec.formats:
        pytest.skip(f"{spec.name} leaves {fmt} to another codec")
    params = {"quality": 90} if fmt in ("JPEG", "WEBP", "AVIF") else {}
    result = run(spec, encode(Image.new("RGB", (24, 16), RED), fmt, **params))
    assert (result.input_format, result.width, result.height) == (fmt, 24, 16)
    assert close(decode(result.data).getpixel((12, 8)), RED, tolerance=30)


# --- refusals, each a typed error with imgcore's reason ---------------------------------------


def test_a_decompression_bomb_is_refused(spec: CodecSpec, corpus_dir: Path) -> None:
    with pytest.raises(DecompressionBombError) as caught:
        run(spec, bomb_png(12_000, 12_000))
    assert caught.value.reason == "decompression_bomb"


def test_the_configured_pixel_limit_is_enforced(spec: CodecSpec, corpus_dir: Path) -> None:
    photo = (corpus_dir / "img" / "s03_astronaut.jpg").read_bytes()
    with pytest.raises(DecompressionBombError):
        run(spec, photo, max_pixels=640 * 480 - 1)
    assert run(spec, photo, max_pixels=640 * 480).width == 640


@pytest.mark.slow
def test_a_900_megapixel_bomb_is_refused_without_allocating(spec: CodecSpec) -> None:
    # In a process whose address space is capped at 1 GiB: decoding 900 MP (2.7 GB) would
    # end in MemoryError (or a crash), not in the refusal.
    script = f"""
import resource, sys
from imgcore._codecs import installed_codecs
from imgcore._plugins import create_plugin_manager
from imgcore.contracts import CompressOptions
from imgcore.errors import DecompressionBombError
from support.images import bomb_png
[spec] = [c.spec for c in installed_codecs(create_plugin_manager()) if c.spec.name == {spec.name!r}]
codec = spec.factory()
data = bomb_png(30_000, 30_000)
resource.setrlimit(resource.RLIMIT_AS, (1 << 30, 1 << 30))
try:
    codec.compress(data, CompressOptions())
except DecompressionBombError as exc:
    print(exc.reason)
"""
    tests = Path(__file__).resolve().parents[2]
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, cwd=tests, timeout=60
    )
    assert done.stdout.strip() == "decompression_bomb", done.stderr


def test_a_png_text_bomb_is_refused(spec: CodecSpec) -> None:
    with pytest.raises(DecompressionBombError) as caught:
        run(spec, text_bomb_png())
    assert caught.value.reason == "decompression_bomb"


def test_png_text_within_the_limits_is_decoded_and_stripped(spec: CodecSpec) -> None:
    data = text_bomb_png(512 * 1024)
    assert "comment" not in out(spec, data).info


_SMALL: dict[str, bytes] = {}


def small_images() -> dict[str, bytes]:
    if not _SMALL:
        im = Image.effect_noise((32, 24), 60).convert("RGB")
        for fmt in ("JPEG", "PNG", "GIF", "WEBP", "BMP", "TIFF"):
            _SMALL[fmt] = encode(im, fmt)
    return _SMALL


@pytest.mark.parametrize("spec_name", [spec.name for spec in CODECS])
@settings(max_examples=60, deadline=None)
@given(
    fmt=st.sampled_from(["JPEG", "PNG", "GIF", "WEBP", "BMP", "TIFF"]),
    edits=st.lists(st.tuples(st.integers(0, 10_000), st.integers(0, 255)), min_size=1, max_size=8),
    cut=st.integers(0, 10_000),
)
def test_damaged_images_raise_only_image_errors(
    spec_name: str, fmt: str, edits: list[tuple[int, int]], cut: int
) -> None:
    [spec] = [spec for spec in CODECS if spec.name == spec_name]
    if fmt not in spec.formats:
        return
    source = bytearray(small_images()[fmt])
    for position, value in edits:
        source[position % len(source)] = value
    damaged = bytes(source[: max(cut % (len(source) + 1), 1)])
    try:
        result = spec.factory().compress(damaged, CompressOptions())
    except ImageError:
        return
    assert sniff_format(result.data) == "JPEG"


def test_a_truncated_jpeg_is_corrupt(spec: CodecSpec, corpus_dir: Path) -> None:
    with pytest.raises(CorruptImageError) as caught:
        run(spec, (corpus_dir / "special" / "truncated.jpg").read_bytes())
    assert caught.value.reason == "corrupt_image"


def test_a_truncated_jpeg_is_corrupt_when_downscaled_too(spec: CodecSpec, corpus_dir: Path) -> None:
    with pytest.raises(CorruptImageError):
        run(spec, (corpus_dir / "special" / "truncated.jpg").read_bytes(), max_width=100)


def test_a_truncated_png_is_corrupt(spec: CodecSpec) -> None:
    data = encode(Image.effect_noise((64, 64), 64).convert("RGB"), "PNG")
    with pytest.raises(CorruptImageError):
        run(spec, data[: len(data) // 2])


@pytest.mark.parametrize(
    "data", [b"", b"hello, world", b"<svg xmlns='http://www.w3.org/2000/svg'/>", b"%PDF-1.7"]
)
def test_a_body_that_is_no_allowed_image_is_unsupported(spec: CodecSpec, data: bytes) -> None:
    with pytest.raises(UnsupportedImageError) as caught:
        run(spec, data)
    assert caught.value.reason == "unsupported_format"


@pytest.mark.parametrize("magic", [b"\xff\xd8\xff\xe0", b"\x89PNG\r\n\x1a\n", b"GIF89a"])
def test_image_magic_followed_by_garbage_is_corrupt(spec: CodecSpec, magic: bytes) -> None:
    with pytest.raises(CorruptImageError):
        run(spec, magic + b"\x00garbage" * 64)


def test_an_image_too_wide_for_webp_is_an_image_error(spec: CodecSpec) -> None:
    data = encode(Image.new("L", (17_000, 1), 0), "PNG")
    with pytest.raises(ImageError) as caught:
        run(spec, data, format="WEBP")
    assert not isinstance(caught.value, CorruptImageError | UnsupportedImageError)


# --- size ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("limits", "expected"),
    [({"max_width": 320}, (320, 240)), ({"max_height": 120}, (160, 120)),
     ({"max_width": 320, "max_height": 100}, (133, 100)), ({"max_width": 4000}, (640, 480))],
)  # fmt: skip
def test_max_dimensions_downscale_keeping_the_aspect_ratio_and_never_up(
    spec: CodecSpec, corpus_dir: Path, limits: dict[str, int], expected: tuple[int, int]
) -> None:
    result = run(spec, (corpus_dir / "img" / "s03_astronaut.jpg").read_bytes(), **limits)
    assert (result.width, result.height) == expected
    assert decode(result.data).size == expected


def test_limits_apply_to_the_upright_image(spec: CodecSpec, corpus_dir: Path) -> None:
    data = (corpus_dir / "edge" / "exif_rot6.jpg").read_bytes()
    stored_width, stored_height = decode(data).size  # upright, width and height swap
    result = run(spec, data, max_height=stored_width // 2)
    assert (result.width, result.height) == (round(stored_height / 2), stored_width // 2)


# --- keep-original ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def small_jpeg(corpus_dir: Path) -> bytes:
    """A clean JPEG at quality 20: re-encoding at 50 makes it larger."""
    return encode(
        decode((corpus_dir / "img" / "s03_astronaut.jpg").read_bytes()), "JPEG", quality=20
    )


def test_a_smaller_clean_jpeg_is_kept_byte_for_byte(spec: CodecSpec, small_jpeg: bytes) -> None:
    result = run(spec, small_jpeg)
    assert result.kept_original and result.data == small_jpeg
    assert (result.width, result.height, result.output_bytes) == (640, 480, len(small_jpeg))


def test_keep_original_off_re_encodes(spec: CodecSpec, small_jpeg: bytes) -> None:
    result = run(spec, small_jpeg, keep_original=False)
    assert not result.kept_original and result.data != small_jpeg


def test_a_smaller_jpeg_with_exif_is_re_encoded_to_strip_it(
    spec: CodecSpec, small_jpeg: bytes
) -> None:
    data = encode(decode(small_jpeg), "JPEG", quality=20, exif=exif(gps=True))
    result = run(spec, data)
    assert not result.kept_original and "exif" not in decode(result.data).info


def test_a_smaller_jpeg_is_re_encoded_when_resized(spec: CodecSpec, small_jpeg: bytes) -> None:
    assert not run(spec, small_jpeg, max_width=320).kept_original
