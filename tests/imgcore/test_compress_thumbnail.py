"""compress(thumbnail=...): the thumbnail made from the pixels already decoded for the output."""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any

import pytest
from imgcore._compress import (
    CompressOptions,
    InvalidOptionsError,
    ThumbnailOptions,
    compress,
    make_thumbnail,
)
from PIL import Image, ImageChops, ImageStat
from support.images import animated, decode, encode, exif, halves, odd_cmyk_icc, srgb_icc

RED = (255, 0, 0)
GREEN = (0, 255, 0)
BLUE = (0, 0, 255)
WHITE = (255, 255, 255)
THUMB = ThumbnailOptions()


def close(pixel: object, expected: tuple[int, ...], tolerance: int = 20) -> bool:
    """A decoded pixel within ``tolerance`` of ``expected`` on every channel."""
    values = pixel if isinstance(pixel, tuple) else (pixel,)
    return len(values) == len(expected) and all(
        abs(int(v) - e) <= tolerance for v, e in zip(values, expected, strict=True)
    )


def mean_abs_diff(a: Image.Image, b: Image.Image) -> float:
    """Mean absolute difference of two same-size images, over pixels and RGB channels."""
    assert a.size == b.size
    stat = ImageStat.Stat(ImageChops.difference(a.convert("RGB"), b.convert("RGB")))
    return sum(stat.mean) / 3


def thumbnail_of(data: bytes, thumbnail: ThumbnailOptions = THUMB, **options: Any) -> Image.Image:
    """The decoded thumbnail of compress(data, CompressOptions(**options), thumbnail=...)."""
    result = compress(data, CompressOptions(**options), thumbnail=thumbnail)
    assert result.thumbnail is not None
    return decode(result.thumbnail)


@pytest.fixture(scope="module")
def photo(corpus_dir: Path) -> bytes:
    return (corpus_dir / "img" / "s03_astronaut.jpg").read_bytes()


def test_no_thumbnail_unless_asked_for(photo: bytes) -> None:
    assert compress(photo).thumbnail is None


def test_thumbnail_is_a_jpeg_within_its_size(photo: bytes) -> None:
    thumb = thumbnail_of(photo)
    assert (thumb.format, thumb.mode, thumb.size) == ("JPEG", "RGB", (256, 192))
    assert decode(compress(photo, thumbnail=THUMB).data).size == (640, 480)  # output untouched


def test_thumbnail_size_and_quality_are_configurable(photo: bytes) -> None:
    small = compress(photo, thumbnail=ThumbnailOptions(size=64, quality=30)).thumbnail
    large = compress(photo, thumbnail=ThumbnailOptions(size=64, quality=95)).thumbnail
    assert small is not None and large is not None
    assert decode(small).size == decode(large).size == (64, 48)
    assert len(small) < len(large)


def test_thumbnail_is_never_enlarged() -> None:
    data = encode(Image.new("RGB", (100, 50), RED), "PNG")
    assert thumbnail_of(data).size == (100, 50)


def test_thumbnail_of_an_extreme_aspect_ratio_keeps_one_pixel() -> None:
    data = encode(Image.new("RGB", (3000, 2), GREEN), "PNG")
    thumb = thumbnail_of(data)
    assert thumb.size == (256, 1)
    assert close(thumb.getpixel((128, 0)), GREEN)


def test_thumbnail_is_made_from_a_single_decode(
    photo: bytes, monkeypatch: pytest.MonkeyPatch
) -> None:
    opened: list[object] = []
    real_open = Image.open

    def counting_open(*args: Any, **kwargs: Any) -> Image.Image:
        opened.append(args[0])
        return real_open(*args, **kwargs)

    monkeypatch.setattr(Image, "open", counting_open)
    result = compress(photo, thumbnail=THUMB)
    assert result.thumbnail is not None
    assert len(opened) == 1


@pytest.mark.parametrize(
    "name",
    [
        "img/s03_astronaut.jpg",
        "img/s03_motorcycle_left.jpg",
        "img/s2_00.jpg",
        "edge/exif_rot6.jpg",
        "edge/cmyk.jpg",
        "edge/gray.jpg",
        "edge/rgba.png",
        "edge/png_photo.png",
    ],
)
def test_thumbnail_matches_one_made_by_decoding_the_output_again(
    corpus_dir: Path, name: str
) -> None:
    # How thumbnails used to be made: the output file decoded again (JPEG draft) and shrunk.
    data = (corpus_dir / name).read_bytes()
    result = compress(data, thumbnail=THUMB)
    assert result.thumbnail is not None
    new, old = decode(result.thumbnail), decode(make_thumbnail(result.data))
    assert (new.size, new.mode) == (old.size, old.mode)
    # The old one also carries the output's quality-50 losses: a few levels apart on average.
    assert mean_abs_diff(new, old) < 4.0


def test_thumbnail_of_a_resized_output_comes_from_the_draft_decode(corpus_dir: Path) -> None:
    data = (corpus_dir / "img" / "s2_00.jpg").read_bytes()  # 1632x1224: drafted to 408x306
    # Quality 95: at 400 px the output's own losses would dominate the comparison.
    options = CompressOptions(max_width=400, quality=95)
    result = compress(data, options, thumbnail=THUMB)
    assert (result.width, result.height) == (400, 300)
    assert result.thumbnail is not None
    new, old = decode(result.thumbnail), decode(make_thumbnail(result.data))
    assert new.size == (256, 192)
    assert mean_abs_diff(new, old) < 4.0


def test_thumbnail_follows_the_exif_orientation() -> None:
    data = encode(halves((400, 200), RED, BLUE), "JPEG", quality=95, exif=exif(6))
    thumb = thumbnail_of(data)
    assert thumb.size == (128, 256)  # stored landscape, shown portrait
    assert close(thumb.getpixel((64, 30)), RED)
    assert close(thumb.getpixel((64, 226)), BLUE)


def test_thumbnail_of_a_corpus_rotated_photo_is_portrait(corpus_dir: Path) -> None:
    data = (corpus_dir / "edge" / "exif_rot6.jpg").read_bytes()  # stored 1632x1224
    assert thumbnail_of(data).size == (192, 256)


def test_thumbnail_of_cmyk_goes_through_the_embedded_profile() -> None:
    # The odd profile maps cyan to red; a plain CMYK→RGB conversion would give cyan.
    im = Image.new("CMYK", (300, 300), (255, 0, 0, 0))
    thumb = thumbnail_of(encode(im, "JPEG", quality=95, icc_profile=odd_cmyk_icc()))
    assert thumb.mode == "RGB"
    assert close(thumb.getpixel((128, 128)), RED)
    assert "icc_profile" not in thumb.info


def test_thumbnail_carries_the_outputs_icc_profile() -> None:
    icc = srgb_icc()
    data = encode(Image.new("RGB", (600, 300), RED), "PNG", icc_profile=icc)
    result = compress(data, CompressOptions(format="WEBP"), thumbnail=THUMB)
    assert result.thumbnail is not None
    assert decode(result.data).info.get("icc_profile") == icc
    assert decode(result.thumbnail).info.get("icc_profile") == icc


def test_thumbnail_of_grey_stays_grey() -> None:
    data = encode(Image.new("L", (600, 600), 90), "PNG")
    thumb = thumbnail_of(data)
    assert (thumb.mode, thumb.size) == ("L", (256, 256))
    assert close(thumb.getpixel((100, 100)), (90,), tolerance=3)


def test_thumbnail_of_transparency_is_flattened_on_the_background() -> None:
    im = Image.new("RGBA", (600, 400), (255, 0, 0, 0))
    im.paste((0, 0, 255, 255), (0, 0, 300, 400))  # left half opaque blue
    thumb = thumbnail_of(encode(im, "PNG"), background="#00ff00")
    assert thumb.mode == "RGB"
    assert close(thumb.getpixel((30, 85)), BLUE)
    assert close(thumb.getpixel((226, 85)), GREEN)


def test_thumbnail_of_an_animated_gif_is_its_first_frame() -> None:
    data = animated("GIF", [RED, GREEN, BLUE], (400, 400))
    thumb = thumbnail_of(data)
    assert thumb.size == (256, 256)
    assert close(thumb.getpixel((128, 128)), RED)


def test_kept_original_still_gets_a_thumbnail(photo: bytes) -> None:
    small_jpeg = encode(decode(photo), "JPEG", quality=20)  # re-encoding at 50 is larger
    result = compress(small_jpeg, thumbnail=THUMB)
    assert result.kept_original
    assert result.data == small_jpeg
    assert result.thumbnail is not None
    thumb = decode(result.thumbnail)
    assert thumb.size == (256, 192)
    assert mean_abs_diff(thumb, decode(make_thumbnail(small_jpeg))) < 4.0


def test_thumbnail_carries_no_metadata() -> None:
    xmp = b'<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF/></x:xmpmeta>'
    data = encode(
        Image.new("RGB", (600, 400), RED), "JPEG", exif=exif(gps=True), xmp=xmp, comment=b"secret"
    )
    for size in (256, 1000):  # downscaled, and the output's own pixels
        thumbnail = compress(data, thumbnail=ThumbnailOptions(size=size)).thumbnail
        assert thumbnail is not None
        assert not {"exif", "xmp", "XML:com.adobe.xmp", "comment"} & set(decode(thumbnail).info)
        assert b"secret" not in thumbnail
        assert b"Test Camera" not in thumbnail


def test_a_thumbnail_that_cannot_be_encoded_does_not_fail_the_output() -> None:
    # 65536 pixels wide: AVIF encodes it, JPEG (the thumbnail's format) stops at 65500.
    data = encode(Image.new("RGB", (65536, 2), GREEN), "PNG")
    result = compress(data, CompressOptions(format="AVIF"), thumbnail=ThumbnailOptions(size=70_000))
    assert (result.format, result.width) == ("AVIF", 65536)
    assert result.thumbnail is None


def test_result_with_its_thumbnail_survives_pickling(photo: bytes) -> None:
    result = compress(photo, thumbnail=THUMB)
    assert pickle.loads(pickle.dumps(result)) == result
    assert pickle.loads(pickle.dumps(THUMB)) == THUMB


@pytest.mark.parametrize(
    "options", [{"size": 0}, {"size": True}, {"quality": 0}, {"quality": 96}, {"quality": True}]
)
def test_invalid_thumbnail_options_are_refused(options: dict[str, Any]) -> None:
    with pytest.raises(InvalidOptionsError):
        ThumbnailOptions(**options)
