"""The libvips codec: imgcore's image rules on pyvips, streaming and shrinking on load.

libvips decodes lazily: the header is read first (dimensions, orientation, profile), so a
decompression bomb is refused before any pixel is decoded; pixels then stream through the
pipeline in strips (``access="sequential"``) instead of being decoded whole into memory,
and a downscale lets the decoder skip work (``thumbnail_buffer``: JPEG decodes at 1/2, 1/4
or 1/8 scale, WebP and AVIF at the size needed).
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from typing import Any, Final

import msgspec
import pyvips
from imgcore.plugin import (
    CompressedImage,
    CompressOptions,
    CorruptImageError,
    DecompressionBombError,
    ImageError,
    UnsupportedImageError,
    Variant,
    compressed_image,
    decode_size,
    encoder_setting,
    fit_size,
    jpeg_has_nothing_to_strip,
    plan_variant,
    png_metadata_bomb,
    scale_box,
    sniff_format,
)

from imgcore_vips.formats import FORMATS, LOADERS

__all__ = ["VipsCodec"]


# The largest side each encoder writes; checked before encoding, so that any libvips error
# afterwards means a broken input.
_MAX_SIDE: Final = {"JPEG": 65_535, "WEBP": 16_383, "AVIF": 65_536}
_ROTATED: Final = frozenset({5, 6, 7, 8})
# mozjpeg (the libjpeg in pyvips-binary) with libjpeg-turbo's behaviour: the standard
# (Annex K) tables scaled as libjpeg scales them, no trellis quantisation, no deringing, no
# scan optimisation. At a given quality the quantisation tables then equal Pillow's.
_EXACT_JPEG: Final[dict[str, Any]] = {
    "quant_table": 0,
    "trellis_quant": False,
    "overshoot_deringing": False,
    "optimize_scans": False,
    "subsample_mode": "auto",  # 4:2:0 below quality 90, as libjpeg and Pillow
}
# AVIF at libaom speed 8, as the Pillow codec writes it (libvips's effort is 9 - speed).
_AVIF: Final[dict[str, Any]] = {"compression": "av1", "effort": 1}
# Visual quality: the setting at which each encoder gives libjpeg's look at a quality
# (benchmarks/bench_quality.py; docs/codecs.md has the table). JPEG keeps libjpeg-turbo's
# behaviour, the look itself: mozjpeg's table 3 with optimised Huffman tables saves 3.4 % of
# the bytes at quality 50 but halved the end-to-end throughput (docs/performance.md).
VISUAL_CALIBRATION: Final[dict[str, dict[int, int]]] = {
    "JPEG": {50: 50},
    "WEBP": {30: 42, 50: 72, 80: 88},
    "AVIF": {30: 39, 50: 50, 80: 68},
}


class VipsCodec:
    """A :class:`imgcore.plugin.Codec` on libvips; built once per compression worker."""

    def __init__(self) -> None:
        # Each worker compresses one image at a time on one core: libvips's own threads
        # would only compete with the other workers (VIPS_CONCURRENCY still wins).
        if "VIPS_CONCURRENCY" not in os.environ:
            pyvips.concurrency_set(1)
        # Every image is new: the operation cache would only hold memory.
        pyvips.cache_set_max(0)
        # Loaders libvips marks untrusted (ImageMagick, PDF, MATLAB…) never run.
        pyvips.block_untrusted_set(True)

    def compress(self, data: bytes, options: CompressOptions) -> CompressedImage:
        """``data`` decoded and encoded as ``options`` say, by imgcore's rules."""
        source_format = self._check(data)
        try:
            return _compress(data, source_format, options)
        except pyvips.Error as exc:
            raise CorruptImageError(f"cannot decode {source_format}: {_first_line(exc)}") from exc

    def variants(
        self, data: bytes, variants: Sequence[Variant], options: CompressOptions
    ) -> list[CompressedImage]:
        """``data`` decoded once (shrunk on load where every variant allows) and encoded as
        each of ``variants``, by imgcore's rules."""
        source_format = self._check(data)
        try:
            return _variants(data, source_format, tuple(variants), options)
        except pyvips.Error as exc:
            raise CorruptImageError(f"cannot decode {source_format}: {_first_line(exc)}") from exc

    def _check(self, data: bytes) -> str:
        source_format = sniff_format(data)
        if source_format not in FORMATS:
            raise UnsupportedImageError(
                f"not an image of a format this codec decodes ({', '.join(sorted(FORMATS))})"
            )
        # Compressed PNG metadata under the limits Pillow enforces, so that both codecs
        # refuse the same bodies with the same reason (libvips has no such limit to set).
        if source_format == "PNG" and png_metadata_bomb(data):
            raise DecompressionBombError("compressed metadata too large")
        return source_format


def _header(data: bytes, source_format: str, options: CompressOptions) -> pyvips.Image:
    head = pyvips.Image.new_from_buffer(data, "", access="sequential", fail_on="error")
    loader = str(head.get("vips-loader"))
    if not loader.startswith(LOADERS[source_format]):
        raise UnsupportedImageError(f"libvips reads this {source_format} body as {loader}")
    width, height = head.width, head.height
    # Only the header has been read: no pixel memory allocated yet.
    if width * height > options.max_pixels:
        raise DecompressionBombError(
            f"{width}x{height} is {width * height} pixels, over the limit of {options.max_pixels}"
        )
    return head


def _variants(
    data: bytes, source_format: str, variants: tuple[Variant, ...], options: CompressOptions
) -> list[CompressedImage]:
    head = _header(data, source_format, options)
    width, height = head.width, head.height
    rotated = _orientation(head) in _ROTATED
    full = (height, width) if rotated else (width, height)
    want = decode_size(full, variants)
    load: dict[str, Any] = {"fail_on": "error"}
    if source_format == "JPEG" and want != full:
        # The largest DCT shrink that still leaves at least the size the variants need
        # (libvips's thumbnail keeps a factor of two for its resize, so it is not used).
        fits = [
            s
            for s in (1, 2, 4, 8)
            if all(math.ceil(f / s) >= w for f, w in zip(full, want, strict=True))
        ]
        load["shrink"] = max(fits)
    image = pyvips.Image.new_from_buffer(data, "", access="sequential", **load)
    if image.interpretation == "cmyk":
        image = _cmyk_to_srgb(image, _icc_profile(head))
    stored = (want[1], want[0]) if rotated else want  # as decoded, before turning upright
    if (image.width, image.height) != stored:
        # Resized while it decodes, to the size every variant is cut from (its aspect
        # kept: each variant's box is planned on the source and scaled to this one).
        image = image.thumbnail_image(stored[0], height=stored[1], no_rotate=True)
    # The one decode, streamed into the one buffer every variant is cut from; turned upright
    # after, since rotating reads out of order (a random-access decode is a second buffer).
    image = image.copy_memory().autorot()
    converted: dict[tuple[str, bool], pyvips.Image] = {}
    results = []
    for variant in variants:
        jpeg = variant.format == "JPEG"
        key = (variant.background, jpeg)
        if key not in converted:
            mode = CompressOptions(background=variant.background, format=variant.format)
            converted[key] = _to_output_mode(image, mode)[0]
        out = _cut(converted[key], full, variant)
        encode = msgspec.structs.replace(
            options, format=variant.format, quality=variant.quality, max_width=None, max_height=None
        )
        if max(out.width, out.height) > _MAX_SIDE[variant.format]:
            raise ImageError(f"cannot encode {out.width}x{out.height} as {variant.format}")
        icc = _icc_profile(out)
        encoded = _encode(out, icc, encode)
        results.append(
            compressed_image(
                data,
                encoded,
                options=encode,
                source_format=source_format,
                source_size=(width, height),
                size=(out.width, out.height),
                keep_candidate=False,
            )
        )
    return results


# How far (0-255) a pixel may differ from the border colour and still be border, as Pillow's.
_TRIM_THRESHOLD: Final = 24


def _cut(base: pyvips.Image, full: tuple[int, int], variant: Variant) -> pyvips.Image:
    """``variant`` of the upright, converted ``base`` (decoded at ``full`` or below)."""
    box = (0, 0, base.width, base.height)
    if variant.trim:
        box = _trim_box(base)
        full = (box[2] - box[0], box[3] - box[1])  # trimming decodes at full size
    plan = plan_variant(full, variant)
    crop = scale_box(plan.crop, full, (box[2] - box[0], box[3] - box[1]))
    left, top = crop[0] + box[0], crop[1] + box[1]
    out = base.crop(left, top, crop[2] - crop[0], crop[3] - crop[1])
    if (out.width, out.height) != plan.size:
        out = out.thumbnail_image(plan.size[0], height=plan.size[1], size="force")
    if plan.canvas != plan.size:
        colour = list(variant.background_rgb())
        out = out.embed(
            plan.offset[0],
            plan.offset[1],
            plan.canvas[0],
            plan.canvas[1],
            extend="background",
            # Grey by the luma weights Pillow uses (ITU-R 601-2).
            background=colour
            if out.bands == 3
            else [round((colour[0] * 299 + colour[1] * 587 + colour[2] * 114) / 1000)],
        )
    return out


def _trim_box(image: pyvips.Image) -> tuple[int, int, int, int]:
    """The box inside the uniform border (the top-left pixel's colour, within the threshold),
    found as the Pillow codec finds it, so that both trim the same pixels."""
    border = (image - image(0, 0)).abs() > _TRIM_THRESHOLD
    if border.bands > 1:
        border = border.bandor()
    columns, rows = border.project()
    xs = [i for i, v in enumerate(columns.tolist()[0]) if v]
    ys = [i for i, row in enumerate(rows.tolist()) if row[0]]
    if not xs or not ys:
        return 0, 0, image.width, image.height
    return xs[0], ys[0], xs[-1] + 1, ys[-1] + 1


def _compress(data: bytes, source_format: str, options: CompressOptions) -> CompressedImage:
    head = _header(data, source_format, options)
    width, height = head.width, head.height
    orientation = _orientation(head)
    oriented = (height, width) if orientation in _ROTATED else (width, height)
    target = fit_size(oriented, options.max_width, options.max_height)
    if max(target) > _MAX_SIDE[options.format]:
        raise ImageError(f"cannot encode {target[0]}x{target[1]} as {options.format}")
    keep_candidate = (
        options.keep_original
        and options.format == "JPEG"
        and source_format == "JPEG"
        and target == oriented
        and orientation == 1
        and head.interpretation in ("srgb", "b-w")
        and head.bands in (1, 3)
        and jpeg_has_nothing_to_strip(data)
    )
    if head.interpretation == "cmyk":
        # thumbnail would convert CMYK through libvips's own profile: convert by our rule
        # first (CMYK is rare enough to be decoded whole, rotated in memory).
        image = pyvips.Image.new_from_buffer(data, "", fail_on="error").autorot()
        image = _cmyk_to_srgb(image, _icc_profile(head))
        if target != oriented:
            image = image.thumbnail_image(target[0], height=target[1], size="force")
    elif target != oriented:
        # Shrink-on-load, sequential, rotated upright; "force": exactly imgcore's size.
        # The loader's fail_on goes in option_string: thumbnail's own fail_on does not stop
        # a truncated JPEG decoded at a reduced scale.
        image = pyvips.Image.thumbnail_buffer(
            data, target[0], height=target[1], size="force", option_string="fail_on=error"
        )
    elif orientation != 1:
        # Rotating by 90° reads the image out of order: decode it whole, as Pillow does.
        image = pyvips.Image.new_from_buffer(data, "", fail_on="error").autorot()
    else:
        image = head
    image, icc = _to_output_mode(image, options)
    encoded = _encode(image, icc, options)
    return compressed_image(
        data,
        encoded,
        options=options,
        source_format=source_format,
        source_size=(width, height),
        size=(image.width, image.height),
        keep_candidate=keep_candidate,
    )


def _orientation(image: pyvips.Image) -> int:
    if not image.get_typeof("orientation"):
        return 1
    value = image.get("orientation")
    return value if isinstance(value, int) and 1 <= value <= 8 else 1


def _icc_profile(image: pyvips.Image) -> bytes | None:
    if not image.get_typeof("icc-profile-data"):
        return None
    icc = image.get("icc-profile-data")
    # A profile header is 128 bytes with the "acsp" signature; anything else is junk.
    if isinstance(icc, bytes) and len(icc) >= 128 and icc[36:40] == b"acsp":
        return icc
    return None


def _to_output_mode(
    image: pyvips.Image, options: CompressOptions
) -> tuple[pyvips.Image, bytes | None]:
    """``image`` as 8-bit grey or sRGB (sRGB only for WebP/AVIF), and the ICC profile that
    still describes it."""
    icc = _icc_profile(image)
    if image.interpretation == "cmyk":
        image = _cmyk_to_srgb(image, icc)
        icc = None
    grey = image.bands in (1, 2) and image.interpretation in ("b-w", "grey16")
    if image.format != "uchar" or image.interpretation not in ("srgb", "b-w"):
        # 16-bit scaled (not clipped) to 8, Lab and other spaces to sRGB.
        image = image.colourspace("b-w" if grey else "srgb")
    if image.hasalpha():
        if image.bands == 2:
            image = image.colourspace("srgb")
        image = image.flatten(background=list(options.background_rgb())).cast("uchar")
    if image.bands == 1 and options.format != "JPEG":
        image = image.colourspace("srgb")
    wanted = b"GRAY" if image.bands == 1 else b"RGB "
    if icc is not None and icc[16:20] != wanted:
        icc = None
    image = image.copy()
    if image.get_typeof("icc-profile-data"):
        image.remove("icc-profile-data")
    if icc is not None:
        image.set_type(pyvips.GValue.blob_type, "icc-profile-data", icc)
    return image, icc


def _cmyk_to_srgb(image: pyvips.Image, icc: bytes | None) -> pyvips.Image:
    """Through the embedded CMYK profile; without one (or a broken one) by the plain formula
    Pillow uses, ``R = (255 - C) * (255 - K) / 255``, so that both codecs agree. The result
    is untagged sRGB."""
    if icc is not None and icc[16:20] == b"CMYK":
        try:
            return image.icc_transform("srgb", embedded=True).cast("uchar")
        except pyvips.Error:
            pass  # a broken profile: the plain formula below
    cmy = 255 - image[0:3]
    k = 255 - image[3]
    rgb = (cmy * k / 255).rint().cast("uchar")
    return rgb.copy(interpretation="srgb")


def _encode(image: pyvips.Image, icc: bytes | None, options: CompressOptions) -> bytes:
    keep = pyvips.enums.ForeignKeep.ICC if icc is not None else pyvips.enums.ForeignKeep.NONE
    exact = options.quality_mode == "exact"
    quality = (
        options.quality
        if exact
        else encoder_setting(VISUAL_CALIBRATION[options.format], options.quality)
    )
    buffer: bytes
    if options.format == "JPEG":
        buffer = image.jpegsave_buffer(
            Q=quality,
            keep=keep,
            interlace=options.progressive,
            optimize_coding=options.optimize,
            **_EXACT_JPEG,
        )
    elif options.format == "WEBP":
        buffer = image.webpsave_buffer(Q=quality, keep=keep)
    else:
        buffer = image.heifsave_buffer(Q=quality, keep=keep, **_AVIF)
    return buffer


def _first_line(exc: pyvips.Error) -> str:
    detail = str(getattr(exc, "detail", "") or exc).strip()
    return detail.splitlines()[-1] if detail else str(exc)
