"""The Pillow codec: bytes in, compressed image out, with every image-format rule.

:func:`compress` is a pure function of its arguments (no global state is read or
written), so it can run in threads (Pillow releases the GIL while decoding and
encoding) or in a process pool (arguments, results and errors all pickle).
"""

from __future__ import annotations

import io
from collections.abc import Callable, Sequence
from typing import Any, Final, TypeVar

from PIL import Image, ImageChops, ImageCms, ImageColor, JpegImagePlugin

from imgcore.contracts import (
    ALLOWED_FORMATS,
    CompressedImage,
    CompressOptions,
    OutputFormat,
    Variant,
    compressed_image,
    decode_size,
    encoder_setting,
    fit_size,
    jpeg_has_nothing_to_strip,
    plan_variant,
    scale_box,
    sniff_format,
)
from imgcore.errors import (
    CorruptImageError,
    DecompressionBombError,
    ImageError,
    InvalidOptionsError,
    UnsupportedImageError,
)

# The types and errors live in imgcore.contracts and imgcore.errors, shared by every codec;
# they are named here too, as this module's API always had them.
__all__ = [
    "ALLOWED_FORMATS",
    "CompressOptions",
    "CompressedImage",
    "CorruptImageError",
    "DecompressionBombError",
    "ImageError",
    "InvalidOptionsError",
    "OutputFormat",
    "UnsupportedImageError",
    "compress",
    "compress_variants",
    "make_thumbnail",
    "sniff_format",
]

# Speed 8: libavif's default (6) costs far more time for few bytes (docs/performance.md). One
# thread per encode because callers already run one compress() per core.
_AVIF_PARAMS: Final[dict[str, Any]] = {"speed": 8, "max_threads": 1}
# Visual quality: the setting at which each of Pillow's encoders gives libjpeg's look at a
# quality (benchmarks/bench_quality.py; docs/codecs.md has the table). libjpeg's JPEG is the
# look itself.
VISUAL_CALIBRATION: Final[dict[str, dict[int, int]]] = {
    "JPEG": {50: 50},
    "WEBP": {30: 42, 50: 72, 80: 88},
    "AVIF": {30: 39, 50: 50, 80: 68},
}
_ROTATED: Final = frozenset({5, 6, 7, 8})  # EXIF orientations that swap width and height
# EXIF orientation → the transposition that shows the image upright (as ImageOps.exif_transpose).
_TRANSPOSE: Final = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}
_ORIENTATION: Final = 0x0112
# How far (0-255, per channel) a pixel may differ from the border colour and still be border:
# JPEG noise round a white margin is not the product (about 10%, a usual fuzz for trimming).
TRIM_THRESHOLD: Final = 24
T = TypeVar("T")


def compress(data: bytes, options: CompressOptions | None = None) -> CompressedImage:
    """Decode ``data`` and encode it as ``options`` say (JPEG quality 50 by default).

    The EXIF orientation is applied, then all metadata (EXIF, GPS, XMP, comments) is
    dropped; the ICC profile is kept. Transparency is flattened on ``background``; any
    mode becomes 8-bit RGB or grey. Animated images keep their first frame. The
    resolution is kept unless ``max_width`` / ``max_height`` are set.

    With ``keep_original``, a JPEG source is returned byte for byte (``kept_original``)
    when the JPEG re-encode is larger and the source holds nothing to strip: only
    JFIF / ICC / Adobe segments, no trailing bytes, no resize, RGB or grey. Privacy wins
    over size: a source with EXIF or comments is always re-encoded.

    Raises :class:`UnsupportedImageError`, :class:`DecompressionBombError`,
    :class:`CorruptImageError`, or :class:`ImageError` when the encoder fails.
    """
    options = options or CompressOptions()
    return _decoded(
        data, lambda im, source_format: _compress_open(im, data, source_format, options)
    )


def compress_variants(
    data: bytes, variants: Sequence[Variant], options: CompressOptions | None = None
) -> list[CompressedImage]:
    """Decode ``data`` once and encode it as each of ``variants`` (see
    :meth:`imgcore.contracts.Codec.variants`), by the rules of :func:`compress`."""
    options = options or CompressOptions()
    return _decoded(
        data,
        lambda im, source_format: _variants_open(im, data, source_format, tuple(variants), options),
    )


def _decoded(data: bytes, work: Callable[[Image.Image, str], T]) -> T:
    """``work(opened image, its format)``, with every decoder failure as an image error."""
    source_format = sniff_format(data)
    if source_format is None:
        raise UnsupportedImageError(
            f"not an image of an allowed format ({', '.join(sorted(ALLOWED_FORMATS))})"
        )
    try:
        # formats=[...]: only the decoder the magic bytes name may run (never EPS, PSD…).
        with Image.open(io.BytesIO(data), formats=[source_format]) as im:
            return work(im, source_format)
    except (ImageError, MemoryError):
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise DecompressionBombError(f"image too large: {exc}") from exc
    # Pillow's decoders raise many types on hostile input (OSError, SyntaxError, ValueError,
    # struct.error, EOFError, IndexError…); every one of them means "broken image".
    except Exception as exc:
        if isinstance(exc, ValueError) and _is_png_text_bomb(exc):
            raise DecompressionBombError(f"compressed metadata too large: {exc}") from exc
        raise CorruptImageError(f"cannot decode {source_format}: {exc}") from exc


def make_thumbnail(data: bytes, size: int = 256, quality: int = 70) -> bytes:
    """A JPEG of ``data`` fitting in ``size`` x ``size`` (same safety rules as :func:`compress`)."""
    options = CompressOptions(quality=quality, max_width=size, max_height=size, keep_original=False)
    return compress(data, options).data


def _compress_open(
    im: Image.Image,
    data: bytes,
    source_format: str,
    options: CompressOptions,
) -> CompressedImage:
    width, height = im.size
    # Before load(): only the header has been read, no pixel memory allocated yet.
    if width * height > options.max_pixels:
        raise DecompressionBombError(
            f"{width}x{height} is {width * height} pixels, over the limit of {options.max_pixels}"
        )
    if isinstance(im, JpegImagePlugin.JpegImageFile) and (options.max_width or options.max_height):
        _draft(im, options)
    im.load()
    # Only now: PNG may keep its eXIf chunk after the pixel data.
    orientation = _orientation(im)
    oriented = (height, width) if orientation in _ROTATED else (width, height)
    target = fit_size(oriented, options.max_width, options.max_height)
    keep_candidate = (
        options.keep_original
        and options.format == "JPEG"
        and target == oriented
        and _nothing_to_strip(im, data, orientation)
    )
    icc = _icc_profile(im)
    if orientation != 1:
        # Like ImageOps.exif_transpose, without rewriting the EXIF block that is dropped anyway.
        im = im.transpose(_TRANSPOSE[orientation])
    out, icc = _to_output_mode(im, icc, options)
    if out.size != target:
        out = out.resize(target, Image.Resampling.LANCZOS, reducing_gap=2.0)
    quality = _quality(options.format, options.quality, options)
    encoded = _encode(out, icc, options.format, quality, _encoder_params(options))
    return compressed_image(
        data,
        encoded,
        options=options,
        source_format=source_format,
        source_size=(width, height),
        size=out.size,
        keep_candidate=keep_candidate,
    )


def _variants_open(
    im: Image.Image,
    data: bytes,
    source_format: str,
    variants: tuple[Variant, ...],
    options: CompressOptions,
) -> list[CompressedImage]:
    width, height = im.size
    if width * height > options.max_pixels:
        raise DecompressionBombError(
            f"{width}x{height} is {width * height} pixels, over the limit of {options.max_pixels}"
        )
    if isinstance(im, JpegImagePlugin.JpegImageFile):
        rotated = _orientation(im) in _ROTATED
        oriented = (height, width) if rotated else (width, height)
        want = decode_size(oriented, variants)
        if want != oriented:
            im.draft("RGB", (want[1], want[0]) if rotated else want)
    im.load()
    orientation = _orientation(im)
    full = (height, width) if orientation in _ROTATED else (width, height)
    icc = _icc_profile(im)
    if orientation != 1:
        im = im.transpose(_TRANSPOSE[orientation])
    # One conversion per background and output family (grey stays grey only in JPEG).
    converted: dict[tuple[str, bool], tuple[Image.Image, bytes | None]] = {}
    results = []
    for variant in variants:
        jpeg = variant.format == "JPEG"
        base, base_icc = converted.get((variant.background, jpeg)) or converted.setdefault(
            (variant.background, jpeg),
            _to_output_mode(
                im, icc, CompressOptions(background=variant.background, format=variant.format)
            ),
        )
        out = _cut(base, full, variant)
        encode = CompressOptions(
            format=variant.format, optimize=options.optimize, progressive=options.progressive
        )
        params = _encoder_params(encode)
        quality = _quality(variant.format, variant.quality, options)
        encoded = _encode(out, base_icc, variant.format, quality, params)
        results.append(
            compressed_image(
                data,
                encoded,
                options=encode,
                source_format=source_format,
                source_size=(width, height),
                size=out.size,
                keep_candidate=False,
            )
        )
    return results


def _cut(base: Image.Image, full: tuple[int, int], variant: Variant) -> Image.Image:
    """``variant`` of the upright, converted ``base`` (decoded at ``full`` or below)."""
    box = (0, 0, base.width, base.height)
    if variant.trim:
        box = trim_box(base)
        full = (box[2] - box[0], box[3] - box[1])  # trimming decodes at full size
    plan = plan_variant(full, variant)
    crop = scale_box(plan.crop, full, (box[2] - box[0], box[3] - box[1]))
    crop = (crop[0] + box[0], crop[1] + box[1], crop[2] + box[0], crop[3] + box[1])
    if plan.size == (crop[2] - crop[0], crop[3] - crop[1]):
        out = base.crop(crop) if crop != (0, 0, base.width, base.height) else base.copy()
    else:
        out = base.resize(plan.size, Image.Resampling.LANCZOS, box=crop, reducing_gap=2.0)
    if plan.canvas != plan.size:
        canvas = Image.new(out.mode, plan.canvas, ImageColor.getcolor(variant.background, out.mode))
        canvas.paste(out, plan.offset)
        out = canvas
    return out


def trim_box(im: Image.Image) -> tuple[int, int, int, int]:
    """The box inside the uniform border of ``im`` (the top-left pixel's colour, within
    :data:`TRIM_THRESHOLD`); the whole image when there is no border or nothing else."""
    corner = im.getpixel((0, 0))
    difference = ImageChops.difference(im, Image.new(im.mode, im.size, corner))
    if difference.mode != "L":
        bands = difference.split()
        difference = bands[0]
        for band in bands[1:]:
            difference = ImageChops.lighter(difference, band)
    box = difference.point(lambda v: 255 if v > TRIM_THRESHOLD else 0).getbbox()
    return box if box is not None else (0, 0, im.width, im.height)


def _draft(im: JpegImagePlugin.JpegImageFile, options: CompressOptions) -> None:
    """Have libjpeg decode at 1/2, 1/4 or 1/8 scale, still at least the target size."""
    orientation = _orientation(im)  # a JPEG's EXIF is in its header: nothing decoded yet
    width, height = im.size
    if orientation in _ROTATED:
        width, height = height, width
    target = fit_size((width, height), options.max_width, options.max_height)
    if orientation in _ROTATED:
        target = (target[1], target[0])
    if target != im.size:
        im.draft("RGB", target)


def _orientation(im: Image.Image) -> int:
    # A broken EXIF block should not cost the image: treat it as "no rotation".
    try:
        value = im.getexif().get(_ORIENTATION, 1)
    except Exception:
        return 1
    return value if isinstance(value, int) and 1 <= value <= 8 else 1


def _nothing_to_strip(im: Image.Image, data: bytes, orientation: int) -> bool:
    if not isinstance(im, JpegImagePlugin.JpegImageFile) or im.mode not in ("RGB", "L"):
        return False
    return orientation == 1 and jpeg_has_nothing_to_strip(data)


def _icc_profile(im: Image.Image) -> bytes | None:
    icc = im.info.get("icc_profile")
    # A profile header is 128 bytes with the "acsp" signature; anything else is junk.
    if isinstance(icc, bytes) and len(icc) >= 128 and icc[36:40] == b"acsp":
        return icc
    return None


def _icc_space(icc: bytes | None) -> bytes | None:
    return icc[16:20] if icc else None


def _to_output_mode(
    im: Image.Image, icc: bytes | None, options: CompressOptions
) -> tuple[Image.Image, bytes | None]:
    """``im`` as L or RGB (RGB only for WebP/AVIF), and the ICC profile that still fits it."""
    mode = im.mode
    out: Image.Image
    if mode.startswith("I;16") or mode in ("I", "F"):
        out = _to_8bit(im)
    elif im.has_transparency_data:
        out = _flatten(im, ImageColor.getrgb(options.background))
    elif mode == "CMYK":
        out, icc = _cmyk_to_rgb(im, icc)
    elif mode == "LAB":  # CIELab TIFF: a plain convert("RGB") would give wrong colours
        out = _to_srgb(im, ImageCms.ImageCmsProfile(ImageCms.createProfile("LAB")))
    elif mode in ("L", "RGB"):
        out = im
    elif mode == "1":
        out = im.convert("L")
    else:
        out = im.convert("RGB")
    if out.mode == "L" and options.format != "JPEG":
        out = out.convert("RGB")
    wanted = b"GRAY" if out.mode == "L" else b"RGB "
    return out, icc if _icc_space(icc) == wanted else None


def _to_8bit(im: Image.Image) -> Image.Image:
    """Deep grey (I;16, I, F) scaled to L rather than clipped at 255."""
    if im.mode.startswith("I;16"):
        # The format's full 0..65535 range maps to 0..255, whatever the values used.
        im = im.convert("I")
        scale, offset = 1 / 256, 0.0
    else:
        low, high = im.getextrema()
        assert isinstance(low, int | float)
        assert isinstance(high, int | float)
        if im.mode == "F" and low >= 0 and high <= 1:  # the usual float range
            scale, offset = 255.0, 0.0
        elif low >= 0 and high <= 255:
            scale, offset = 1.0, 0.0
        elif low >= 0 and high <= 65535:  # 16-bit data widened to I
            scale, offset = 1 / 256, 0.0
        else:  # an unknown range: stretch it
            scale = 255 / (high - low) if high > low else 0.0
            offset = -low * scale
    return im.point(lambda v: v * scale + offset).convert("L")


def _flatten(im: Image.Image, background: tuple[int, ...]) -> Image.Image:
    rgba = im if im.mode == "RGBA" else im.convert("RGBA")
    flat = Image.new("RGB", im.size, background[:3])
    flat.paste(rgba, mask=rgba)
    return flat


def _cmyk_to_rgb(im: Image.Image, icc: bytes | None) -> tuple[Image.Image, None]:
    # The embedded CMYK profile gives the right colours; the result is sRGB, which untagged
    # images are taken to be, so no profile is attached.
    if _icc_space(icc) == b"CMYK":
        assert icc is not None
        try:
            return _to_srgb(im, ImageCms.ImageCmsProfile(io.BytesIO(icc))), None
        except (ImageCms.PyCMSError, OSError, ValueError):
            pass  # a broken profile: fall back to Pillow's plain conversion
    return im.convert("RGB"), None


def _to_srgb(im: Image.Image, profile: ImageCms.ImageCmsProfile) -> Image.Image:
    converted = ImageCms.profileToProfile(
        im, profile, ImageCms.createProfile("sRGB"), outputMode="RGB"
    )
    assert converted is not None  # None only when converting in place
    return converted


def _quality(format: str, quality: int, options: CompressOptions) -> int:
    if options.quality_mode == "exact":
        return quality
    return encoder_setting(VISUAL_CALIBRATION[format], quality)


def _encoder_params(options: CompressOptions) -> dict[str, Any]:
    if options.format == "JPEG":
        return {"optimize": options.optimize, "progressive": options.progressive}
    if options.format == "AVIF":
        return dict(_AVIF_PARAMS)
    return {}


def _encode(
    im: Image.Image, icc: bytes | None, format: str, quality: int, params: dict[str, Any]
) -> bytes:
    params = {**params, "quality": quality}
    if icc:
        params["icc_profile"] = icc
    # Encoders fall back to im.info for comments, XMP and ICC: empty it so only params count.
    im.info = {}
    buffer = io.BytesIO()
    try:
        im.save(buffer, format, **params)
    except (OSError, ValueError) as exc:  # e.g. WebP's 16383-pixel limit
        raise ImageError(f"cannot encode {im.width}x{im.height} as {format}: {exc}") from exc
    return buffer.getvalue()


def _is_png_text_bomb(exc: ValueError) -> bool:
    # PngImagePlugin refuses zTXt/iTXt/iCCP chunks that inflate past MAX_TEXT_CHUNK
    # or MAX_TEXT_MEMORY with a plain ValueError.
    text = str(exc)
    return "MAX_TEXT_CHUNK" in text or "text chunks" in text
