"""Everything a plugin author needs, in one import: ``from imgcore.plugin import …``.

The hooks themselves are documented in :mod:`imgcore.hookspecs`; the types here are the
contracts they exchange (:mod:`imgcore.contracts`). Nothing else in imgcore is meant for
plugins: the modules whose names start with ``_`` are private and may change in any release.
"""

from __future__ import annotations

from imgcore._plugins import create_plugin_manager
from imgcore._sqltypes import UTCDateTime
from imgcore.config import Config, ConfigError, read_env
from imgcore.contracts import (
    Claim,
    DeliveryClaim,
    DeliveryOutcome,
    Executor,
    ImageEnded,
    Notifier,
    Settlement,
    Storage,
    Work,
    check_key,
    image_key,
    safe_key,
)
from imgcore.errors import ImgcoreError, StorageError
from imgcore.hookspecs import hookimpl
from imgcore.states import ImageStatus, RequestStatus

__all__ = [
    "Claim",
    "Config",
    "ConfigError",
    "DeliveryClaim",
    "DeliveryOutcome",
    "Executor",
    "ImageEnded",
    "ImageStatus",
    "ImgcoreError",
    "Notifier",
    "RequestStatus",
    "Settlement",
    "Storage",
    "StorageError",
    "UTCDateTime",
    "Work",
    "check_key",
    "create_plugin_manager",
    "hookimpl",
    "image_key",
    "read_env",
    "safe_key",
]
