"""The types a plugin implements or receives: storage, notifiers, executors and their data.

Plugin authors import these from :mod:`imgcore.plugin`, which re-exports them with the hook
markers.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from pathlib import PurePosixPath
from typing import Any, Protocol, runtime_checkable
from uuid import UUID

import anyio
import anyio.abc
import msgspec

from imgcore.errors import StorageError
from imgcore.states import ImageStatus, RequestStatus

__all__ = [
    "Claim",
    "DeliveryClaim",
    "DeliveryOutcome",
    "Executor",
    "ImageEnded",
    "Notifier",
    "Settlement",
    "Storage",
    "Work",
    "check_key",
    "image_key",
    "safe_key",
]


# -- data handed to plugins -----------------------------------------------------------------


class Claim(msgspec.Struct, frozen=True, kw_only=True):
    """An image this worker now holds a lease on."""

    id: int
    request_id: UUID
    url: str
    attempts: int
    started_at: datetime | None = None
    """When the image was first claimed (kept across attempts and restarts): its deadline,
    ``IMGCORE_IMAGE_DEADLINE``, counts from here. ``None``: from now."""


class Settlement(msgspec.Struct, frozen=True, kw_only=True):
    """A request that has just reached its terminal status (exactly once per finish)."""

    request_id: UUID
    status: RequestStatus
    webhook_url: str | None
    total: int
    done: int
    failed: int


class DeliveryClaim(msgspec.Struct, frozen=True, kw_only=True):
    """A notification this worker now holds a lease on."""

    id: int
    request_id: UUID
    message_id: str
    notifier: str
    event: str
    target: str | None
    payload: dict[str, Any]
    attempts: int
    created_at: datetime


class ImageEnded(msgspec.Struct, frozen=True, kw_only=True):
    """An image reached ``done`` or ``failed``."""

    request_id: UUID
    image_id: int
    url: str
    status: ImageStatus
    attempts: int
    storage_key: str | None = None
    error_reason: str | None = None
    error: str | None = None
    input_bytes: int | None = None
    output_bytes: int | None = None
    seconds: float = 0.0


# -- storage --------------------------------------------------------------------------------


def image_key(request_id: UUID, image_id: int, extension: str) -> str:
    """Where an image's objects live: ``requests/<request>/<image><extension>``, one fixed key
    per image and kind (output, thumbnail), so storing again replaces, never adds."""
    return f"requests/{request_id}/{image_id}{extension}"


def safe_key(key: str) -> PurePosixPath:
    """Validate a storage key: relative, ``/``-separated, no ``..``, no empty or hidden parts."""
    check_key(key)
    return PurePosixPath(key)


def check_key(key: str) -> None:
    """:func:`safe_key` without building a path (output URLs are made for every status read)."""
    # An empty part is a leading, trailing or doubled "/"; "." and ".." and hidden names are
    # the parts that start with ".", at the start of the key or after a "/".
    if (
        not key
        or key[0] in "/."
        or key[-1] == "/"
        or "//" in key
        or "/." in key
        or "\\" in key
        or "\x00" in key
    ):
        raise StorageError(f"invalid storage key: {key!r}", transient=False)


@runtime_checkable
class Storage(Protocol):
    """A place to put bytes under keys like ``requests/<id>/<image>.jpg``.

    Keys use ``/`` separators and never start with ``/`` or contain ``..``. ``put`` must be
    atomic (a reader sees the whole object or nothing) and idempotent (putting the same key
    again replaces it), which is what makes re-processing after a crash safe.
    """

    async def put(self, key: str, data: bytes, *, content_type: str) -> None:
        """Store ``data`` under ``key``, replacing what was there."""
        ...

    async def get(self, key: str) -> bytes:
        """The bytes under ``key``; raises ``KeyError`` when there are none."""
        ...

    async def delete(self, key: str) -> None:
        """Remove ``key``; a missing key is not an error."""
        ...

    def url_for(self, key: str) -> str:
        """The URL a client fetches ``key`` from."""
        ...

    async def aclose(self) -> None:
        """Release connections and files."""
        ...


# -- notifiers ------------------------------------------------------------------------------


class DeliveryOutcome(msgspec.Struct, frozen=True, kw_only=True):
    """How one delivery attempt went.

    ``delivered``: done. Otherwise ``retry`` says whether to try again later (a receiver that
    is down or answers 5xx) or give up (a receiver that answered 410 Gone, or a permanent error).
    """

    delivered: bool
    retry: bool = True
    status_code: int | None = None
    error: str | None = None


@runtime_checkable
class Notifier(Protocol):
    """Delivers notifications of finished requests.

    ``name`` is stored with each delivery and must be unique among loaded notifiers and
    stable across versions: a delivery recorded under a name no loaded notifier has waits
    until one does. Delivery is at least once (a crash mid-attempt means another attempt),
    so receivers de-duplicate on the delivery's ``message_id``.

    A notifier holding connections or files may also define ``async def aclose(self)``;
    it is called when delivery stops, and a later ``deliver`` must work again.
    """

    name: str

    def target(self, settlement: Settlement) -> str | None:
        """Where to notify about ``settlement``, or ``None`` to stay silent."""
        ...

    def payload(self, settlement: Settlement) -> dict[str, Any]:
        """The JSON-able body of the notification (stored, then sent on every attempt)."""
        ...

    async def deliver(self, delivery: DeliveryClaim) -> DeliveryOutcome:
        """Make one delivery attempt; never raise for an unreachable receiver.

        Bound the attempt in time (the delivery is leased for 60 s; an attempt still
        running after that may be repeated elsewhere). An exception counts as a failed
        attempt to retry.
        """
        ...

    def retry_delay(self, attempts: int) -> float | None:
        """Seconds before attempt ``attempts + 1`` (``attempts`` made so far, from 1), or
        ``None`` to give up."""
        ...


# -- executors ------------------------------------------------------------------------------


class Work(Protocol):
    """What an executor works with: leases on the images waiting in the database, and the
    pipeline that takes a leased image to its next state.

    The engine builds it and hands it to the ``imgcore_executor`` hook. Every method is one
    short database transaction (but :meth:`process`); the database stays the truth, so an
    executor holds nothing that a crash could lose.
    """

    @property
    def owner(self) -> str:
        """This process's name on the leases it takes (unique per engine)."""
        ...

    @property
    def lease(self) -> timedelta:
        """How long a claim holds an image unless renewed (``IMGCORE_LEASE_SECONDS``)."""
        ...

    @property
    def fetch_concurrency(self) -> int:
        """Sizing hint: downloads worth running at once (``IMGCORE_FETCH_CONCURRENCY``)."""
        ...

    @property
    def compression_workers(self) -> int:
        """Sizing hint: the processes compressing images (each wants one image at a time)."""
        ...

    async def claim(self, limit: int) -> list[Claim]:
        """Lease up to ``limit`` due images: pending ones, and those whose lease expired."""
        ...

    async def claim_image(self, image_id: int) -> Claim | datetime | None:
        """Lease ``image_id`` if it is due; else when it will be (a retry time, or another
        worker's lease expiry), or ``None`` when it has ended or does not exist."""
        ...

    async def due_at(self, image_id: int) -> datetime | None:
        """When an unfinished image may next be claimed; ``None`` once it has ended."""
        ...

    async def pending_ids(
        self, request_id: UUID | None, *, after: int = 0, limit: int = 1000
    ) -> list[int]:
        """Ids above ``after`` of unfinished images (of a request, or of all), ascending."""
        ...

    async def process(self, claim: Claim) -> None:
        """Download, compress, store and record a leased image; never raises for a bad image.

        A transient error leaves the image pending until its retry time; a lost lease
        leaves it to the worker that holds it now.
        """
        ...

    async def renew(self, ids: Sequence[int]) -> int:
        """Extend this owner's leases on ``ids`` by :attr:`lease`; returns how many it holds."""
        ...

    async def defer(self, claim: Claim, *, error_reason: str, error: str) -> bool:
        """Give a leased image back as pending, due now, its attempt counted and the reason
        recorded (a job that was cancelled, say); ``False`` if the lease was lost."""
        ...

    async def release(self) -> int:
        """Give back every image this owner holds, uncounted (a graceful shutdown)."""
        ...


@runtime_checkable
class Executor(Protocol):
    """Runs the pipeline on pending images until cancelled.

    The database is the truth: an executor claims images through its :class:`Work` (or
    receives ids it then claims), processes them with ``work.process`` and may be killed at
    any moment.
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
