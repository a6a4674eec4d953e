"""Bytes in, compressed image out: every image-format rule of imgcore (Pillow).

:func:`compress` is a pure function of its arguments (no global state is read or
written), so it can run in threads (Pillow releases the GIL while decoding and
encoding) or in a process pool (arguments, results and errors all pickle).
"""

from __future__ import annotations

import io
import struct
from typing import Any, Final, Literal

import msgspec
from PIL import Image, ImageCms, ImageColor, JpegImagePlugin

from imgcore.errors import ImgcoreError

__all__ = [
    "ALLOWED_FORMATS",
    "CompressOptions",
    "CompressedImage",
    "CorruptImageError",
    "DecompressionBombError",
    "ImageError",
    "InvalidOptionsError",
    "UnsupportedImageError",
    "compress",
    "make_thumbnail",
    "sniff_format",
]

ALLOWED_FORMATS: Final[frozenset[str]] = frozenset(
    {"JPEG", "PNG", "WEBP", "GIF", "BMP", "TIFF", "AVIF"}
)
"""Input formats :func:`compress` decodes; anything else is refused before Pillow sees it."""

OutputFormat = Literal["JPEG", "WEBP", "AVIF"]

# (media type, extension) of each output format.
_OUTPUTS: Final[dict[str, tuple[str, str]]] = {
    "JPEG": ("image/jpeg", ".jpg"),
    "WEBP": ("image/webp", ".webp"),
    "AVIF": ("image/avif", ".avif"),
}
# Speed 8: libavif's default (6) costs far more time for few bytes (docs/performance.md). One
# thread per encode because callers already run one compress() per core.
_AVIF_PARAMS: Final[dict[str, Any]] = {"speed": 8, "max_threads": 1}
# BITMAPINFOHEADER sizes Pillow's BMP decoder understands (OS/2 v1 … v5).
_BMP_HEADER_SIZES: Final = frozenset({12, 40, 52, 56, 64, 108, 124})
# JPEG segments that carry no personal data; a source with any other (Exif, XMP, IPTC,
# comments, MPF…) is always re-encoded so that it is stripped.
_HARMLESS_JPEG_SEGMENTS: Final = (
    ("APP0", b"JFIF\0"),
    ("APP2", b"ICC_PROFILE\0"),
    ("APP14", b"Adobe"),
)
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


class ImageError(ImgcoreError):
    """An image could not be compressed."""

    reason = "image_error"


class UnsupportedImageError(ImageError):
    """The body is not an image, or not of an allowed format (see :data:`ALLOWED_FORMATS`)."""

    reason = "unsupported_format"


class DecompressionBombError(ImageError):
    """The image has more pixels than ``max_pixels`` (or unpacks to far more than it weighs)."""

    reason = "decompression_bomb"


class CorruptImageError(ImageError):
    """The image is truncated or broken."""

    reason = "corrupt_image"


class InvalidOptionsError(ImgcoreError, ValueError):
    """A :class:`CompressOptions` value is out of range."""

    reason = "invalid_options"


class CompressOptions(msgspec.Struct, frozen=True, kw_only=True):
    """How :func:`compress` encodes; values are checked when the options are built."""

    quality: int = 50
    """Encoder quality, 1..95."""
    format: OutputFormat = "JPEG"
    """Output format."""
    optimize: bool = False
    """JPEG: optimise Huffman tables (slightly smaller, slower)."""
    progressive: bool = False
    """JPEG: write a progressive file."""
    max_width: int | None = None
    """Downscale (keeping the aspect ratio) to at most this width; None keeps it."""
    max_height: int | None = None
    """Downscale (keeping the aspect ratio) to at most this height; None keeps it."""
    max_pixels: int = 50_000_000
    """Decompression-bomb limit on the input's width * height (Pillow's own refusal above
    2 * ``PIL.Image.MAX_IMAGE_PIXELS`` still applies)."""
    background: str = "#ffffff"
    """Colour transparent images are flattened on (any Pillow colour string)."""
    keep_original: bool = True
    """Return a JPEG source unchanged when re-encoding would make it larger and it carries
    no metadata to strip (see :func:`compress`)."""

    def __post_init__(self) -> None:
        if isinstance(self.quality, bool) or not 1 <= self.quality <= 95:
            raise InvalidOptionsError(f"quality must be 1..95, not {self.quality!r}")
        if self.format not in _OUTPUTS:
            raise InvalidOptionsError(
                f"format must be one of {sorted(_OUTPUTS)}, not {self.format!r}"
            )
        for name in ("max_width", "max_height"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise InvalidOptionsError(f"{name} must be at least 1 or None, not {value!r}")
        if self.max_pixels < 1:
            raise InvalidOptionsError(f"max_pixels must be at least 1, not {self.max_pixels!r}")
        try:
            ImageColor.getrgb(self.background)
        except ValueError as exc:
            raise InvalidOptionsError(f"background is not a colour: {self.background!r}") from exc


class CompressedImage(msgspec.Struct, frozen=True, kw_only=True):
    """The result of :func:`compress`: the encoded bytes and what they are."""

    data: bytes
    format: str
    media_type: str
    extension: str
    width: int
    height: int
    input_format: str
    input_width: int
    input_height: int
    input_bytes: int
    output_bytes: int
    kept_original: bool = False


def sniff_format(data: bytes) -> str | None:
    """The allowed image format ``data`` starts with (by magic bytes only), else None."""
    if data.startswith(b"\xff\xd8\xff"):
        return "JPEG"
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "PNG"
    if data[:6] in (b"GIF87a", b"GIF89a"):
        return "GIF"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "WEBP"
    # "BM" alone is too weak (text can start with it): require a DIB header size too.
    if data[:2] == b"BM" and len(data) >= 18:
        (header_size,) = struct.unpack_from("<I", data, 14)
        if header_size in _BMP_HEADER_SIZES:
            return "BMP"
    if data[:4] in (b"II*\0", b"MM\0*", b"II+\0", b"MM\0+"):  # classic TIFF and BigTIFF
        return "TIFF"
    if data[4:8] == b"ftyp" and _is_avif_ftyp(data):
        return "AVIF"
    return None


def _is_avif_ftyp(data: bytes) -> bool:
    # Same acceptance as Pillow's AVIF plugin: an AVIF coding brand, or a generic HEIF
    # container brand that lists an AVIF brand as compatible (HEIC does not).
    major = data[8:12]
    if major in (b"avif", b"avis"):
        return True
    if major not in (b"mif1", b"msf1"):
        return False
    (box_size,) = struct.unpack_from(">I", data, 0)
    box = data[16 : min(box_size, len(data), 256)]
    brands = {box[i : i + 4] for i in range(0, len(box) - 3, 4)}
    return bool(brands & {b"avif", b"avis"})


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
    source_format = sniff_format(data)
    if source_format is None:
        raise UnsupportedImageError(
            f"not an image of an allowed format ({', '.join(sorted(ALLOWED_FORMATS))})"
        )
    try:
        # formats=[...]: only the decoder the magic bytes name may run (never EPS, PSD…).
        with Image.open(io.BytesIO(data), formats=[source_format]) as im:
            return _compress_open(im, data, source_format, options)
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
    target = _fit(oriented, options.max_width, options.max_height)
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
    encoded = _encode(out, icc, options.format, options.quality, _encoder_params(options))
    media_type, extension = _OUTPUTS[options.format]
    if keep_candidate and len(encoded) > len(data):
        return CompressedImage(
            data=data,
            format="JPEG",
            media_type=media_type,
            extension=extension,
            width=width,
            height=height,
            input_format=source_format,
            input_width=width,
            input_height=height,
            input_bytes=len(data),
            output_bytes=len(data),
            kept_original=True,
        )
    return CompressedImage(
        data=encoded,
        format=options.format,
        media_type=media_type,
        extension=extension,
        width=out.width,
        height=out.height,
        input_format=source_format,
        input_width=width,
        input_height=height,
        input_bytes=len(data),
        output_bytes=len(encoded),
    )


def _draft(im: JpegImagePlugin.JpegImageFile, options: CompressOptions) -> None:
    """Have libjpeg decode at 1/2, 1/4 or 1/8 scale, still at least the target size."""
    orientation = _orientation(im)  # a JPEG's EXIF is in its header: nothing decoded yet
    width, height = im.size
    if orientation in _ROTATED:
        width, height = height, width
    target = _fit((width, height), options.max_width, options.max_height)
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


def _fit(size: tuple[int, int], max_width: int | None, max_height: int | None) -> tuple[int, int]:
    width, height = size
    scale = min(
        1.0,
        max_width / width if max_width else 1.0,
        max_height / height if max_height else 1.0,
    )
    if scale >= 1.0:
        return size
    return max(1, round(width * scale)), max(1, round(height * scale))


def _nothing_to_strip(im: Image.Image, data: bytes, orientation: int) -> bool:
    if not isinstance(im, JpegImagePlugin.JpegImageFile) or im.mode not in ("RGB", "L"):
        return False
    if orientation != 1 or not data.endswith(b"\xff\xd9"):  # trailing bytes could hide anything
        return False
    return all(
        any(
            marker == name and payload.startswith(prefix)
            for name, prefix in _HARMLESS_JPEG_SEGMENTS
        )
        for marker, payload in im.applist
    )


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
