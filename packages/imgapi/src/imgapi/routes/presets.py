"""``GET /presets``: the presets an upload may choose, with their variants."""

from __future__ import annotations

from typing import Literal

import msgspec
from imgcore.engine import Engine
from imgcore.presets import Preset
from litestar import get
from litestar.di import NamedDependency

from imgapi.auth import SECURITY, require_api_key
from imgapi.problems import problem_responses

__all__ = ["PresetOut", "PresetsOut", "VariantSpecOut", "presets"]


class VariantSpecOut(msgspec.Struct, frozen=True, kw_only=True):
    """One variant of a preset (see the Presets page of the docs)."""

    name: str
    fit: Literal["contain", "cover", "pad"]
    width: int | None
    height: int | None
    format: Literal["JPEG", "WEBP", "AVIF"]
    quality: int
    trim: bool
    background: str


class PresetOut(msgspec.Struct, frozen=True, kw_only=True):
    """A preset: its name and its variants, in order (the first is each image's output_url)."""

    name: str
    variants: list[VariantSpecOut]


class PresetsOut(msgspec.Struct, frozen=True, kw_only=True):
    """Every preset, in the order the server offers them (``default`` first)."""

    presets: list[PresetOut]


def _preset(preset: Preset) -> PresetOut:
    return PresetOut(
        name=preset.name,
        variants=[msgspec.convert(msgspec.to_builtins(v), VariantSpecOut) for v in preset.variants],
    )


@get(
    ["/presets", "/api/presets"],
    guards=[require_api_key],
    security=SECURITY,
    responses=problem_responses(401),
    summary="The presets an upload may choose",
    description=(
        "Each preset is a named, ordered list of variants (name, fit, width, height, format, "
        "quality, trim, background); `POST /upload` takes one by name in `preset`. The first "
        "variant is each image's `output_url`."
    ),
    tags=["requests"],
)
async def presets(engine: NamedDependency[Engine]) -> PresetsOut:
    """List the presets."""
    return PresetsOut(presets=[_preset(preset) for preset in engine.presets.values()])
