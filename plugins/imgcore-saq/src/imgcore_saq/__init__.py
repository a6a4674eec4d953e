"""imgcore-saq: a distributed imgcore executor on SAQ (Redis or PostgreSQL as the queue).

Select it with ``IMGCORE_EXECUTOR=saq`` and ``IMGCORE_QUEUE_URL``; see :class:`SaqSettings`.
"""

from __future__ import annotations

from imgcore_saq.executor import JOB_FUNCTION, SaqExecutor
from imgcore_saq.settings import SaqSettings

__all__ = ["JOB_FUNCTION", "SaqExecutor", "SaqSettings"]
