"""Presets: the built-ins, the TOML file and its errors, and the shared variant geometry."""

from __future__ import annotations

from pathlib import Path

import pytest
from imgcore.config import Config, ConfigError
from imgcore.contracts import Variant, decode_size, plan_variant
from imgcore.errors import UnknownPresetError
from imgcore.presets import CATALOG, Preset, load_presets, parse_presets, resolve_preset

SHOP = """
[[presets.shop.variants]]
name = "zoom"
width = 2400
height = 2400

[[presets.shop.variants]]
name = "tile"
fit = "pad"
width = 300
height = 300
format = "WEBP"
quality = 70
trim = true
background = "#f0f0f0"
"""


def test_default_is_the_single_output_the_settings_describe() -> None:
    presets = load_presets(Config())
    (full,) = presets["default"].variants
    assert (full.fit, full.width, full.height, full.format, full.quality) == (
        "contain", None, None, "JPEG", 50,
    )  # fmt: skip


def test_default_follows_the_output_settings() -> None:
    config = Config(quality=80, output_format="WEBP", max_width=1200)
    (full,) = load_presets(config)["default"].variants
    assert (full.width, full.height, full.format, full.quality) == (1200, None, "WEBP", 80)


def test_catalog_has_large_medium_and_thumb() -> None:
    assert [(v.name, v.fit, v.width, v.height, v.format) for v in CATALOG.variants] == [
        ("large", "contain", 2048, 2048, "JPEG"),
        ("medium", "contain", 1000, 1000, "WEBP"),
        ("thumb", "pad", 160, 160, "JPEG"),
    ]
    assert CATALOG.variants[2].background_rgb() == (255, 255, 255)


def test_a_file_adds_its_presets_after_the_builtins(tmp_path: Path) -> None:
    path = tmp_path / "presets.toml"
    path.write_text(SHOP)
    presets = load_presets(Config(presets_file=str(path)))
    assert list(presets) == ["default", "catalog", "shop"]
    zoom, tile = presets["shop"].variants
    assert zoom == Variant(name="zoom", width=2400, height=2400)
    assert (tile.fit, tile.format, tile.quality, tile.trim, tile.background) == (
        "pad", "WEBP", 70, True, "#f0f0f0",
    )  # fmt: skip


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[presets.x\n", "not valid TOML"),
        ("[presets.x]\nvariants = []", "preset 'x'"),
        ('[presets.x]\nvariants = [{ name = "a", width = 0 }]', "`variants[0].width`"),
        ('[presets.x]\nvariants = [{ name = "a", fit = "fill" }]', "`variants[0].fit`"),
        ('[presets.x]\nvariants = [{ name = "a", fit = "cover", width = 9 }]', "needs width"),
        ('[presets.x]\nvariants = [{ name = "a", colour = "red" }]', "unknown field `colour`"),
        ('[presets.x]\nvariants = [{ name = "a" }, { name = "a" }]', "used twice: a"),
        ('[presets.x]\nvariants = [{ name = "A b" }]', "`variants[0].name`"),
        ('[presets.x]\nvariants = [{ name = "a", format = "PNG" }]', "`variants[0].format`"),
        ('[presets.x]\nvariants = [{ name = "a", quality = 99 }]', "`variants[0].quality`"),
        ('[presets.x]\nvariants = [{ name = "a", background = "nope" }]', "not a colour"),
        ('[presets.catalog]\nvariants = [{ name = "a" }]', "'catalog' is built in"),
        ('[presetz.x]\nvariants = [{ name = "a" }]', "unknown field `presetz`"),
    ],
)
def test_an_invalid_file_is_a_config_error_that_says_where(text: str, message: str) -> None:
    with pytest.raises(ConfigError, match="presets file") as caught:
        parse_presets(text)
    assert message in str(caught.value)


def test_a_missing_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"IMGCORE_PRESETS_FILE=.*cannot be read"):
        load_presets(Config(presets_file=str(tmp_path / "nope.toml")))


def test_a_format_no_installed_codec_writes_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="'catalog', variant 'medium': no installed codec"):
        load_presets(Config(), outputs=frozenset({"JPEG"}))


def test_an_unknown_name_lists_the_known_ones() -> None:
    presets = load_presets(Config())
    with pytest.raises(UnknownPresetError) as caught:
        resolve_preset(presets, "shop")
    assert caught.value.reason == "unknown_preset"
    assert caught.value.known == ["default", "catalog"]
    assert resolve_preset(presets, None).name == "default"


def test_a_preset_round_trips_through_its_recorded_form() -> None:
    import msgspec

    assert msgspec.convert(msgspec.to_builtins(CATALOG), Preset) == CATALOG


def test_each_variant_has_its_own_key_and_the_first_keeps_the_images() -> None:
    from uuid import UUID

    rid = UUID(int=7)
    assert CATALOG.keys(rid, 3) == [
        f"requests/{rid}/3.jpg",
        f"requests/{rid}/3-medium.webp",
        f"requests/{rid}/3-thumb.jpg",
    ]


# -- geometry ----------------------------------------------------------------------------


def test_contain_never_upscales() -> None:
    plan = plan_variant((50, 40), Variant(name="v", width=200, height=200))
    assert (plan.size, plan.canvas, plan.crop) == ((50, 40), (50, 40), (0, 0, 50, 40))


def test_cover_crops_the_centre_to_the_boxs_shape() -> None:
    plan = plan_variant((600, 300), Variant(name="v", fit="cover", width=200, height=100))
    assert plan.crop == (0, 0, 600, 300)
    plan = plan_variant((600, 300), Variant(name="v", fit="cover", width=100, height=100))
    assert (plan.crop, plan.size) == ((150, 0, 450, 300), (100, 100))


def test_pad_centres_on_the_box() -> None:
    plan = plan_variant((300, 600), Variant(name="v", fit="pad", width=160, height=160))
    assert (plan.size, plan.canvas, plan.offset) == ((80, 160), (160, 160), (40, 0))


def test_decode_size_serves_the_largest_variant() -> None:
    variants = (
        Variant(name="a", width=1000, height=1000),
        Variant(name="b", fit="cover", width=160, height=160),
    )
    assert decode_size((4000, 3000), variants) == (1000, 750)
    # cover fills the box from the short side: 1600 of 3000 px high.
    variants = (Variant(name="b", fit="cover", width=1600, height=1600),)
    assert decode_size((4000, 3000), variants) == (2134, 1600)


def test_decode_size_is_the_source_when_a_variant_trims() -> None:
    variants = (Variant(name="a", width=100, height=100, trim=True),)
    assert decode_size((4000, 3000), variants) == (4000, 3000)


@pytest.mark.parametrize(
    "text", ["#fff", "#FFFFFF", "#12ab9C", "white", "Navy", "rgb(1, 2, 3)", "hsl(120, 100%, 25%)"]
)
def test_a_background_colour_reads_as_pillow_reads_it(text: str) -> None:
    from imgcore._variants import colour_rgb
    from PIL import ImageColor

    assert colour_rgb(text) == ImageColor.getrgb(text)[:3]


@pytest.mark.parametrize("text", ["", "#ff", "#fffff", "#ggg", "notacolour"])
def test_a_background_that_is_no_colour_is_refused(text: str) -> None:
    with pytest.raises(ValueError, match="background is not a colour"):
        Variant(name="v", fit="contain", width=10, height=10, format="JPEG", background=text)
