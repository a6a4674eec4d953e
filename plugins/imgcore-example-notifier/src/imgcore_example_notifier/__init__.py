"""imgcore-example-notifier: a third-party imgcore plugin built on the public hooks only.

It adds a notifier (:class:`JsonLinesNotifier`, a JSON line per finished request in the file
named by ``IMGCORE_EXAMPLE_LOG``) and a storage backend (:class:`MemoryStorage`, for
``memory://NAME`` storage URLs). Copy it to start a plugin of your own.
"""

from __future__ import annotations

from imgcore_example_notifier.notifier import LOG_ENV, JsonLinesNotifier
from imgcore_example_notifier.storage import MemoryStorage

__all__ = ["LOG_ENV", "JsonLinesNotifier", "MemoryStorage"]
