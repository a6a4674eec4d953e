"""The base of every exception imgcore raises on purpose."""

from __future__ import annotations


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
