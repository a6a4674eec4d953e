"""The output CSV writer, with spreadsheet formula injection neutralised."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Iterator
from typing import Final

import msgspec

from imgcore._csvio.header import CsvHeader
from imgcore.errors import ImgcoreError

__all__ = ["ERRORS_COLUMN", "OUTPUT_URLS_COLUMN", "OutputRow", "write_output_csv"]

OUTPUT_URLS_COLUMN: Final = "Output Image Urls"
ERRORS_COLUMN: Final = "Errors"

# A spreadsheet runs a cell starting with one of these as a formula (=HYPERLINK(...) can leak
# data, =cmd|... has run commands): OWASP "CSV Injection" recommends a leading single quote,
# which makes the cell plain text. It also changes values such as "-5" into "'-5".
_FORMULA_START: Final = ("=", "+", "-", "@", "\t", "\r")


class OutputRow(msgspec.Struct, frozen=True, kw_only=True):
    """One row of the output CSV."""

    serial: int
    name: str
    input_urls: tuple[str, ...]
    output_urls: tuple[str | None, ...]  # same length and order as input_urls; None: no output
    errors: tuple[str, ...] = ()  # human error lines, e.g. "2: HTTP 404 Not Found"
    extra: tuple[str, ...] = ()
    more: tuple[str, ...] = ()  # the cells of write_output_csv's more_columns


def _neutralise(cell: str) -> str:
    return "'" + cell if cell.startswith(_FORMULA_START) else cell


def write_output_csv(
    header: CsvHeader,
    rows: Iterable[OutputRow],
    *,
    include_header: bool = True,
    chunk_bytes: int = 64 * 1024,
    more_columns: tuple[str, ...] = (),
) -> Iterator[bytes]:
    """Stream the output CSV as UTF-8 chunks of about ``chunk_bytes``.

    ``include_header=False`` leaves out the header line, to write a long file page by page.

    Columns: the input header's columns as written, then "Output Image Urls",
    ``more_columns`` (a preset's further variants and details, each row's ``more``) and
    "Errors".
    Output URLs are positional (an empty item where an image has no output); errors are joined
    by "; ". Cells that a spreadsheet would run as a formula get a leading single quote.
    """
    buffer = io.StringIO()
    writer = csv.writer(buffer)  # CRLF line endings, minimal quoting
    ncols = len(header.columns)
    extra_indices = header.extra_indices
    if include_header:
        columns = (*header.columns, OUTPUT_URLS_COLUMN, *more_columns, ERRORS_COLUMN)
        writer.writerow([_neutralise(c) for c in columns])
    for row in rows:
        if (
            len(row.output_urls) != len(row.input_urls)
            or len(row.extra) != len(extra_indices)
            or len(row.more) != len(more_columns)
        ):
            raise ImgcoreError(
                f"output row {row.serial}: {len(row.input_urls)} input URLs,"
                f" {len(row.output_urls)} output URLs, {len(row.extra)} extra values"
                f" for {len(extra_indices)} extra columns",
                reason="output_row_mismatch",
            )
        cells = [""] * ncols
        cells[header.serial_index] = str(row.serial)
        cells[header.name_index] = row.name
        cells[header.urls_index] = ",".join(row.input_urls)
        for index, value in zip(extra_indices, row.extra, strict=True):
            cells[index] = value
        cells.append(",".join(url or "" for url in row.output_urls))
        cells.extend(row.more)
        cells.append("; ".join(row.errors))
        writer.writerow([_neutralise(c) for c in cells])
        if buffer.tell() >= chunk_bytes:
            yield buffer.getvalue().encode()
            buffer.seek(0)
            buffer.truncate()
    if buffer.tell():
        yield buffer.getvalue().encode()
