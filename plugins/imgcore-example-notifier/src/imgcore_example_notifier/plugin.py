"""The hook implementations: all an imgcore plugin needs, found through its entry point.

``pyproject.toml`` declares, in ``[project.entry-points.imgcore]``,
``example = "imgcore_example_notifier.plugin"``: imgcore registers this module under the
entry point's name, ``example`` (the name ``IMGCORE_DISABLE_PLUGINS`` and ``imgcore plugins``
use).
"""

from __future__ import annotations

import os

from imgcore.plugin import Config, Notifier, Storage, hookimpl

from imgcore_example_notifier.notifier import LOG_ENV, JsonLinesNotifier
from imgcore_example_notifier.storage import MemoryStorage


@hookimpl
def imgcore_storage(url: str, config: Config) -> Storage | None:
    """``memory://NAME`` → :class:`MemoryStorage`; other URLs are someone else's."""
    if not url.startswith("memory://"):
        return None
    return MemoryStorage.from_url(url)


@hookimpl
def imgcore_notifiers(config: Config) -> list[Notifier]:
    """The JSON-lines notifier when ``IMGCORE_EXAMPLE_LOG`` names a file, else nothing."""
    path = os.environ.get(LOG_ENV, "").strip()
    if not path:
        return []
    return [JsonLinesNotifier(path, retry_schedule=config.webhook_retry_schedule)]
