"""Every exception imgcore raises on purpose, each with a machine-readable ``reason``."""

from __future__ import annotations

__all__ = [
    "ImageNotFoundError",
    "ImgcoreError",
    "RequestNotFoundError",
    "StorageError",
]


class ImgcoreError(Exception):
    """Base class of imgcore's typed errors.

    ``reason`` is a short machine-readable code (``"missing_column"``,
    ``"blocked_address"``, ``"decompression_bomb"``…); the message is for people.
    """

    reason: str = "error"

    def __init__(self, message: str, *, reason: str | None = None) -> None:
        super().__init__(message)
        if reason is not None:
            self.reason = reason

    @property
    def message(self) -> str:
        """The human-readable message."""
        return str(self.args[0]) if self.args else ""


class StorageError(ImgcoreError):
    """A storage operation failed (``transient`` when retrying may help)."""

    reason = "storage_error"

    def __init__(self, message: str, *, transient: bool = True) -> None:
        super().__init__(message)
        self.transient = transient


class RequestNotFoundError(ImgcoreError):
    """No request has this id."""

    reason = "not_found"

    def __init__(self, request_id: object) -> None:
        super().__init__(f"no request with id {request_id}")
        self.request_id = request_id


class ImageNotFoundError(RequestNotFoundError):
    """The request (if there is one) has no done image with this id."""

    def __init__(self, request_id: object, image_id: int) -> None:
        super().__init__(request_id)
        self.args = (f"no done image {image_id} in request {request_id}",)
        self.image_id = image_id
