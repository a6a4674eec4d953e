"""The variants conformance suite: a preset's outputs from one decode, for every codec.

Each test runs once per installed codec, called as a worker calls it
(``factory().variants(data, variants, options)``). Sizes come from the shared geometry
(:func:`imgcore.contracts.plan_variant`), so every codec must write them to the pixel; looks
are checked by sampled colours.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from imgcore._codecs import installed_codecs
from imgcore._codecs.pillow import PILLOW
from imgcore._plugins import create_plugin_manager
from imgcore.contracts import CodecSpec, CompressedImage, CompressOptions, Variant, sniff_format
from imgcore.errors import CorruptImageError, DecompressionBombError
from PIL import Image
from support.images import close, decode, encode, exif, mad

RESIZED_MAD = 6.0
"""Largest mean absolute difference from Pillow's output after a downscale (as the
conformance suite's)."""

RED = (255, 0, 0)
GREEN = (0, 255, 0)
BLUE = (0, 0, 255)
WHITE = (255, 255, 255)
CODECS = [c.spec for c in installed_codecs(create_plugin_manager(environ={}))]


@pytest.fixture(params=CODECS, ids=[spec.name for spec in CODECS])
def spec(request: pytest.FixtureRequest) -> CodecSpec:
    return request.param  # type: ignore[no-any-return]


def variants(spec: CodecSpec, data: bytes, *wanted: Variant, **options: Any) -> list[Any]:
    """``data`` through the codec's ``variants`` (skipped where it does not decode)."""
    fmt = sniff_format(data)
    if fmt is not None and fmt not in spec.formats:
        pytest.skip(f"{spec.name} does not decode {fmt}")
    return spec.factory().variants(data, wanted, CompressOptions(**options))


def one(spec: CodecSpec, data: bytes, variant: Variant) -> CompressedImage:
    result: CompressedImage = variants(spec, data, variant)[0]
    return result


def stripes(size: tuple[int, int]) -> Image.Image:
    """Three equal stripes across the longer side: red, green, blue."""
    w, h = size
    im = Image.new("RGB", size, GREEN)
    if w >= h:
        im.paste(RED, (0, 0, w // 3, h))
        im.paste(BLUE, (w - w // 3, 0, w, h))
    else:
        im.paste(RED, (0, 0, w, h // 3))
        im.paste(BLUE, (0, h - h // 3, w, h))
    return im


SOURCES = {
    "portrait": (300, 600),
    "landscape": (600, 300),
    "tiny": (50, 40),
}
BOX = {"width": 200, "height": 200}
# (source, fit) -> the output size in a 200x200 box.
EXPECTED = {
    ("portrait", "contain"): (100, 200),
    ("portrait", "cover"): (200, 200),
    ("portrait", "pad"): (200, 200),
    ("landscape", "contain"): (200, 100),
    ("landscape", "cover"): (200, 200),
    ("landscape", "pad"): (200, 200),
    ("tiny", "contain"): (50, 40),  # never upscaled
    ("tiny", "cover"): (40, 40),  # cropped to the box's shape, not upscaled
    ("tiny", "pad"): (200, 200),  # not upscaled, but padded to the box
}


@pytest.mark.parametrize(("source", "fit"), list(EXPECTED))
def test_each_fit_gives_its_size(spec: CodecSpec, source: str, fit: Any) -> None:
    data = encode(stripes(SOURCES[source]), "PNG")
    image = one(spec, data, Variant(name="v", fit=fit, **BOX))
    assert (image.width, image.height) == EXPECTED[source, fit]
    assert decode(image.data).size == EXPECTED[source, fit]
    assert (image.input_width, image.input_height) == SOURCES[source]


@pytest.mark.parametrize("source", ["portrait", "landscape"])
def test_cover_keeps_the_centre(spec: CodecSpec, source: str) -> None:
    data = encode(stripes(SOURCES[source]), "PNG")
    out = decode(one(spec, data, Variant(name="v", fit="cover", **BOX)).data)
    assert close(out.getpixel((100, 100)), GREEN)
    # The centre third of the long side fills most of the square: the ends are cut.
    ends = [(5, 5), (195, 195)]
    assert not all(close(out.getpixel(p), GREEN) for p in ends)


@pytest.mark.parametrize(("source", "bars"), [("portrait", [(5, 100), (195, 100)]),
                                              ("landscape", [(100, 5), (100, 195)]),
                                              ("tiny", [(5, 5), (195, 195)])])  # fmt: skip
def test_pad_fills_the_box_with_the_background(
    spec: CodecSpec, source: str, bars: list[tuple[int, int]]
) -> None:
    data = encode(stripes(SOURCES[source]), "PNG")
    variant = Variant(name="v", fit="pad", background="#0000ff", **BOX)
    out = decode(one(spec, data, variant).data)
    assert all(close(out.getpixel(p), BLUE) for p in bars)
    assert close(out.getpixel((100, 100)), GREEN)


@pytest.mark.parametrize("fit", ["contain", "cover", "pad"])
def test_transparency_is_flattened_on_the_variants_background(spec: CodecSpec, fit: Any) -> None:
    im = Image.new("RGBA", (400, 400), (0, 0, 0, 0))
    im.paste((255, 0, 0, 255), (100, 100, 300, 300))
    variant = Variant(name="v", fit=fit, background="#00ff00", **BOX)
    out = decode(one(spec, encode(im, "PNG"), variant).data)
    assert out.size == (200, 200)
    assert close(out.getpixel((5, 5)), GREEN)
    assert close(out.getpixel((100, 100)), RED)


def product_shot(format: str) -> bytes:
    """A red product 200x300 on a white margin (800x600 in all)."""
    im = Image.new("RGB", (800, 600), WHITE)
    im.paste(RED, (100, 150, 300, 450))
    return encode(im, format, **({"quality": 90} if format == "JPEG" else {}))


@pytest.mark.parametrize("format", ["PNG", "JPEG"])
def test_trim_removes_a_white_margin_before_fitting(spec: CodecSpec, format: str) -> None:
    variant = Variant(name="v", width=1000, height=1000, trim=True)
    image = one(spec, product_shot(format), variant)
    # JPEG's ringing at the product's edge may count as product: a few pixels.
    slack = 0 if format == "PNG" else 4
    assert 200 <= image.width <= 200 + slack
    assert 300 <= image.height <= 300 + slack
    out = decode(image.data)
    assert close(out.getpixel((3, 3)), RED, tolerance=40)


def test_trim_then_pad_centres_the_product(spec: CodecSpec) -> None:
    variant = Variant(name="v", fit="pad", width=160, height=160, trim=True)
    out = decode(one(spec, product_shot("PNG"), variant).data)
    assert out.size == (160, 160)
    assert close(out.getpixel((80, 80)), RED)
    assert close(out.getpixel((5, 80)), WHITE)  # the pad, not the old margin


def test_trim_of_a_transparent_margin(spec: CodecSpec) -> None:
    im = Image.new("RGBA", (400, 300), (0, 0, 0, 0))
    im.paste((0, 0, 255, 255), (100, 50, 300, 250))
    image = one(spec, encode(im, "PNG"), Variant(name="v", trim=True))
    assert (image.width, image.height) == (200, 200)


def test_trim_keeps_an_image_whose_every_edge_has_content_whole(spec: CodecSpec) -> None:
    im = Image.new("RGB", (90, 60), WHITE)
    for x, y in ((45, 0), (45, 59), (0, 30), (89, 30)):
        im.putpixel((x, y), BLUE)
    image = one(spec, encode(im, "PNG"), Variant(name="v", trim=True))
    assert (image.width, image.height) == (90, 60)


def test_variants_come_in_order_with_their_formats(spec: CodecSpec) -> None:
    data = encode(stripes((1200, 900)), "JPEG")
    wanted = [
        Variant(name="large", width=1000, height=1000, format="JPEG"),
        Variant(name="medium", width=500, height=500, format="WEBP"),
        Variant(name="tile", fit="cover", width=100, height=100, format="AVIF"),
    ]
    if not {"JPEG", "WEBP", "AVIF"} <= spec.outputs:
        pytest.skip(f"{spec.name} does not write every format")
    images = variants(spec, data, *wanted)
    assert [(i.format, i.width, i.height) for i in images] == [
        ("JPEG", 1000, 750),
        ("WEBP", 500, 375),
        ("AVIF", 100, 100),
    ]
    assert [decode(i.data).format for i in images] == ["JPEG", "WEBP", "AVIF"]
    assert all(i.output_bytes == len(i.data) for i in images)


def test_orientation_is_applied_before_fitting(spec: CodecSpec) -> None:
    data = encode(stripes((600, 300)), "JPEG", exif=exif(6))  # shown as 300x600
    image = one(spec, data, Variant(name="v", fit="contain", **BOX))
    assert (image.width, image.height) == (100, 200)


def test_variants_agree_with_pillow(spec: CodecSpec, corpus_dir: Path) -> None:
    data = (corpus_dir / "img/s03_astronaut.jpg").read_bytes()
    wanted = [
        Variant(name="a", width=300, height=300),
        Variant(name="b", fit="cover", width=120, height=80),
        Variant(name="c", fit="pad", width=160, height=160),
    ]
    ours = variants(spec, data, *wanted)
    reference = PILLOW.factory().variants(data, wanted, CompressOptions())
    for mine, theirs in zip(ours, reference, strict=True):
        assert (mine.width, mine.height) == (theirs.width, theirs.height)
        assert mad(mine.data, theirs.data) <= RESIZED_MAD


def test_a_bomb_is_refused_for_variants_too(spec: CodecSpec) -> None:
    data = encode(stripes((100, 100)), "PNG")
    with pytest.raises(DecompressionBombError):
        variants(spec, data, Variant(name="v"), max_pixels=100)


def test_a_truncated_jpeg_is_corrupt_for_variants_too(spec: CodecSpec, corpus_dir: Path) -> None:
    data = (corpus_dir / "img/s03_astronaut.jpg").read_bytes()
    with pytest.raises(CorruptImageError):
        variants(spec, data[: len(data) // 2], Variant(name="v", width=100, height=100))
