"""Presets: named, ordered lists of variants, each image of a request written as each of them.

Two are built in, ``default`` (the single output the settings describe) and ``catalog``;
more come from the TOML file ``IMGCORE_PRESETS_FILE`` names, checked when the engine starts.
A request records the whole definition of the preset it chose, so a file changed later does
not change what a stored request writes.
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Final
from uuid import UUID

import msgspec

from imgcore._variants import Variant, variant_key_suffix
from imgcore.config import ConfigError
from imgcore.contracts import OUTPUT_FORMATS, image_key
from imgcore.errors import UnknownPresetError

if TYPE_CHECKING:
    from imgcore.config import Config

__all__ = [
    "BUILTIN_PRESET_NAMES",
    "CATALOG",
    "Preset",
    "Variant",
    "default_preset",
    "load_presets",
    "parse_presets",
    "recorded_preset",
    "resolve_preset",
]

MAX_VARIANTS: Final = 16
"""Most variants in one preset (each costs an encode and an object per image)."""


class Preset(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """A named, ordered list of variants; the first is the image's ``output_url``."""

    name: Annotated[str, msgspec.Meta(pattern=r"^[a-z0-9][a-z0-9_-]{0,63}$")]
    variants: Annotated[tuple[Variant, ...], msgspec.Meta(min_length=1, max_length=MAX_VARIANTS)]

    def __post_init__(self) -> None:
        names = [variant.name for variant in self.variants]
        twice = sorted({name for name in names if names.count(name) > 1})
        if twice:
            raise ValueError(f"preset {self.name!r}: variant names used twice: {', '.join(twice)}")

    @property
    def formats(self) -> frozenset[str]:
        """The output formats its variants write."""
        return frozenset(variant.format for variant in self.variants)

    def key(self, request_id: UUID, image_id: int, index: int) -> str:
        """Where variant ``index`` of an image lives: the first at the image's one fixed key
        (``requests/<request>/<image>.jpg``, as before presets), each further one beside it
        with its name (``…/<image>-thumb.jpg``). Fixed by the recorded preset, so an attempt
        after a crash replaces what an earlier one wrote, and every key an attempt may have
        written is known without recording it first."""
        variant = self.variants[index]
        extension = OUTPUT_FORMATS[variant.format][1]
        return image_key(request_id, image_id, variant_key_suffix(index, variant, extension))

    def alternatives(self, index: int) -> list[int]:
        """Indices of the variants with variant ``index``'s geometry (fit, box, trim,
        background), itself included: the same picture in other formats."""
        v = self.variants[index]
        shape = (v.fit, v.width, v.height, v.trim, v.background)
        return [
            i
            for i, o in enumerate(self.variants)
            if (o.fit, o.width, o.height, o.trim, o.background) == shape
        ]

    def index_of_key(self, request_id: UUID, image_id: int, key: str) -> int | None:
        """Which variant of the image ``key`` holds, if any."""
        keys = self.keys(request_id, image_id)
        return keys.index(key) if key in keys else None

    def keys(self, request_id: UUID, image_id: int) -> list[str]:
        """Every key :meth:`key` gives an image."""
        return [self.key(request_id, image_id, i) for i in range(len(self.variants))]


CATALOG: Final = Preset(
    name="catalog",
    variants=(
        Variant(name="large", fit="contain", width=2048, height=2048, format="JPEG"),
        Variant(name="medium", fit="contain", width=1000, height=1000, format="WEBP"),
        Variant(name="thumb", fit="pad", width=160, height=160, format="JPEG"),
    ),
)
"""A shop's set: a zoom image, a product-page WebP and a square listing tile on white."""

BUILTIN_PRESET_NAMES: Final = ("default", "catalog")


def default_preset(config: Config) -> Preset:
    """``default``: the one output the settings describe (``IMGCORE_OUTPUT_FORMAT``,
    ``IMGCORE_QUALITY``, ``IMGCORE_MAX_WIDTH`` / ``IMGCORE_MAX_HEIGHT``), as before presets."""
    full = Variant(
        name="full",
        width=config.max_width or None,
        height=config.max_height or None,
        format=config.output_format,
        quality=config.quality,
        background=config.background,
    )
    return Preset(name="default", variants=(full,))


class _PresetBody(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    variants: list[dict[str, Any]]


class _PresetsFile(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    presets: dict[str, _PresetBody] = {}


def parse_presets(text: str, *, source: str = "presets file") -> dict[str, Preset]:
    """The presets a TOML document defines (``[presets.<name>]`` with a ``variants`` array
    of tables). Raises :class:`ConfigError` naming the preset, variant and field at fault."""
    try:
        document = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{source}: not valid TOML: {exc}") from None
    try:
        body = msgspec.convert(document, _PresetsFile)
    except msgspec.ValidationError as exc:
        raise ConfigError(f"{source}: {exc}") from None
    presets: dict[str, Preset] = {}
    for name, preset in body.presets.items():
        if name in BUILTIN_PRESET_NAMES:
            raise ConfigError(f"{source}: preset {name!r} is built in; give yours another name")
        try:
            presets[name] = msgspec.convert({"name": name, "variants": preset.variants}, Preset)
        except (msgspec.ValidationError, ValueError) as exc:
            raise ConfigError(f"{source}: preset {name!r}: {_where(exc)}") from None
    return presets


def _where(exc: Exception) -> str:
    # msgspec says "at `$.variants[1].width`": a preset's author reads it as the variant.
    return str(exc).replace("`$.", "`")


def load_presets(config: Config, *, outputs: frozenset[str] | None = None) -> dict[str, Preset]:
    """Every preset the engine offers: ``default``, ``catalog``, then the file's, in its order.

    ``outputs``: the formats the installed codecs write; a variant in another format is a
    :class:`ConfigError`, as is a file that cannot be read or does not validate.
    """
    presets = {"default": default_preset(config), "catalog": CATALOG}
    if config.presets_file:
        path = Path(config.presets_file)
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError(f"IMGCORE_PRESETS_FILE={str(path)!r} cannot be read: {exc}") from None
        presets.update(parse_presets(text, source=str(path)))
    if outputs is not None:
        for preset in presets.values():
            for variant in preset.variants:
                if variant.format not in outputs:
                    raise ConfigError(
                        f"preset {preset.name!r}, variant {variant.name!r}: no installed codec "
                        f"writes {variant.format} (they write {', '.join(sorted(outputs))})"
                    )
    return presets


def recorded_preset(recorded: dict[str, Any] | None, config: Config) -> Preset:
    """The preset a request recorded; ``None`` (stored before presets): ``default`` as
    ``config`` describes it."""
    return default_preset(config) if recorded is None else msgspec.convert(recorded, Preset)


def resolve_preset(presets: dict[str, Preset], name: str | None) -> Preset:
    """The preset ``name`` names (``None``: ``default``); raises :class:`UnknownPresetError`."""
    preset = presets.get(name or "default")
    if preset is None:
        raise UnknownPresetError(str(name), list(presets))
    return preset
