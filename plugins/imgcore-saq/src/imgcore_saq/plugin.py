"""Registers the ``saq`` executor (``IMGCORE_EXECUTOR=saq``, ``IMGCORE_QUEUE_URL=…``)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from imgcore.plugin import Config, Work, hookimpl

if TYPE_CHECKING:
    from imgcore_saq.executor import SaqExecutor

__all__ = ["imgcore_executor"]


@hookimpl
def imgcore_executor(name: str, work: Work, config: Config) -> SaqExecutor | None:
    """``saq``: jobs on a Redis or PostgreSQL queue, worked by ``imgcore worker`` processes."""
    if name != "saq":
        return None
    from imgcore_saq.executor import SaqExecutor
    from imgcore_saq.settings import SaqSettings

    return SaqExecutor(work, config, SaqSettings.from_env())
