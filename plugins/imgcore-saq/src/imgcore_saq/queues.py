"""Opening a SAQ queue (Redis or PostgreSQL) from a URL."""

from __future__ import annotations

from urllib.parse import urlsplit, urlunsplit

from saq.queue import Queue
from saq.queue.redis import RedisQueue

__all__ = ["SWEEP_ABORT_WAIT", "open_queue"]

SWEEP_ABORT_WAIT = 1.0
"""Seconds a sweep waits for a stuck job's worker to acknowledge the abort.

SAQ waits 5 s per job, one job after another: a dead worker with 32 jobs would hold the others
back for minutes. A worker that is alive acknowledges within its 1 s abort timer, and the
database lease keeps a job run twice from processing an image twice anyway.
"""


class _RedisQueue(RedisQueue):
    async def sweep(self, lock: int = 60, abort: float = SWEEP_ABORT_WAIT) -> list[str]:
        return await super().sweep(lock, abort)


def open_queue(url: str, name: str, *, small: bool = False) -> Queue:
    """A queue for ``url``, not connected yet; ``small``: a PostgreSQL pool of 4 connections."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower().partition("+")[0]
    if scheme.startswith("postgres"):
        from imgcore_saq._postgres import PostgresQueue

        # psycopg wants a libpq URL: the same database URL as SQLAlchemy's, minus its +driver.
        libpq = urlunsplit(parts._replace(scheme="postgresql"))
        sizes = {"min_size": 1, "max_size": 4} if small else {}
        return PostgresQueue.from_url(libpq, name=name, **sizes)
    return _RedisQueue.from_url(url, name=name)
