"""Everything a plugin author needs, in one import: ``from imgcore.plugin import …``.

The hooks themselves are documented in :mod:`imgcore.hookspecs`; the types here are the
contracts they exchange (:mod:`imgcore.contracts`). Nothing else in imgcore is meant for
plugins: the modules whose names start with ``_`` are private and may change in any release.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from imgcore._plugins import create_plugin_manager
from imgcore.config import Config, ConfigError, read_env
from imgcore.contracts import (
    ALLOWED_FORMATS,
    OUTPUT_FORMATS,
    Claim,
    Codec,
    CodecSpec,
    CompressedImage,
    CompressOptions,
    DeliveryClaim,
    DeliveryOutcome,
    Executor,
    ImageEnded,
    Notifier,
    Settlement,
    Storage,
    Variant,
    VariantPlan,
    Work,
    check_key,
    compressed_image,
    decode_size,
    encoder_setting,
    fit_size,
    image_key,
    jpeg_has_nothing_to_strip,
    plan_variant,
    png_metadata_bomb,
    safe_key,
    scale_box,
    sniff_format,
)
from imgcore.errors import (
    CorruptImageError,
    DecompressionBombError,
    ImageError,
    ImgcoreError,
    StorageError,
    UnsupportedImageError,
)
from imgcore.hookspecs import hookimpl
from imgcore.states import ImageStatus, RequestStatus

if TYPE_CHECKING:
    from imgcore._sqltypes import UTCDateTime

__all__ = [
    "ALLOWED_FORMATS",
    "OUTPUT_FORMATS",
    "Claim",
    "Codec",
    "CodecSpec",
    "CompressOptions",
    "CompressedImage",
    "Config",
    "ConfigError",
    "CorruptImageError",
    "DecompressionBombError",
    "DeliveryClaim",
    "DeliveryOutcome",
    "Executor",
    "ImageEnded",
    "ImageError",
    "ImageStatus",
    "ImgcoreError",
    "Notifier",
    "RequestStatus",
    "Settlement",
    "Storage",
    "StorageError",
    "UTCDateTime",
    "UnsupportedImageError",
    "Variant",
    "VariantPlan",
    "Work",
    "check_key",
    "compressed_image",
    "create_plugin_manager",
    "decode_size",
    "encoder_setting",
    "fit_size",
    "hookimpl",
    "image_key",
    "jpeg_has_nothing_to_strip",
    "plan_variant",
    "png_metadata_bomb",
    "read_env",
    "safe_key",
    "scale_box",
    "sniff_format",
]


if not TYPE_CHECKING:  # type checkers see the names imported above, not Any

    def __getattr__(name: str) -> Any:
        # SQLAlchemy loads on first use: codecs import this module in every compression worker,
        # which has no database to reach.
        if name == "UTCDateTime":
            from imgcore._sqltypes import UTCDateTime

            return UTCDateTime
        raise AttributeError(f"module 'imgcore.plugin' has no attribute {name!r}")
