"""Where records and cells begin in raw CSV text, to say which cell a broken record broke in."""

from __future__ import annotations

import re
from typing import Final

__all__ = ["bad_quote_cell", "open_cell"]

_CSV_TOKEN: Final = re.compile(r'[^",\r\n]+|.', re.DOTALL)
_MAX_QUOTE_TOKENS: Final = 100_000  # bounds the scan of a hostile record


def open_cell(prefix: bytes) -> tuple[int, int]:
    """For the start of a record: the index of the cell it ends in, and that cell's offset.

    Commas inside quotes do not count (a doubled quote toggles twice, so it is neutral).
    """
    index = start = offset = 0
    for i, part in enumerate(prefix.split(b'"')):
        if i % 2 == 0 and (commas := part.count(b",")):
            index += commas
            start = offset + part.rindex(b",") + 1
        offset += len(part) + 1
    return index, start


def bad_quote_cell(record: str, ncols: int) -> int | None:
    """Index of the cell whose closing quote is followed by text (what csv's strict mode
    refuses) in ``record``; None if not found within the first ``ncols`` cells."""
    index, state = 0, "start"  # start of a cell, unquoted "field", "quoted", "closed" quote
    for count, match in enumerate(_CSV_TOKEN.finditer(record)):
        piece = match[0]
        if count > _MAX_QUOTE_TOKENS:
            return None
        if state == "quoted":
            state = "closed" if piece == '"' else "quoted"
        elif piece in "\r\n":
            return None  # the record ended without the error
        elif piece == ",":
            index, state = index + 1, "start"
            if index >= ncols:
                return None
        elif state == "closed":
            if piece != '"':
                return index
            state = "quoted"  # a doubled quote
        elif state == "start":
            state = "quoted" if piece == '"' else "field"
    return None
