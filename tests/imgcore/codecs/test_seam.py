"""The codec seam: codecs come from a hook, IMGCORE_CODEC picks one, workers run it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import anyio
import pytest
from imgcore._codecs import for_image, installed_codecs, select_codecs
from imgcore._codecs.pillow import PILLOW
from imgcore._compression.pool import Compressor
from imgcore._plugins import create_plugin_manager
from imgcore.config import Config, ConfigError
from imgcore.contracts import Codec, CompressOptions
from imgcore.errors import ImageError, UnsupportedImageError
from support.codecs import BROKEN, CRASH, ECHO, EchoPlugin

pytestmark = pytest.mark.anyio

JPEG = b"\xff\xd8\xff\xe0 not really a jpeg"


def test_pillow_is_a_built_in_codec_registered_through_the_hook() -> None:
    pm = create_plugin_manager(load_entrypoints=False)
    [pillow] = installed_codecs(pm)
    assert pillow.plugin == "pillow" and pillow.spec is PILLOW
    assert isinstance(PILLOW.factory(), Codec)


def test_an_empty_setting_picks_the_highest_rank() -> None:
    pm = create_plugin_manager(load_entrypoints=False, extra=[EchoPlugin()])
    assert [spec.name for spec in select_codecs(pm, "")] == ["echo", "pillow"]


def test_the_setting_picks_a_codec_by_name_and_keeps_the_others_behind() -> None:
    pm = create_plugin_manager(load_entrypoints=False, extra=[EchoPlugin()])
    assert [spec.name for spec in select_codecs(pm, "pillow")] == ["pillow", "echo"]


def test_a_name_no_plugin_contributes_is_a_config_error() -> None:
    pm = create_plugin_manager(load_entrypoints=False)
    with pytest.raises(ConfigError, match="IMGCORE_CODEC='gpu' names no installed codec"):
        select_codecs(pm, "gpu")


def test_two_codecs_of_one_name_are_a_config_error() -> None:
    pm = create_plugin_manager(load_entrypoints=False, extra=[EchoPlugin(), EchoPlugin()])
    with pytest.raises(ConfigError, match="codec 'echo' comes from both"):
        installed_codecs(pm)


def test_no_codec_at_all_is_a_config_error() -> None:
    pm = create_plugin_manager(
        environ={"IMGCORE_DISABLE_PLUGINS": "pillow"}, load_entrypoints=False
    )
    with pytest.raises(ConfigError, match="no codec"):
        select_codecs(pm)


def test_the_codec_setting_is_read_from_the_environment() -> None:
    assert Config.from_env({"IMGCORE_CODEC": "vips"}).codec == "vips"
    assert Config.from_env({}).codec == ""


def test_quality_mode_visual_is_the_default_and_exact_can_be_chosen() -> None:
    assert Config.from_env({}).compress_options().quality_mode == "visual"
    exact = Config.from_env({"IMGCORE_QUALITY_MODE": "exact"})
    assert exact.compress_options().quality_mode == "exact"


def test_an_unknown_quality_mode_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="IMGCORE_QUALITY_MODE"):
        Config.from_env({"IMGCORE_QUALITY_MODE": "pretty"})


@pytest.mark.parametrize(
    ("input_format", "output", "expected"),
    [("JPEG", "JPEG", "echo"), ("BMP", "JPEG", "pillow"), ("PNG", "WEBP", "pillow")],
)
def test_an_image_the_chosen_codec_cannot_handle_goes_to_the_next(
    input_format: str, output: str, expected: str
) -> None:
    codecs = (ECHO, PILLOW)
    assert codecs[for_image(codecs, input_format, output)].name == expected


def test_a_body_no_codec_handles_goes_to_the_chosen_one_which_refuses_it() -> None:
    assert for_image((ECHO, PILLOW), None, "JPEG") == 0


@pytest.mark.parametrize("mode", ["process", "thread"])
async def test_the_pool_compresses_with_the_selected_codec(mode: str) -> None:
    compressor = Compressor(CompressOptions(), workers=1, mode=mode, codecs=(ECHO, PILLOW))
    try:
        result = await compressor(JPEG)
    finally:
        compressor.close()
    pid, _, body = result.data.partition(b":")
    assert body == JPEG and result.input_format == "ECHO"
    assert (int(pid) == os.getpid()) == (mode == "thread")


async def test_the_pool_hands_other_formats_to_the_next_codec(corpus_dir: Path) -> None:
    gif = (corpus_dir / "edge" / "palette.gif").read_bytes()
    compressor = Compressor(CompressOptions(), workers=1, mode="thread", codecs=(ECHO, PILLOW))
    try:
        result = await compressor(gif)
    finally:
        compressor.close()
    assert result.input_format == "GIF" and result.data.startswith(b"\xff\xd8")


async def test_a_codec_error_reaches_the_caller_typed() -> None:
    compressor = Compressor(CompressOptions(), workers=1, mode="process", codecs=(ECHO,))
    try:
        with pytest.raises(UnsupportedImageError, match="empty body"):
            await compressor(b"")
    finally:
        compressor.close()


@pytest.mark.slow
async def test_a_codec_that_segfaults_kills_only_its_worker_and_the_pool_recovers() -> None:
    compressor = Compressor(CompressOptions(), workers=1, mode="process", codecs=(ECHO, PILLOW))
    try:
        first = await compressor(JPEG)
        with pytest.raises(ImageError) as caught:
            await compressor(CRASH)
        assert caught.value.reason == "worker_crashed"
        with anyio.fail_after(30):
            again = await compressor(JPEG)  # a new pool, a new worker
        assert again.data.partition(b":")[0] != first.data.partition(b":")[0]
        assert again.data.endswith(JPEG)
    finally:
        compressor.close()


def test_imgcore_plugins_lists_the_codecs_and_marks_the_one_in_use() -> None:
    env = {**os.environ, "IMGCORE_CODEC": "pillow"}
    done = subprocess.run(
        [sys.executable, "-m", "imgcore.cli", "plugins"],
        capture_output=True,
        text=True,
        env=env,
        check=True,
    )
    lines = done.stdout.splitlines()
    assert "pillow builtin: imgcore_codecs" in lines
    assert (
        "* pillow (plugin pillow) reads AVIF BMP GIF JPEG PNG TIFF WEBP, writes AVIF JPEG WEBP"
        in lines
    )


async def test_a_codec_that_cannot_be_built_fails_images_with_an_image_error() -> None:
    compressor = Compressor(CompressOptions(), workers=1, mode="process", codecs=(BROKEN,))
    try:
        with pytest.raises(ImageError, match="codec 'broken' could not be built: libecho"):
            await compressor(JPEG)
    finally:
        compressor.close()
