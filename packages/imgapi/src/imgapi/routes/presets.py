"""``GET /presets``: the presets an upload may choose, with their variants."""

from __future__ import annotations

import msgspec
from imgcore.engine import Engine
from imgcore.presets import Preset
from litestar import get
from litestar.di import NamedDependency

from imgapi.auth import SECURITY, require_api_key
from imgapi.problems import problem_responses

__all__ = ["PresetsOut", "presets"]


class PresetsOut(msgspec.Struct, frozen=True, kw_only=True):
    """Every preset by name, in the order the server offers them (``default`` first)."""

    presets: list[Preset]


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
    return PresetsOut(presets=list(engine.presets.values()))
