"""Request and image statuses, and the rule that ends a request.

The request statuses are the exact strings the original Django app's clients compare
(``"Pending"``, ``"In Process"``, ``"Completed"``, ``"Failed"``). The transitions themselves
are conditional updates in the database (a status changes only from the one expected).
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum

__all__ = ["ImageStatus", "RequestStatus", "failure_summary", "settle"]

# Failures whose cause is the service's, not the image's: said in words on the request.
_EXPLAINED = {
    "storage_error": "the storage could not be written",
    "deadline_exceeded": "not finished before the image deadline",
}


class RequestStatus(StrEnum):
    """Status of an upload; the values are the display strings clients compare."""

    PENDING = "Pending"
    IN_PROCESS = "In Process"
    COMPLETED = "Completed"
    FAILED = "Failed"

    @property
    def is_terminal(self) -> bool:
        """True for ``Completed`` and ``Failed``."""
        return self in (RequestStatus.COMPLETED, RequestStatus.FAILED)


class ImageStatus(StrEnum):
    """Status of one image of a request."""

    PENDING = "pending"
    PROCESSING = "processing"
    DONE = "done"
    FAILED = "failed"

    @property
    def is_terminal(self) -> bool:
        """True for ``done`` and ``failed``."""
        return self in (ImageStatus.DONE, ImageStatus.FAILED)


def settle(total: int, done: int, failed: int) -> RequestStatus | None:
    """The terminal status of a request once every image ended, or ``None`` while some run.

    Completed when at least one image succeeded; Failed when none did (including a request
    with no images at all, which cannot be processed).
    """
    if total < 0 or done < 0 or failed < 0 or done + failed > total:
        raise ValueError(f"inconsistent counts: total={total} done={done} failed={failed}")
    if done + failed < total:
        return None
    return RequestStatus.COMPLETED if done > 0 else RequestStatus.FAILED


def failure_summary(total: int, failed: Mapping[str, int]) -> str | None:
    """A request's ``error``: how many of its ``total`` images failed, by reason (most first).

    ``None`` when none failed. Reasons that point at the service rather than the image
    (``storage_error``) are spelt out, so a status reader sees that storage failed.
    """
    count = sum(failed.values())
    if count == 0:
        return None
    parts = [
        f"{n} {reason} ({_EXPLAINED[reason]})" if reason in _EXPLAINED else f"{n} {reason}"
        for reason, n in sorted(failed.items(), key=lambda item: (-item[1], item[0]))
        if n
    ]
    return f"{count} of {total} images failed: {', '.join(parts)}"
