"""The types a plugin implements or receives: storage, notifiers, executors, codecs and their data.

Plugin authors import these from :mod:`imgcore.plugin`, which re-exports them with the hook
markers.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import PurePosixPath
from typing import Any, Final, Literal, Protocol, runtime_checkable
from uuid import UUID

import anyio
import anyio.abc
import msgspec

from imgcore._imagerules import (
    encoder_setting,
    fit_size,
    jpeg_has_nothing_to_strip,
    png_metadata_bomb,
    sniff_format,
)
from imgcore._variants import (
    Fit,
    Variant,
    VariantPlan,
    colour_rgb,
    decode_size,
    plan_variant,
    scale_box,
)
from imgcore.errors import InvalidOptionsError, StorageError
from imgcore.states import ImageStatus, RequestStatus

__all__ = [
    "ALLOWED_FORMATS",
    "OUTPUT_FORMATS",
    "Claim",
    "Codec",
    "CodecSpec",
    "CompressOptions",
    "CompressedImage",
    "DeliveryClaim",
    "DeliveryOutcome",
    "Executor",
    "Fit",
    "ImageEnded",
    "Notifier",
    "Settlement",
    "Storage",
    "Variant",
    "VariantPlan",
    "Work",
    "check_key",
    "compressed_image",
    "decode_size",
    "encoder_setting",
    "fit_size",
    "image_key",
    "jpeg_has_nothing_to_strip",
    "plan_variant",
    "png_metadata_bomb",
    "safe_key",
    "scale_box",
    "sniff_format",
]


# -- data handed to plugins -----------------------------------------------------------------


class Claim(msgspec.Struct, frozen=True, kw_only=True):
    """An image this worker now holds a lease on."""

    id: int
    request_id: UUID
    url: str
    attempts: int
    started_at: datetime | None = None
    """When the image was first claimed (kept across attempts and restarts): its deadline,
    ``IMGCORE_IMAGE_DEADLINE``, counts from here. ``None``: from now."""


class Settlement(msgspec.Struct, frozen=True, kw_only=True):
    """A request that has just reached its terminal status (exactly once per finish)."""

    request_id: UUID
    status: RequestStatus
    webhook_url: str | None
    total: int
    done: int
    failed: int


class DeliveryClaim(msgspec.Struct, frozen=True, kw_only=True):
    """A notification this worker now holds a lease on."""

    id: int
    request_id: UUID
    message_id: str
    notifier: str
    event: str
    target: str | None
    payload: dict[str, Any]
    attempts: int
    created_at: datetime


class ImageEnded(msgspec.Struct, frozen=True, kw_only=True):
    """An image reached ``done`` or ``failed``."""

    request_id: UUID
    image_id: int
    url: str
    status: ImageStatus
    attempts: int
    storage_key: str | None = None
    error_reason: str | None = None
    error: str | None = None
    input_bytes: int | None = None
    output_bytes: int | None = None
    seconds: float = 0.0
    reused: str | None = None
    """Why a done image's outputs were reused (``not_modified``, ``same_content``,
    ``max_age``); None when they were made for it."""
    saved_bytes: int = 0
    """Source bytes not downloaded because the outputs were reused without a download."""


# -- storage --------------------------------------------------------------------------------


def image_key(request_id: UUID, image_id: int, extension: str) -> str:
    """Where an image's objects live: ``requests/<request>/<image><extension>``, one fixed key
    per image and kind (output, thumbnail), so storing again replaces, never adds."""
    return f"requests/{request_id}/{image_id}{extension}"


def safe_key(key: str) -> PurePosixPath:
    """Validate a storage key: relative, ``/``-separated, no ``..``, no empty or hidden parts."""
    check_key(key)
    return PurePosixPath(key)


def check_key(key: str) -> None:
    """:func:`safe_key` without building a path (output URLs are made for every status read)."""
    # An empty part is a leading, trailing or doubled "/"; "." and ".." and hidden names are
    # the parts that start with ".", at the start of the key or after a "/".
    if (
        not key
        or key[0] in "/."
        or key[-1] == "/"
        or "//" in key
        or "/." in key
        or "\\" in key
        or "\x00" in key
    ):
        raise StorageError(f"invalid storage key: {key!r}", transient=False)


@runtime_checkable
class Storage(Protocol):
    """A place to put bytes under keys like ``requests/<id>/<image>.jpg``.

    Keys use ``/`` separators and never start with ``/`` or contain ``..``. ``put`` must be
    atomic (a reader sees the whole object or nothing) and idempotent (putting the same key
    again replaces it), which is what makes re-processing after a crash safe.
    """

    async def put(self, key: str, data: bytes, *, content_type: str) -> None:
        """Store ``data`` under ``key``, replacing what was there."""
        ...

    async def get(self, key: str) -> bytes:
        """The bytes under ``key``; raises ``KeyError`` when there are none."""
        ...

    async def delete(self, key: str) -> None:
        """Remove ``key``; a missing key is not an error."""
        ...

    def url_for(self, key: str) -> str:
        """The URL a client fetches ``key`` from."""
        ...

    async def aclose(self) -> None:
        """Release connections and files."""
        ...


# -- notifiers ------------------------------------------------------------------------------


class DeliveryOutcome(msgspec.Struct, frozen=True, kw_only=True):
    """How one delivery attempt went.

    ``delivered``: done. Otherwise ``retry`` says whether to try again later (a receiver that
    is down or answers 5xx) or give up (a receiver that answered 410 Gone, or a permanent error).
    """

    delivered: bool
    retry: bool = True
    status_code: int | None = None
    error: str | None = None


@runtime_checkable
class Notifier(Protocol):
    """Delivers notifications of finished requests.

    ``name`` is stored with each delivery and must be unique among loaded notifiers and
    stable across versions: a delivery recorded under a name no loaded notifier has waits
    until one does. Delivery is at least once (a crash mid-attempt means another attempt),
    so receivers de-duplicate on the delivery's ``message_id``.

    A notifier holding connections or files may also define ``async def aclose(self)``;
    it is called when delivery stops, and a later ``deliver`` must work again.
    """

    name: str

    def target(self, settlement: Settlement) -> str | None:
        """Where to notify about ``settlement``, or ``None`` to stay silent."""
        ...

    def payload(self, settlement: Settlement) -> dict[str, Any]:
        """The JSON-able body of the notification (stored, then sent on every attempt)."""
        ...

    async def deliver(self, delivery: DeliveryClaim) -> DeliveryOutcome:
        """Make one delivery attempt; never raise for an unreachable receiver.

        Bound the attempt in time (the delivery is leased for 60 s; an attempt still
        running after that may be repeated elsewhere). An exception counts as a failed
        attempt to retry.
        """
        ...

    def retry_delay(self, attempts: int) -> float | None:
        """Seconds before attempt ``attempts + 1`` (``attempts`` made so far, from 1), or
        ``None`` to give up."""
        ...


# -- executors ------------------------------------------------------------------------------


class Work(Protocol):
    """What an executor works with: leases on the images waiting in the database, and the
    pipeline that takes a leased image to its next state.

    The engine builds it and hands it to the ``imgcore_executor`` hook. Every method is one
    short database transaction (but :meth:`process`); the database stays the truth, so an
    executor holds nothing that a crash could lose.
    """

    @property
    def owner(self) -> str:
        """This process's name on the leases it takes (unique per engine)."""
        ...

    @property
    def lease(self) -> timedelta:
        """How long a claim holds an image unless renewed (``IMGCORE_LEASE_SECONDS``)."""
        ...

    @property
    def fetch_concurrency(self) -> int:
        """Sizing hint: downloads worth running at once (``IMGCORE_FETCH_CONCURRENCY``)."""
        ...

    @property
    def compression_workers(self) -> int:
        """Sizing hint: the processes compressing images (each wants one image at a time)."""
        ...

    async def claim(self, limit: int) -> list[Claim]:
        """Lease up to ``limit`` due images: pending ones, and those whose lease expired."""
        ...

    async def claim_image(self, image_id: int) -> Claim | datetime | None:
        """Lease ``image_id`` if it is due; else when it will be (a retry time, or another
        worker's lease expiry), or ``None`` when it has ended or does not exist."""
        ...

    async def due_at(self, image_id: int) -> datetime | None:
        """When an unfinished image may next be claimed; ``None`` once it has ended."""
        ...

    async def pending_ids(
        self, request_id: UUID | None, *, after: int = 0, limit: int = 1000
    ) -> list[int]:
        """Ids above ``after`` of unfinished images (of a request, or of all), ascending."""
        ...

    async def process(self, claim: Claim) -> None:
        """Download, compress, store and record a leased image; never raises for a bad image.

        A transient error leaves the image pending until its retry time; a lost lease
        leaves it to the worker that holds it now.
        """
        ...

    async def renew(self, ids: Sequence[int]) -> int:
        """Extend this owner's leases on ``ids`` by :attr:`lease`; returns how many it holds."""
        ...

    async def defer(self, claim: Claim, *, error_reason: str, error: str) -> bool:
        """Give a leased image back as pending, due now, its attempt counted and the reason
        recorded (a job that was cancelled, say); ``False`` if the lease was lost."""
        ...

    async def release(self) -> int:
        """Give back every image this owner holds, uncounted (a graceful shutdown)."""
        ...


@runtime_checkable
class Executor(Protocol):
    """Runs the pipeline on pending images until cancelled.

    The database is the truth: an executor claims images through its :class:`Work` (or
    receives ids it then claims), processes them with ``work.process`` and may be killed at
    any moment.
    """

    async def run(
        self, *, task_status: anyio.abc.TaskStatus[None] = anyio.TASK_STATUS_IGNORED
    ) -> None:
        """Process work until cancelled; call ``task_status.started()`` once ready.

        On cancellation, images in flight are finished within the grace period or given back.
        """
        ...

    async def submitted(self, request_id: UUID) -> None:
        """A request was stored: start on it (wake a loop, enqueue jobs…)."""
        ...


# -- codecs ---------------------------------------------------------------------------------

ALLOWED_FORMATS: Final[frozenset[str]] = frozenset(
    {"JPEG", "PNG", "WEBP", "GIF", "BMP", "TIFF", "AVIF"}
)
"""Input formats imgcore accepts; a codec refuses anything else before its decoder sees it."""

OutputFormat = Literal["JPEG", "WEBP", "AVIF"]
QualityMode = Literal["visual", "exact"]

OUTPUT_FORMATS: Final[dict[str, tuple[str, str]]] = {
    "JPEG": ("image/jpeg", ".jpg"),
    "WEBP": ("image/webp", ".webp"),
    "AVIF": ("image/avif", ".avif"),
}
"""(media type, file extension) of each output format."""


class CompressOptions(msgspec.Struct, frozen=True, kw_only=True):
    """How a codec encodes; values are checked when the options are built."""

    quality: int = 50
    """Encoder quality, 1..95."""
    quality_mode: QualityMode = "visual"
    """How ``quality`` reaches the encoder: ``visual``, the look libjpeg gives at that
    quality, each encoder at its calibrated setting (:func:`encoder_setting`); ``exact``,
    the number as it is."""
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
    """Decompression-bomb limit on the input's width * height, checked before decoding."""
    background: str = "#ffffff"
    """Colour transparent images are flattened on (any Pillow colour string)."""
    keep_original: bool = True
    """Return a JPEG source unchanged when re-encoding would make it larger and it carries
    no metadata to strip (see :func:`jpeg_has_nothing_to_strip`)."""

    def __post_init__(self) -> None:
        if isinstance(self.quality, bool) or not 1 <= self.quality <= 95:
            raise InvalidOptionsError(f"quality must be 1..95, not {self.quality!r}")
        if self.quality_mode not in ("visual", "exact"):
            raise InvalidOptionsError(
                f"quality_mode must be 'visual' or 'exact', not {self.quality_mode!r}"
            )
        if self.format not in OUTPUT_FORMATS:
            raise InvalidOptionsError(
                f"format must be one of {sorted(OUTPUT_FORMATS)}, not {self.format!r}"
            )
        for name in ("max_width", "max_height"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise InvalidOptionsError(f"{name} must be at least 1 or None, not {value!r}")
        if self.max_pixels < 1:
            raise InvalidOptionsError(f"max_pixels must be at least 1, not {self.max_pixels!r}")
        try:
            colour_rgb(self.background)
        except ValueError as exc:
            raise InvalidOptionsError(f"background is not a colour: {self.background!r}") from exc

    def background_rgb(self) -> tuple[int, int, int]:
        """:attr:`background` as an (r, g, b) triple."""
        return colour_rgb(self.background)


class CompressedImage(msgspec.Struct, frozen=True, kw_only=True):
    """What a codec returns: the encoded bytes and what they are."""

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


def compressed_image(
    data: bytes,
    encoded: bytes,
    *,
    options: CompressOptions,
    source_format: str,
    source_size: tuple[int, int],
    size: tuple[int, int],
    keep_candidate: bool,
) -> CompressedImage:
    """A codec's result: ``encoded`` (``size`` pixels), or the source ``data`` byte for byte
    when ``keep_candidate`` (``keep_original`` applies, see :class:`Codec`) and ``encoded`` is
    the larger."""
    kept = keep_candidate and len(encoded) > len(data)
    output = "JPEG" if kept else options.format
    media_type, extension = OUTPUT_FORMATS[output]
    body = data if kept else encoded
    width, height = source_size if kept else size
    return CompressedImage(
        data=body,
        format=output,
        media_type=media_type,
        extension=extension,
        width=width,
        height=height,
        input_format=source_format,
        input_width=source_size[0],
        input_height=source_size[1],
        input_bytes=len(data),
        output_bytes=len(body),
        kept_original=kept,
    )


@runtime_checkable
class Codec(Protocol):
    """Decodes an image body and encodes it as :class:`CompressOptions` say.

    A codec owns every image-format rule, and the conformance suite
    (``tests/imgcore/codecs/``) holds each installed codec to them:

    - refuse what :func:`sniff_format` does not name as an allowed format
      (:class:`~imgcore.errors.UnsupportedImageError`) before any decoder sees it, and
      decode with the decoder of that format only;
    - refuse more than ``max_pixels`` from the header, before pixel memory is allocated
      (:class:`~imgcore.errors.DecompressionBombError`);
    - truncated or broken bodies raise :class:`~imgcore.errors.CorruptImageError`, an
      encoder failure :class:`~imgcore.errors.ImageError`; nothing else escapes;
    - apply the EXIF orientation, then drop all metadata but the ICC profile, and keep that
      only when it describes the output's colour space (RGB or grey);
    - convert any mode to 8-bit RGB or grey (grey only in JPEG): CMYK through its embedded
      profile, 16-bit and 1-bit scaled, palette expanded, transparency flattened on
      ``background``; animated images keep their first frame;
    - downscale to :func:`fit_size` of the oriented size, never up;
    - with ``keep_original``, return a JPEG source byte for byte when the re-encode is
      larger and :func:`jpeg_has_nothing_to_strip` (RGB or grey, upright, not resized).

    For :meth:`variants` (a preset's outputs), the same rules, and also:

    - decode once, at the smallest scale that still serves the largest variant
      (:func:`decode_size`; JPEG DCT scaling, shrink-on-load), and derive every variant
      from that one decode;
    - cut each variant as :func:`plan_variant` says (crop, size, canvas, never upscaled),
      after trimming the uniform border when the variant asks for it; flatten transparency
      on, and pad with, the variant's background.

    Its work runs in the compression worker processes: a codec is built there, once per
    process, by calling its :attr:`CodecSpec.factory`.
    """

    def compress(self, data: bytes, options: CompressOptions) -> CompressedImage:
        """``data`` decoded and encoded as ``options`` say; raises only image errors."""
        ...

    def variants(
        self, data: bytes, variants: Sequence[Variant], options: CompressOptions
    ) -> list[CompressedImage]:
        """``data`` decoded once and encoded as each of ``variants``, in their order.

        ``options`` gives what variants do not (``max_pixels``, ``quality_mode``, JPEG
        ``optimize`` / ``progressive``); its size limits, format, quality and
        ``keep_original`` do not apply. Raises only image errors.
        """
        ...


@dataclass(frozen=True, kw_only=True)
class CodecSpec:
    """A codec a plugin contributes through the ``imgcore_codecs`` hook."""

    name: str
    """What ``IMGCORE_CODEC`` calls it (``pillow``, ``vips``…); unique among plugins."""
    factory: Callable[[], Codec]
    """Builds the codec in each worker process; must pickle by reference (a module-level
    class or function), since the pool sends it to every worker it starts."""
    formats: frozenset[str]
    """Input formats it decodes (a subset of :data:`ALLOWED_FORMATS`)."""
    outputs: frozenset[str]
    """Output formats it encodes (keys of :data:`OUTPUT_FORMATS`)."""
    rank: int = 0
    """Preference when ``IMGCORE_CODEC`` is empty: the highest rank installed wins."""
    description: str = ""
    """One line for ``imgcore plugins``."""
