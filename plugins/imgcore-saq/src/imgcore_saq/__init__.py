"""imgcore-saq: a distributed imgcore executor on SAQ (Redis or PostgreSQL as the queue).

Select it with ``IMGCORE_EXECUTOR=saq`` and ``IMGCORE_QUEUE_URL``; see :class:`SaqSettings`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from imgcore_saq.executor import JOB_FUNCTION, SaqExecutor
    from imgcore_saq.settings import SaqSettings

__all__ = ["JOB_FUNCTION", "SaqExecutor", "SaqSettings"]


if not TYPE_CHECKING:  # type checkers see the names imported above, not Any

    def __getattr__(name: str) -> Any:
        # SAQ and its Redis client load on first use: every imgcore process loads this plugin to
        # ask whether its executor is SAQ's.
        if name in ("JOB_FUNCTION", "SaqExecutor"):
            from imgcore_saq import executor

            return getattr(executor, name)
        if name == "SaqSettings":
            from imgcore_saq.settings import SaqSettings

            return SaqSettings
        raise AttributeError(f"module 'imgcore_saq' has no attribute {name!r}")
