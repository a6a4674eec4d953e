"""The request and image status machines: pure functions, no I/O.

The request statuses are the exact strings the original Django app's clients compare
(``"Pending"``, ``"In Process"``, ``"Completed"``, ``"Failed"``).
"""

from __future__ import annotations

from enum import StrEnum

from imgcore.errors import ImgcoreError

__all__ = [
    "IMAGE_TRANSITIONS",
    "REQUEST_TRANSITIONS",
    "IllegalTransitionError",
    "ImageStatus",
    "RequestStatus",
    "image_transition",
    "request_transition",
    "settle",
]


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


class IllegalTransitionError(ImgcoreError):
    """A status change the machine does not allow."""

    reason = "illegal_transition"

    def __init__(self, kind: str, current: str, target: str) -> None:
        super().__init__(f"illegal {kind} transition: {current!r} -> {target!r}")
        self.kind = kind
        self.current = current
        self.target = target


_R = RequestStatus
_I = ImageStatus

REQUEST_TRANSITIONS: dict[RequestStatus, frozenset[RequestStatus]] = {
    _R.PENDING: frozenset({_R.IN_PROCESS}),
    _R.IN_PROCESS: frozenset({_R.COMPLETED, _R.FAILED}),
    # Retrying failed images reopens a finished request.
    _R.COMPLETED: frozenset({_R.IN_PROCESS}),
    _R.FAILED: frozenset({_R.IN_PROCESS}),
}
"""Allowed request transitions: Pending → In Process → Completed | Failed (→ In Process: retry)."""

IMAGE_TRANSITIONS: dict[ImageStatus, frozenset[ImageStatus]] = {
    _I.PENDING: frozenset({_I.PROCESSING}),
    # Back to pending: a transient error waiting for its next attempt, or a graceful shutdown.
    _I.PROCESSING: frozenset({_I.DONE, _I.FAILED, _I.PENDING}),
    _I.DONE: frozenset(),
    # A retry asked for by an operator.
    _I.FAILED: frozenset({_I.PENDING}),
}
"""Allowed image transitions: pending → processing → done | failed (| pending to retry)."""


def request_transition(current: RequestStatus, target: RequestStatus) -> RequestStatus:
    """Return ``target`` if a request may move there from ``current``, else raise."""
    if target not in REQUEST_TRANSITIONS[current]:
        raise IllegalTransitionError("request", current.value, target.value)
    return target


def image_transition(current: ImageStatus, target: ImageStatus) -> ImageStatus:
    """Return ``target`` if an image may move there from ``current``, else raise."""
    if target not in IMAGE_TRANSITIONS[current]:
        raise IllegalTransitionError("image", current.value, target.value)
    return target


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
