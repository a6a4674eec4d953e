"""SAQ's PostgreSQL queue with a short sweep wait (imported only when it is used: psycopg)."""

from __future__ import annotations

from saq.queue.postgres import PostgresQueue as _SaqPostgresQueue

from imgcore_saq.queues import SWEEP_ABORT_WAIT

__all__ = ["PostgresQueue"]


class PostgresQueue(_SaqPostgresQueue):
    """See :data:`imgcore_saq.queues.SWEEP_ABORT_WAIT`."""

    async def sweep(self, lock: int = 60, abort: float = SWEEP_ABORT_WAIT) -> list[str]:
        return await super().sweep(lock, abort)
