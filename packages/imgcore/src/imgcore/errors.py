"""Every exception imgcore raises on purpose, each with a machine-readable ``reason``."""

from __future__ import annotations

__all__ = [
    "BlockedAddressError",
    "CorruptImageError",
    "DecompressionBombError",
    "FetchError",
    "ImageError",
    "ImageNotFoundError",
    "ImgcoreError",
    "InvalidOptionsError",
    "OutOfRangeError",
    "RequestNotFoundError",
    "RequestStateError",
    "StorageError",
    "TooManyImagesError",
    "UnknownPresetError",
    "UnsupportedImageError",
    "WebhookURLError",
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


class RequestStateError(ImgcoreError):
    """The request's status does not allow this now (retry while it runs, cancel once ended).

    ``reason``: ``"still_running"`` or ``"already_ended"``; ``status`` is the request's status.
    """

    def __init__(self, message: str, *, reason: str, status: str) -> None:
        super().__init__(message, reason=reason)
        self.status = status


class TooManyImagesError(ImgcoreError):
    """Storing the request would leave its client more unfinished images than it may have."""

    reason = "too_many_unfinished_images"

    def __init__(self, *, unfinished: int, limit: int) -> None:
        super().__init__(
            f"this request would make {unfinished} images not finished yet, "
            f"over the limit of {limit}: wait until earlier requests finish"
        )
        self.unfinished = unfinished
        self.limit = limit


class ImageNotFoundError(RequestNotFoundError):
    """The request (if there is one) has no done image with this id."""

    def __init__(self, request_id: object, image_id: int) -> None:
        super().__init__(request_id)
        self.args = (f"no done image {image_id} in request {request_id}",)
        self.image_id = image_id


class UnknownPresetError(ImgcoreError, ValueError):
    """A request names a preset that is not configured; ``known`` lists those that are."""

    reason = "unknown_preset"

    def __init__(self, name: str, known: list[str]) -> None:
        super().__init__(f"no preset named {name!r} (known: {', '.join(known)})")
        self.name = name
        self.known = known


class OutOfRangeError(ImgcoreError, ValueError):
    """A number passed to the library (a page start, a limit, an id) is outside what it accepts.

    ``name`` is the argument, ``value`` what was passed, ``low`` and ``high`` the bounds.
    """

    reason = "out_of_range"

    def __init__(self, name: str, value: int, low: int, high: int) -> None:
        super().__init__(f"{name} must be between {low} and {high}, not {value}")
        self.name = name
        self.value = value
        self.low = low
        self.high = high

    def __reduce__(self) -> tuple[object, ...]:
        return (self.__class__, (self.name, self.value, self.low, self.high))


class FetchError(ImgcoreError):
    """A download that failed; ``transient`` says whether trying again may help.

    ``reason`` is one of ``http_status``, ``timeout``, ``connect_error``, ``too_large``,
    ``too_many_redirects``, ``blocked_address``, ``not_an_image``, ``invalid_url``,
    ``protocol_error``, ``deadline_exceeded`` (the image's deadline passed). ``url`` is the
    URL asked for (the message names the hop that failed), ``status`` the HTTP status if one
    was received, ``attempts`` how many attempts were made and ``retry_after`` the delay the
    server asked for, in seconds.
    """

    reason = "fetch_error"

    def __init__(
        self,
        message: str,
        *,
        reason: str | None = None,
        url: str = "",
        transient: bool = False,
        status: int | None = None,
        attempts: int = 1,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message, reason=reason)
        self.url = url
        self.transient = transient
        self.status = status
        self.attempts = attempts
        self.retry_after = retry_after

    def __reduce__(self) -> tuple[object, ...]:
        # Keyword-only attributes survive pickling (process-based executors).
        return (self.__class__, (self.message,), self.__dict__)


class BlockedAddressError(FetchError):
    """The host resolves to an address that is neither public nor allow-listed."""

    reason = "blocked_address"


class WebhookURLError(ImgcoreError):
    """A webhook URL that is malformed or points somewhere the guard blocks."""

    reason = "invalid_webhook_url"


# -- images: every codec raises these, with these reasons -----------------------------------


class ImageError(ImgcoreError):
    """An image could not be compressed."""

    reason = "image_error"


class UnsupportedImageError(ImageError):
    """The body is not an image, or not of an allowed format."""

    reason = "unsupported_format"


class DecompressionBombError(ImageError):
    """The image has more pixels than ``max_pixels`` (or unpacks to far more than it weighs)."""

    reason = "decompression_bomb"


class CorruptImageError(ImageError):
    """The image is truncated or broken."""

    reason = "corrupt_image"


class InvalidOptionsError(ImgcoreError, ValueError):
    """A compression option is out of range."""

    reason = "invalid_options"
