"""Variants: one output of an image (a box, a fit, a format) and the geometry every codec
shares, so that two codecs write the same sizes to the pixel. :mod:`imgcore.contracts`
re-exports these."""

from __future__ import annotations

import functools
import math
import re
from typing import Annotated, Final, Literal

import msgspec

__all__ = [
    "Fit",
    "Variant",
    "VariantPlan",
    "colour_rgb",
    "decode_size",
    "plan_variant",
    "scale_box",
    "variant_key_suffix",
]

Fit = Literal["contain", "cover", "pad"]

# Names become part of storage keys and CSV headers: short, lower case, no separators.
_NAME: Final = r"^[a-z0-9][a-z0-9_]{0,31}$"


_HEX_COLOUR: Final = re.compile(r"#([0-9a-fA-F]{3}|[0-9a-fA-F]{6})")


@functools.lru_cache(maxsize=64)
def colour_rgb(text: str) -> tuple[int, int, int]:
    """``text``, any colour string Pillow reads, as (r, g, b); raises :class:`ValueError`.

    ``#rgb`` and ``#rrggbb`` are read here, names and functions by Pillow: options and
    variants are checked again wherever they are unpickled, and Pillow's colour module loads
    all of Pillow, which a compression worker of another codec does not otherwise hold.
    """
    match = _HEX_COLOUR.fullmatch(text)
    if match is not None:
        digits = match.group(1)
        if len(digits) == 3:
            digits = "".join(digit * 2 for digit in digits)
        return int(digits[0:2], 16), int(digits[2:4], 16), int(digits[4:6], 16)
    from PIL import ImageColor

    r, g, b = ImageColor.getrgb(text)[:3]
    return r, g, b


class Variant(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """One output of an image: a box, how the image fits it, and how it is encoded."""

    name: Annotated[str, msgspec.Meta(pattern=_NAME)]
    """Unique within its preset: ``a-z``, ``0-9`` and ``_``, at most 32 characters."""
    fit: Fit = "contain"
    """``contain``: within the box, never upscaled; ``cover``: cropped (centred) to the box's
    aspect ratio, then within the box; ``pad``: within the box, then centred on a canvas of
    exactly the box's size in :attr:`background`."""
    width: Annotated[int, msgspec.Meta(ge=1, le=16_383)] | None = None
    """The box's width; ``None``: unbounded (``contain`` only)."""
    height: Annotated[int, msgspec.Meta(ge=1, le=16_383)] | None = None
    """The box's height; ``None``: unbounded (``contain`` only)."""
    format: Literal["JPEG", "WEBP", "AVIF"] = "JPEG"
    """Output format."""
    quality: Annotated[int, msgspec.Meta(ge=1, le=95)] = 50
    """Encoder quality, 1..95 (``IMGCORE_QUALITY_MODE`` says what it means)."""
    trim: bool = False
    """Remove a uniform border (the colour of the top-left pixel, a transparent margin
    included) before fitting."""
    background: str = "#ffffff"
    """The colour transparency is flattened on and ``pad`` fills with."""

    def __post_init__(self) -> None:
        if self.fit != "contain" and (self.width is None or self.height is None):
            raise ValueError(f"variant {self.name!r}: fit {self.fit!r} needs width and height")
        try:
            colour_rgb(self.background)
        except ValueError:
            raise ValueError(
                f"variant {self.name!r}: background is not a colour: {self.background!r}"
            ) from None

    def background_rgb(self) -> tuple[int, int, int]:
        """:attr:`background` as an (r, g, b) triple."""
        return colour_rgb(self.background)


class VariantPlan(msgspec.Struct, frozen=True, kw_only=True):
    """How a variant is cut from an upright (and trimmed) source: crop ``crop`` (left, top,
    right, bottom) of it, resize that to ``size``, place it at ``offset`` on a ``canvas``."""

    crop: tuple[int, int, int, int]
    size: tuple[int, int]
    canvas: tuple[int, int]
    offset: tuple[int, int]


def _contain(size: tuple[int, int], width: int | None, height: int | None) -> tuple[int, int]:
    w, h = size
    scale = min(1.0, width / w if width else 1.0, height / h if height else 1.0)
    if scale >= 1.0:
        return size
    return max(1, round(w * scale)), max(1, round(h * scale))


def plan_variant(source: tuple[int, int], variant: Variant) -> VariantPlan:
    """The crop, size and canvas of ``variant`` for an upright source of ``source`` pixels
    (after trimming); never upscales."""
    w, h = source
    crop = (0, 0, w, h)
    if variant.fit == "cover":
        assert variant.width is not None
        assert variant.height is not None
        # The largest centred region of the box's aspect ratio.
        ratio = variant.width / variant.height
        cw, ch = (w, max(1, round(w / ratio))) if w / h < ratio else (max(1, round(h * ratio)), h)
        left, top = (w - cw) // 2, (h - ch) // 2
        crop = (left, top, left + cw, top + ch)
    region = (crop[2] - crop[0], crop[3] - crop[1])
    size = _contain(region, variant.width, variant.height)
    if variant.fit == "pad":
        assert variant.width is not None
        assert variant.height is not None
        canvas = (variant.width, variant.height)
        offset = ((canvas[0] - size[0]) // 2, (canvas[1] - size[1]) // 2)
        return VariantPlan(crop=crop, size=size, canvas=canvas, offset=offset)
    return VariantPlan(crop=crop, size=size, canvas=size, offset=(0, 0))


def decode_size(source: tuple[int, int], variants: tuple[Variant, ...]) -> tuple[int, int]:
    """The smallest upright size a decoder may scale ``source`` to and still serve every
    variant at full detail (``source`` itself when one of them needs it, or trims: a trimmed
    region's scale is unknown before decoding)."""
    if any(v.trim for v in variants):
        return source
    w, h = source
    scale = 0.0
    for variant in variants:
        plan = plan_variant(source, variant)
        region = plan.crop[2] - plan.crop[0], plan.crop[3] - plan.crop[1]
        scale = max(scale, plan.size[0] / region[0], plan.size[1] / region[1])
    if scale >= 1.0:
        return source
    return min(w, math.ceil(w * scale)), min(h, math.ceil(h * scale))


def variant_key_suffix(index: int, variant: Variant, extension: str) -> str:
    """The end of a variant's storage key: the first variant keeps an image's one fixed key
    (``<image>.jpg``, as before presets), each further one adds its name
    (``<image>-thumb.jpg``)."""
    return extension if index == 0 else f"-{variant.name}{extension}"


def scale_box(
    box: tuple[int, int, int, int], full: tuple[int, int], decoded: tuple[int, int]
) -> tuple[int, int, int, int]:
    """``box``, planned on the ``full`` size, in the coordinates of an image decoded at
    ``decoded`` (a JPEG decoded at 1/2, 1/4 or 1/8 scale)."""
    if full == decoded:
        return box
    sx, sy = decoded[0] / full[0], decoded[1] / full[1]
    left, top = round(box[0] * sx), round(box[1] * sy)
    right = max(left + 1, min(decoded[0], round(box[2] * sx)))
    bottom = max(top + 1, min(decoded[1], round(box[3] * sy)))
    return left, top, right, bottom
