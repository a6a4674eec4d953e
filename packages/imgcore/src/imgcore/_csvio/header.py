"""Header rules: which header names the required columns, and where they are."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final

import msgspec

from imgcore._csvio.limits import Problem

__all__ = ["HEADER_ALIASES", "CsvHeader", "count_cells", "read_header"]

SERIAL: Final = "serial"
NAME: Final = "name"
URLS: Final = "urls"

#: Normalised header name (lowercase, alphanumerics only) -> the required column it names.
HEADER_ALIASES: Final[dict[str, str]] = {
    "sno": SERIAL,
    "srno": SERIAL,
    "slno": SERIAL,
    "serial": SERIAL,
    "serialno": SERIAL,
    "serialnum": SERIAL,
    "serialnumber": SERIAL,
    "productname": NAME,
    "product": NAME,
    "name": NAME,
    "inputimageurls": URLS,
    "inputimageurl": URLS,
    "inputimages": URLS,
    "imageurls": URLS,
    "imageurl": URLS,
    "urls": URLS,
}
_DISPLAY: Final = {SERIAL: "S. No.", NAME: "Product Name", URLS: "Input Image Urls"}


class CsvHeader(msgspec.Struct, frozen=True, kw_only=True):
    """The header record of an input CSV and where the required columns are."""

    columns: tuple[str, ...]  # every header cell as written (BOM removed)
    serial_index: int
    name_index: int
    urls_index: int

    @property
    def extra_indices(self) -> tuple[int, ...]:
        """Positions of the extra columns, in order."""
        known = (self.serial_index, self.name_index, self.urls_index)
        return tuple(i for i in range(len(self.columns)) if i not in known)

    @property
    def extra_columns(self) -> tuple[str, ...]:
        """Names of the extra columns, in order."""
        return tuple(self.columns[i] for i in self.extra_indices)


def _normalise(name: str) -> str:
    return "".join(ch for ch in name.lower() if ch.isalnum())


def count_cells(line: str) -> int:
    """Cells in one CSV line, counting only commas outside quotes (cheap, for the header)."""
    return 1 + sum(part.count(",") for part in line.split('"')[::2])


def read_header(row: Sequence[str]) -> tuple[CsvHeader | None, list[tuple[str, Problem]]]:
    """The header a record states, or None and the problems as (column, problem) pairs.

    Names are compared ignoring case, spaces and punctuation; each required column must be
    named once, and no two columns may share a name.
    """
    problems: list[tuple[str, Problem]] = []
    first_by_norm: dict[str, str] = {}
    roles: dict[str, int] = {}
    for index, name in enumerate(row):
        norm = _normalise(name)
        role = HEADER_ALIASES.get(norm)
        if norm and norm in first_by_norm:
            message = (
                f"column {name!r} repeats column {first_by_norm[norm]!r}"
                " (names are compared ignoring case, spaces and punctuation)"
            )
            problems.append((name, ("duplicate_column", message)))
        elif role is not None and role in roles:
            message = f"column {name!r} names the same column as {row[roles[role]]!r}"
            problems.append((name, ("duplicate_column", message)))
        first_by_norm.setdefault(norm, name)
        if role is not None:
            roles.setdefault(role, index)
    for role in (SERIAL, NAME, URLS):
        if role not in roles:
            message = f"the header has no {_DISPLAY[role]!r} column"
            problems.append((_DISPLAY[role], ("missing_column", message)))
    if problems:
        return None, problems
    header = CsvHeader(
        columns=tuple(row),
        serial_index=roles[SERIAL],
        name_index=roles[NAME],
        urls_index=roles[URLS],
    )
    return header, []
