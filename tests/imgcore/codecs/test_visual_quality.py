"""Visual quality: every codec and format gives libjpeg's look at a quality (SSIMULACRA2)."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from imgcore._codecs import installed_codecs
from imgcore._codecs.pillow import PILLOW
from imgcore._plugins import create_plugin_manager
from imgcore.contracts import CodecSpec, CompressOptions, OutputFormat, encoder_setting
from ssimulacra2 import compute_ssimulacra2

CODECS = [c.spec for c in installed_codecs(create_plugin_manager(environ={}))]
PHOTOS = ["img/s03_coffee.jpg", "img/s03_astronaut.jpg"]
# Every calibrated quality on one photograph, quality 50 (the default) on both.
CASES = [(PHOTOS[0], 30), (PHOTOS[0], 50), (PHOTOS[0], 80), (PHOTOS[1], 50)]
TOLERANCE = 1.0  # the rule: no image more than a point below libjpeg's look


def score(source: bytes, output: bytes) -> float:
    return float(compute_ssimulacra2(io.BytesIO(source), io.BytesIO(output)))


@pytest.mark.parametrize("spec", CODECS, ids=[spec.name for spec in CODECS])
@pytest.mark.parametrize("output", ["JPEG", "WEBP", "AVIF"])
@pytest.mark.parametrize(("name", "quality"), CASES)
def test_visual_quality_looks_at_least_as_good_as_libjpeg_at_that_quality(
    spec: CodecSpec, output: OutputFormat, name: str, quality: int, corpus_dir: Path
) -> None:
    source = (corpus_dir / name).read_bytes()
    reference = PILLOW.factory().compress(
        source, CompressOptions(quality=quality, quality_mode="exact", keep_original=False)
    )
    ours = spec.factory().compress(
        source, CompressOptions(quality=quality, format=output, keep_original=False)
    )
    assert ours.format == output
    assert score(source, ours.data) >= score(source, reference.data) - TOLERANCE


def test_libjpegs_own_jpeg_is_the_same_in_both_modes(corpus_dir: Path) -> None:
    source = (corpus_dir / PHOTOS[0]).read_bytes()
    codec = PILLOW.factory()
    visual = codec.compress(source, CompressOptions(keep_original=False))
    exact = codec.compress(source, CompressOptions(quality_mode="exact", keep_original=False))
    assert visual.data == exact.data


def test_a_setting_between_calibration_points_is_interpolated() -> None:
    assert encoder_setting({30: 40, 70: 60}, 50) == 50
    assert encoder_setting({30: 40, 70: 60}, 30) == 40


def test_beyond_the_calibration_the_offset_of_the_outermost_point_holds() -> None:
    assert encoder_setting({50: 55}, 20) == 25
    assert encoder_setting({30: 40, 70: 60}, 80) == 70


def test_the_setting_stays_within_the_encoders_range() -> None:
    assert encoder_setting({50: 60}, 95) == 100
    assert encoder_setting({50: 40}, 5) == 1


def test_an_empty_calibration_is_refused() -> None:
    with pytest.raises(ValueError, match="at least one point"):
        encoder_setting({}, 50)
