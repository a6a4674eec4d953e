"""Row rules: each function states one thing a data row must satisfy.

The parser calls these for every row; there is no second, faster statement of them. A rule
that can be decided cheaply in the common case does so inside its own function.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final

from imgcore._csvio.limits import CsvLimits, Problem, shown

__all__ = [
    "MAX_SERIAL",
    "SeenSerials",
    "cell_count_problem",
    "cell_too_long",
    "is_blank",
    "name_problem",
    "oversized_cells",
    "serial_problem",
    "too_many_columns",
]

MAX_SERIAL: Final = 2**63 - 1  # fits a signed 64-bit database column


def is_blank(row: Sequence[str]) -> bool:
    """Whether a record is blank: no cells, or only empty or whitespace cells."""
    # One join and strip: a valid row stops at its first character.
    return not "".join(row).strip()


def too_many_columns(cells: int, limits: CsvLimits, *, header: bool = False) -> Problem | None:
    """A record (the header or a row) with more cells than ``limits.max_columns``."""
    if cells <= limits.max_columns:
        return None
    what = "the header has {} columns" if header else "the row has {} cells"
    return (
        "too_many_columns",
        f"{what.format(cells)}; at most {limits.max_columns} are allowed",
    )


def cell_count_problem(cells: int, columns: int) -> Problem | None:
    """A row whose cell count differs from the header's."""
    if cells == columns:
        return None
    return (
        "wrong_cell_count",
        f"the row has {cells} cells but the header has {columns}"
        " (a cell holding commas must be quoted)",
    )


def oversized_cells(row: Sequence[str], limits: CsvLimits) -> list[tuple[int, Problem]]:
    """The cells longer than ``limits.max_cell_bytes`` in UTF-8, by position."""
    max_bytes = limits.max_cell_bytes
    # UTF-8 needs at most 4 bytes a character: short rows need no encoding (the common case).
    if len("".join(row)) * 4 <= max_bytes:
        return []
    problems = []
    for index, cell in enumerate(row):
        if len(cell) * 4 > max_bytes and (size := len(cell.encode())) > max_bytes:
            problems.append((index, cell_too_long(limits, size)))
    return problems


def cell_too_long(limits: CsvLimits, size: int | None = None) -> Problem:
    """The problem of a cell longer than ``limits.max_cell_bytes``; ``size`` if it is known."""
    if size is None:  # the csv module refused the cell before it was measured
        return "cell_too_long", f"a cell is longer than {limits.max_cell_bytes} bytes"
    return (
        "cell_too_long",
        f"the cell has {size} bytes; at most {limits.max_cell_bytes} are allowed",
    )


class SeenSerials:
    """The serial numbers seen so far: a bitmap for small ones, a set for the rest."""

    def __init__(self, max_rows: int) -> None:
        self._bits = bytearray()
        # The bitmap covers serials below 8 * max_rows, so it never exceeds max_rows bytes.
        self._bits_cap = max(8 * max_rows, 1 << 16)
        self._big: set[int] = set()

    def add(self, serial: int) -> bool:
        """Record ``serial``; return whether it was seen before."""
        if serial >= self._bits_cap:
            if serial in self._big:
                return True
            self._big.add(serial)
            return False
        bits = self._bits
        index = serial >> 3
        if index >= len(bits):
            grow = max(index + 1, 2 * len(bits), 4096)
            bits.extend(bytes(min(grow, (self._bits_cap >> 3) + 1) - len(bits)))
        mask = 1 << (serial & 7)
        if bits[index] & mask:
            return True
        bits[index] |= mask
        return False


def serial_problem(raw: str, seen: SeenSerials) -> tuple[int, Problem | None]:
    """The serial number a cell states, and why it is not acceptable (None: it is).

    A serial is a positive whole number of at most 63 bits, spaces around it ignored, that no
    earlier row used. A valid serial is recorded in ``seen``, so a repeat is the duplicate.
    """
    text = raw if raw.isdigit() else raw.strip()
    serial = 0
    if text.isdigit() and text.isascii() and len(text) <= 30:
        serial = int(text)
    if not 0 < serial <= MAX_SERIAL:
        return 0, ("invalid_serial", f"{shown(raw)} is not a positive whole number")
    if seen.add(serial):
        return serial, ("duplicate_serial", f"serial number {serial} appears more than once")
    return serial, None


def name_problem(name: str) -> Problem | None:
    """A product name (stripped of surrounding whitespace) that is empty."""
    return None if name else ("empty_name", "the product name is empty")
