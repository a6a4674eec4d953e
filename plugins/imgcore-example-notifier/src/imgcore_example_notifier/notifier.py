"""A notifier that appends one JSON line per finished request to a file."""

from __future__ import annotations

import os
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import anyio
import msgspec
from imgcore.plugin import DeliveryClaim, DeliveryOutcome, Settlement

__all__ = ["LOG_ENV", "JsonLinesNotifier"]

LOG_ENV = "IMGCORE_EXAMPLE_LOG"
"""The environment variable naming the file; unset, the notifier is not loaded."""


class JsonLinesNotifier:
    """Appends ``{"message_id", "event", "delivered_at", ...payload}`` to ``path``.

    Delivery is at least once: after a crash between the write and its recording, the line
    is written again, with the same ``message_id`` for readers to de-duplicate on.
    """

    name = "example-jsonl"

    def __init__(self, path: str | os.PathLike[str], retry_schedule: tuple[float, ...]) -> None:
        self.path = Path(path)
        self.retry_schedule = retry_schedule

    def target(self, settlement: Settlement) -> str | None:
        """The log file: every finished request is written to it."""
        return str(self.path)

    def payload(self, settlement: Settlement) -> dict[str, Any]:
        """The request's id, final status and image counts."""
        return {
            "request_id": str(settlement.request_id),
            "status": settlement.status.value,
            "total": settlement.total,
            "done": settlement.done,
            "failed": settlement.failed,
        }

    async def deliver(self, delivery: DeliveryClaim) -> DeliveryOutcome:
        """Append one line; a file that cannot be written is retried later."""
        line = msgspec.json.encode(
            {
                "message_id": delivery.message_id,
                "event": delivery.event,
                "delivered_at": datetime.now(UTC).isoformat(),
                **delivery.payload,
            }
        )
        try:
            await anyio.to_thread.run_sync(_append, Path(delivery.target or self.path), line)
        except OSError as exc:
            return DeliveryOutcome(delivered=False, retry=True, error=f"cannot write: {exc}")
        return DeliveryOutcome(delivered=True)

    def retry_delay(self, attempts: int) -> float | None:
        """imgcore's webhook schedule, without jitter (one writer, nobody to spread out)."""
        if attempts > len(self.retry_schedule):
            return None
        return self.retry_schedule[attempts - 1]


def _append(path: Path, line: bytes) -> None:
    # One write() on an O_APPEND descriptor: concurrent writers never interleave a line.
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, line + b"\n")
    finally:
        os.close(fd)
