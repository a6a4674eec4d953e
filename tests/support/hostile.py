"""Hostile input CSVs, shared by the API and CLI tests.

Each :class:`HostileCsv` is a file that must be rejected whole, with the (row, column, reason)
of the issue that says why; :func:`endless_csv` makes a valid-looking CSV of any size lazily,
a chunk at a time, so a 1 GB upload never exists in memory or on disk.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from typing import NamedTuple

SERIAL, NAME, URLS = "S. No.", "Product Name", "Input Image Urls"
HEAD = f"{SERIAL},{NAME},{URLS}\r\n".encode()
#: A valid image URL; never fetched, since every file here is rejected.
URL = "http://127.0.0.1:9/a.jpg"


def _row(serial: object, name: str, urls: str) -> bytes:
    return f'{serial},{name},"{urls}"\r\n'.encode()


class HostileCsv(NamedTuple):
    """A CSV that must be rejected, and the issue that must say where and why."""

    id: str
    body: bytes
    row: int | None
    column: str | None
    reason: str


def hostile_csvs() -> list[HostileCsv]:
    """The corpus (about 12 MB in all; the 10 MB cell dominates)."""
    good = _row(1, "Mug", URL)
    junk = random.Random(9).randbytes(64 * 1024)
    wide_header = b",".join(b"column_%06d" % i for i in range(100_000)) + b"\r\n"
    return [
        HostileCsv("empty", b"", None, None, "empty_file"),
        HostileCsv("header-only", HEAD, None, None, "empty_file"),
        # A PNG signature starts with 0x89, which no UTF-8 text does.
        HostileCsv("binary-junk", b"\x89PNG\r\n\x1a\n" + junk, 1, None, "encoding"),
        HostileCsv("utf-16", (HEAD + good).decode().encode("utf-16"), 1, None, "encoding"),
        HostileCsv(
            "utf-16le-no-bom", (HEAD + good).decode().encode("utf-16-le"), 1, None, "nul_byte"
        ),
        HostileCsv(
            "latin-1",
            HEAD + good + _row(2, "Café crème", URL).decode().encode("latin-1"),
            3,
            NAME,
            "encoding",
        ),
        HostileCsv("nul-byte", HEAD + good + _row(2, "M\x00ug", URL), 3, NAME, "nul_byte"),
        HostileCsv("100k-column-header", wide_header + good, 1, None, "too_many_columns"),
        HostileCsv(
            "100k-cell-row",
            HEAD + good[:-2] + b",x" * 100_000 + b"\r\n",
            2,
            None,
            "too_many_columns",
        ),
        HostileCsv(
            "10mb-cell",
            HEAD + b'1,"' + b"x" * 10_000_000 + b'",' + URL.encode() + b"\r\n",
            2,
            NAME,
            "record_too_long",
        ),
        # The quote opened in row 3 is never closed: the rest of the file is one cell.
        HostileCsv(
            "unbalanced-quotes",
            HEAD + good + b'2,"Cup,' + URL.encode() + b"\r\n3,Pot," + URL.encode() + b"\r\n",
            3,
            NAME,
            "unbalanced_quotes",
        ),
        # The quote opened in row 3 closes at the next quote, in row 4, followed by text.
        HostileCsv(
            "stray-quote",
            HEAD + good + b'2,"Cup,' + URL.encode() + b"\r\n" + _row(3, "Pot", URL),
            3,
            NAME,
            "invalid_quoting",
        ),
        HostileCsv("formula-serial", HEAD + _row("=1+1", "Mug", URL), 2, SERIAL, "invalid_serial"),
        HostileCsv(
            "formula-url",
            HEAD + b'1,Mug,"=HYPERLINK(""http://evil.example/"",""x"")"\r\n',
            2,
            URLS,
            "invalid_url",
        ),
        HostileCsv(
            "duplicate-serial", HEAD + good + _row(1, "Cup", URL), 3, SERIAL, "duplicate_serial"
        ),
        # Error reports quote cells: a terminal UI must not read them as markup.
        HostileCsv("markup-in-cell", HEAD + _row(1, "Mug", "[/red]"), 2, URLS, "invalid_url"),
        HostileCsv(
            "url-credentials",
            HEAD + _row(1, "Mug", "http://admin:hunter2@127.0.0.1:9/a.jpg"),
            2,
            URLS,
            "url_credentials",
        ),
        HostileCsv(
            "file-scheme",
            HEAD + _row(1, "Mug", "file:///etc/passwd"),
            2,
            URLS,
            "unsupported_scheme",
        ),
        HostileCsv(
            "gopher-scheme",
            HEAD + _row(1, "Mug", "gopher://127.0.0.1:6379/_FLUSHALL"),
            2,
            URLS,
            "unsupported_scheme",
        ),
        HostileCsv(
            "javascript-scheme",
            HEAD + _row(1, "Mug", "javascript:alert(document.cookie)"),
            2,
            URLS,
            "unsupported_scheme",
        ),
    ]


#: Product names a spreadsheet would run as formulas; valid input, neutralised on output.
FORMULA_NAMES = ("=cmd|' /C calc'!A0", "+1+1", "-2+3", "@SUM(1,2)")


def endless_csv(total_bytes: int, cell_bytes: int = 60_000) -> Iterator[bytes]:
    """A valid CSV of about ``total_bytes``, one row per chunk, made as it is consumed.

    Each row carries a wide ``Notes`` cell so that the file reaches any size in a few
    hundred rows per 20 MB: every limit but the byte limit stays far away.
    """
    yield HEAD.replace(b"\r\n", b",Notes\r\n")
    note = b"n" * cell_bytes
    sent = len(HEAD)
    serial = 0
    while sent < total_bytes:
        serial += 1
        chunk = b'%d,P%d,"%s",%s\r\n' % (serial, serial, URL.encode(), note)
        sent += len(chunk)
        yield chunk
