"""The executor seam: how pending images get processed."""

from __future__ import annotations

from typing import Protocol, runtime_checkable
from uuid import UUID

import anyio.abc

__all__ = ["Executor"]


@runtime_checkable
class Executor(Protocol):
    """Runs the pipeline on pending images until cancelled.

    The database is the truth: an executor claims images there (or receives ids it then
    claims), processes them with ``engine.pipeline`` and may be killed at any moment.
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
