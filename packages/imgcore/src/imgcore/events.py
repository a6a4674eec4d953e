"""Events passed to observing hooks."""

from __future__ import annotations

from uuid import UUID

import msgspec

from imgcore.states import ImageStatus

__all__ = ["ImageEnded"]


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
