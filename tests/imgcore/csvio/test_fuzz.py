"""Properties of the CSV push parser on structured input: files written by the stdlib ``csv``
module (an independent writer) with any header spelling, column order, quoting and blank
lines parse back to exactly their rows, and valid or broken, a file gives the same verdict
however it is cut into chunks and whatever the parser's window.

(``test_parser.py`` has the same chunking property on arbitrary bytes, which mostly fail at
the header; these reach deep into files, across window boundaries.)
"""

from __future__ import annotations

import csv
import io

from hypothesis import given, settings
from hypothesis import strategies as st
from imgcore._csvio import HEADER_ALIASES, CsvValidationError, Product
from support.csvgen import image_url, parse_chunks

PROPERTY = settings(max_examples=150, deadline=None)

_SEPARATORS = ["", "", "", " ", ".", "_", "-", "(", ")"]


@st.composite
def spellings(draw: st.DrawFn, column: str) -> str:
    """A header name the parser reads as ``column``: an alias in any case, punctuated."""
    alias = draw(st.sampled_from(sorted(a for a, c in HEADER_ALIASES.items() if c == column)))
    out = []
    for char in alias:
        out.append(char.upper() if draw(st.booleans()) else char)
        out.append(draw(st.sampled_from(_SEPARATORS)))
    return "".join(out).strip()


# Any text a spreadsheet cell may hold (quotes, commas, line breaks, non-ASCII), but no NUL.
_TEXT = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"))
_NAMES = _TEXT.map(str.strip).filter(bool)
_URLS = st.builds(image_url, st.integers(1, 10**6), st.integers(1, 9))
_EXTRA_COLUMNS = ["Notes", "Colour", "Weight (kg)", "Vendor"]


@st.composite
def valid_csvs(draw: st.DrawFn) -> tuple[bytes, list[Product]]:
    """A valid CSV and the products it holds."""
    required = [
        draw(spellings("serial")),
        draw(spellings("name")),
        draw(spellings("urls")),
    ]
    extras = draw(st.lists(st.sampled_from(_EXTRA_COLUMNS), unique=True, max_size=2))
    order = draw(st.permutations(range(3 + len(extras))))
    serials = draw(st.lists(st.integers(1, 2**63 - 1), unique=True, min_size=1, max_size=8))
    rows = [
        (serial, draw(_NAMES), tuple(draw(st.lists(_URLS, min_size=1, max_size=4))))
        for serial in serials
    ]
    extra_values = [tuple(draw(_TEXT) for _ in extras) for _ in rows]
    blank_before = [draw(st.integers(0, 2)) for _ in rows]

    out = io.StringIO()
    # Line ending CRLF: the csv module then quotes a lone CR or LF inside a cell.
    writer = csv.writer(
        out,
        quoting=draw(st.sampled_from([csv.QUOTE_MINIMAL, csv.QUOTE_ALL])),
        lineterminator="\r\n",
    )
    header = [*required, *extras]
    writer.writerow([header[i] for i in order])
    products = []
    record = 1
    for (serial, name, urls), extra, blanks in zip(rows, extra_values, blank_before, strict=True):
        for _ in range(blanks):
            writer.writerow([])  # a blank line: skipped, but counted in row numbers
        record += blanks + 1
        cells = [str(serial), f" {name} ", ", ".join(urls), *extra]
        writer.writerow([cells[i] for i in order])
        in_file_order = tuple(cells[i] for i in order if i >= 3)
        products.append(
            Product(row=record, serial=serial, name=name, urls=urls, extra=in_file_order)
        )
    bom = b"\xef\xbb\xbf" if draw(st.booleans()) else b""
    return bom + out.getvalue().encode(), products


@st.composite
def chunkings(draw: st.DrawFn, data: bytes) -> list[bytes]:
    """``data`` cut at random points (possibly inside a UTF-8 sequence or a CRLF)."""
    cuts = sorted(set(draw(st.lists(st.integers(0, len(data)), max_size=12))))
    return [data[a:b] for a, b in zip([0, *cuts], [*cuts, len(data)], strict=True)]


def verdict(result: list[Product] | CsvValidationError) -> object:
    if isinstance(result, CsvValidationError):
        return (result.issues, result.truncated)
    return result


_WINDOWS = st.sampled_from([1, 3, 16, 64, 256 * 1024])


@PROPERTY
@given(st.data(), valid_csvs(), _WINDOWS)
def test_a_valid_csv_parses_to_its_rows_however_it_is_cut(
    data: st.DataObject, csv_file: tuple[bytes, list[Product]], window: int
) -> None:
    content, products = csv_file
    assert parse_chunks(data.draw(chunkings(content)), window=window) == products


_DAMAGE = st.sampled_from(
    [
        b"\xff",  # not UTF-8
        b"\xc3",  # half a UTF-8 sequence
        b'"',  # a stray quote
        b"\x00",
        b"\r\n1,x,ftp://example.com/a.jpg\r\n",  # a bad row
        b"\r\n,,\r\n",  # a row of blank cells (skipped)
        b"\r\n1,Mug\r\n",  # too few cells
    ]
)


@PROPERTY
@given(st.data(), valid_csvs(), _DAMAGE, _WINDOWS)
def test_a_damaged_csv_gets_the_same_verdict_however_it_is_cut(
    data: st.DataObject, csv_file: tuple[bytes, list[Product]], damage: bytes, window: int
) -> None:
    content, _ = csv_file
    at = data.draw(st.integers(0, len(content)))
    damaged = content[:at] + damage + content[at:]
    whole = parse_chunks([damaged], window=256 * 1024)
    assert verdict(parse_chunks(data.draw(chunkings(damaged)), window=window)) == verdict(whole)
