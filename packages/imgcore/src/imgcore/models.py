"""What the engine hands back: plain msgspec Structs, ready to encode as JSON."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any
from uuid import UUID

import msgspec

from imgcore.states import ImageStatus, RequestStatus

__all__ = [
    "DeliveryInfo",
    "ImageInfo",
    "ImageProgress",
    "ProductInfo",
    "ProductProgress",
    "RequestInfo",
    "VariantOutput",
    "output_url",
    "variant_outputs",
]


class RequestInfo(msgspec.Struct, frozen=True, kw_only=True):
    """One upload: its status and progress."""

    request_id: UUID
    status: RequestStatus
    filename: str | None
    webhook_url: str | None
    total_products: int
    total: int
    done: int
    failed: int
    input_bytes: int
    output_bytes: int
    error: str | None
    created_at: datetime
    updated_at: datetime
    finished_at: datetime | None
    columns: tuple[str, ...] = ()
    preset: str = "default"
    """The name of the preset the request chose (its definition is recorded with it)."""
    client: str | None = None
    """Who submitted it (the API's client id); None for requests submitted locally."""
    cancelled_at: datetime | None = None
    reused: int = 0
    """Of ``done``, the images whose outputs were reused from an earlier import."""

    @property
    def pending(self) -> int:
        """Images that have not ended yet."""
        return self.total - self.done - self.failed


class VariantOutput(msgspec.Struct, frozen=True, kw_only=True):
    """One stored variant of a done image (see :mod:`imgcore.presets`)."""

    name: str
    url: str
    format: str
    width: int
    height: int
    bytes: int
    key: str = msgspec.field(default="")
    """Its storage key (``url`` is where clients fetch it)."""


def variant_outputs(
    recorded: list[dict[str, Any]] | None, url_for: Callable[[str], str]
) -> tuple[VariantOutput, ...]:
    """The variants an image recorded, with their URLs (none before it is done)."""
    return tuple(
        VariantOutput(
            name=v["name"],
            url=url_for(v["key"]),
            format=v["format"],
            width=v["width"],
            height=v["height"],
            bytes=v["bytes"],
            key=v["key"],
        )
        for v in recorded or ()
    )


class ImageInfo(msgspec.Struct, frozen=True, kw_only=True):
    """One image of a product, in the order of the input cell."""

    id: int
    position: int
    input_url: str
    status: ImageStatus
    attempts: int
    output_url: str | None = None
    storage_key: str | None = None
    thumbnail_key: str | None = None
    error_reason: str | None = None
    error: str | None = None
    input_bytes: int | None = None
    output_bytes: int | None = None
    input_width: int | None = None
    input_height: int | None = None
    output_width: int | None = None
    output_height: int | None = None
    input_format: str | None = None
    output_format: str | None = None
    started_at: datetime | None = None
    finished_at: datetime | None = None
    variants: tuple[VariantOutput, ...] = ()
    """Each variant stored, in preset order (URLs filled in by the engine)."""
    content_hash: str | None = None
    """SHA-256 of the downloaded source, hex."""
    reused: str | None = None
    """Why the outputs were reused rather than made: ``not_modified`` (the origin answered
    304), ``same_content`` (it sent the same bytes, or the request had fetched the URL for
    another row), ``max_age`` (checked recently enough not to ask); None when made."""


class ProductInfo(msgspec.Struct, frozen=True, kw_only=True):
    """One row of the input CSV with its images."""

    position: int
    row: int
    serial: int
    name: str
    extra: tuple[str, ...] = ()
    images: tuple[ImageInfo, ...] = ()


class ImageProgress(msgspec.Struct, frozen=True, kw_only=True):
    """An image as a status poll shows it: its URLs and how it ended (see :class:`ImageInfo`
    for everything recorded about it)."""

    position: int
    input_url: str
    status: ImageStatus
    output_url: str | None = None
    error_reason: str | None = None
    error: str | None = None
    variants: tuple[VariantOutput, ...] = ()
    source_width: int | None = None
    source_height: int | None = None
    content_hash: str | None = None
    reused: str | None = None
    """As :attr:`ImageInfo.reused`."""


class ProductProgress(msgspec.Struct, frozen=True, kw_only=True):
    """A product as a status poll shows it (see :class:`ProductInfo` for the whole row)."""

    position: int
    serial: int
    name: str
    images: tuple[ImageProgress, ...] = ()


class DeliveryInfo(msgspec.Struct, frozen=True, kw_only=True):
    """One notification of a finished request (a webhook call, or a plugin's)."""

    id: int
    message_id: str
    notifier: str
    event: str
    target: str | None
    status: str
    attempts: int
    last_status_code: int | None
    last_error: str | None
    created_at: datetime
    delivered_at: datetime | None
    next_attempt_at: datetime | None


def output_url(
    status: ImageStatus, storage_key: str | None, url_for: Callable[[str], str]
) -> str | None:
    """An image's output URL: ``url_for(storage_key)`` once it is done, else None."""
    return url_for(storage_key) if status is ImageStatus.DONE and storage_key else None
