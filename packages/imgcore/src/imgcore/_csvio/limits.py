"""Limits on an input CSV, and the errors that report a CSV's problems."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final, Self, TypeAlias

import msgspec

from imgcore.errors import ImgcoreError

__all__ = ["CsvIssue", "CsvLimits", "CsvLimitsError", "CsvValidationError", "Problem", "shown"]

#: A rule's verdict on a value: (machine-readable reason, sentence for people).
Problem: TypeAlias = tuple[str, str]

_SHOWN_CHARS: Final = 80  # how much of an offending value a message quotes


def shown(value: str) -> str:
    """``value`` quoted for a message, cut short if long."""
    return repr(value if len(value) <= _SHOWN_CHARS else value[:_SHOWN_CHARS] + "…")


class CsvLimitsError(ImgcoreError, ValueError):
    """A ``CsvLimits`` value is out of range."""

    reason = "invalid_limits"


class CsvLimits(msgspec.Struct, frozen=True, kw_only=True):
    """Limits applied while parsing an input CSV; every one is configurable."""

    #: Most records besides the header. Blank rows count too: they cost work to skip.
    max_rows: int = 1_000_000
    max_columns: int = 64
    max_urls_per_row: int = 50
    max_cell_bytes: int = 64 * 1024
    max_file_bytes: int = 100_000_000
    max_url_length: int = 2048
    max_errors: int = 100
    #: Longest unfinished record kept in memory; ``None`` means max_columns * max_cell_bytes.
    max_record_bytes: int | None = None

    def __post_init__(self) -> None:
        for field in self.__struct_fields__:
            value = getattr(self, field)
            if value is not None and value < 1:
                raise CsvLimitsError(f"CsvLimits.{field} must be at least 1, not {value}")

    @property
    def record_bytes(self) -> int:
        """The effective ``max_record_bytes``."""
        if self.max_record_bytes is not None:
            return self.max_record_bytes
        return self.max_columns * self.max_cell_bytes


class CsvIssue(msgspec.Struct, frozen=True, kw_only=True):
    """One problem found in an input CSV."""

    #: 1-based physical record number: the header is row 1, the first data row is 2.
    row: int | None
    #: The header name as written in the file (the expected name for a missing column),
    #: or None for problems that concern the whole file or a whole row.
    column: str | None
    #: Machine-readable code, e.g. "invalid_url".
    reason: str
    #: A sentence for people.
    message: str

    def __str__(self) -> str:
        where = []
        if self.row is not None:
            where.append(f"row {self.row}")
        if self.column is not None:
            where.append(f"column {self.column!r}")
        return f"{', '.join(where)}: {self.message}" if where else self.message


class CsvValidationError(ImgcoreError):
    """The input CSV was rejected; ``issues`` lists every problem found (up to the cap)."""

    reason = "invalid_csv"

    def __init__(self, issues: Sequence[CsvIssue], truncated: bool = False) -> None:
        self.issues: list[CsvIssue] = list(issues)
        #: True when more problems existed than ``CsvLimits.max_errors``.
        self.truncated = truncated
        count = f"{len(issues)}{'+' if truncated else ''}"
        text = "; ".join(str(issue) for issue in issues[:3])
        more = "; …" if len(issues) > 3 or truncated else ""
        super().__init__(f"invalid CSV ({count} problem(s)): {text}{more}")

    def __reduce__(self) -> tuple[type[Self], tuple[list[CsvIssue], bool]]:
        return (type(self), (self.issues, self.truncated))
