"""The vips codec plugin: found through its entry point, the same JPEG quantisation as Pillow."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from imgcore._codecs import installed_codecs, select_codecs
from imgcore._compress import compress
from imgcore._compression.pool import Compressor
from imgcore._plugins import create_plugin_manager
from imgcore.contracts import CompressOptions
from imgcore_vips.codec import VipsCodec
from PIL import Image, JpegImagePlugin
from support.images import encode

pytestmark = pytest.mark.anyio


def quantization(data: bytes) -> dict[int, list[int]]:
    with Image.open(io.BytesIO(data)) as im:
        assert isinstance(im, JpegImagePlugin.JpegImageFile)
        return {k: list(v) for k, v in im.quantization.items()}


def test_the_vips_codec_comes_from_its_entry_point_and_wins_by_rank() -> None:
    pm = create_plugin_manager(environ={})
    codecs = {c.spec.name: c for c in installed_codecs(pm)}
    assert codecs["vips"].plugin == "vips"
    assert select_codecs(pm)[0].name == "vips"


def test_disabling_the_plugin_leaves_pillow() -> None:
    pm = create_plugin_manager(environ={"IMGCORE_DISABLE_PLUGINS": "vips"})
    assert [spec.name for spec in select_codecs(pm)] == ["pillow"]


@pytest.mark.parametrize("quality", [10, 50, 75, 95])
def test_exact_quality_writes_pillows_quantisation_tables(corpus_dir: Path, quality: int) -> None:
    photo = (corpus_dir / "img" / "s03_coffee.jpg").read_bytes()
    options = CompressOptions(quality=quality, keep_original=False, quality_mode="exact")
    vips = VipsCodec().compress(photo, options)
    pillow = compress(photo, options)
    assert quantization(vips.data) == quantization(pillow.data)


def test_exact_quality_matches_pillow_on_a_downscale_too(corpus_dir: Path) -> None:
    photo = (corpus_dir / "img" / "s2_00.jpg").read_bytes()
    options = CompressOptions(max_width=500, keep_original=False, quality_mode="exact")
    assert quantization(VipsCodec().compress(photo, options).data) == quantization(
        compress(photo, options).data
    )


async def test_a_bmp_goes_to_pillow_when_vips_is_chosen() -> None:
    bmp = encode(Image.new("RGB", (8, 8), (200, 10, 10)), "BMP")
    pm = create_plugin_manager(environ={})
    compressor = Compressor(CompressOptions(), workers=1, mode="thread", codecs=select_codecs(pm))
    try:
        result = await compressor(bmp)
    finally:
        compressor.close()
    assert result.input_format == "BMP" and result.format == "JPEG"


def test_variants_decode_a_jpeg_once_shrunk_on_load_to_the_largest_variant(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import pyvips
    from imgcore.presets import CATALOG

    loads: list[dict[str, object]] = []
    original = pyvips.Image.new_from_buffer

    def recording(data: bytes, options: str, **kwargs: object) -> pyvips.Image:
        loads.append(kwargs)
        return original(data, options, **kwargs)

    monkeypatch.setattr(pyvips.Image, "new_from_buffer", recording)
    data = encode(Image.new("RGB", (4400, 3300), (200, 30, 30)), "JPEG")
    images = VipsCodec().variants(data, CATALOG.variants, CompressOptions())
    # The header, then one decode, streamed: at 1/2, the largest scale still >= large's
    # 2048x1536.
    assert [(load.get("access"), load.get("shrink")) for load in loads] == [
        ("sequential", None),
        ("sequential", 2),
    ]
    assert [(i.width, i.height) for i in images] == [(2048, 1536), (1000, 750), (160, 160)]


def test_the_largest_variant_of_a_three_by_two_photo_is_resized_once(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import pyvips
    from imgcore.presets import CATALOG

    resizes: list[tuple[tuple[int, int], tuple[int, int]]] = []
    original = pyvips.Image.thumbnail_image

    def recording(image: pyvips.Image, width: int, **kwargs: object) -> pyvips.Image:
        out = original(image, width, **kwargs)
        resizes.append(((image.width, image.height), (out.width, out.height)))
        return out

    monkeypatch.setattr(pyvips.Image, "thumbnail_image", recording)
    data = encode(Image.new("RGB", (6000, 4000), (30, 120, 200)), "JPEG")
    images = VipsCodec().variants(data, CATALOG.variants, CompressOptions())
    assert [(i.width, i.height) for i in images] == [(2048, 1365), (1000, 667), (160, 160)]
    # The decode (at 1/2) is resized straight to large's 2048x1365, not to the 1366 rows
    # decode_size rounds up to and then again; medium and thumb are cut from it.
    assert resizes == [
        ((3000, 2000), (2048, 1365)),
        ((2048, 1365), (1000, 667)),
        ((2048, 1365), (160, 107)),
    ]
