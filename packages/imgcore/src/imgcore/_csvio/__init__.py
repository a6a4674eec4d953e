"""Streaming parse and validation of the input CSV; the output CSV writer.

Input format (the original Django app's)::

    S. No.,Product Name,Input Image Urls
    1,SKU1,"https://a.example/1.jpg,https://a.example/2.jpg"

* UTF-8, with or without a BOM; CRLF, LF or CR line endings, mixed if need be.
  Quoting follows RFC 4180 (the stdlib ``csv`` module in strict mode does the parsing).
* Header names are compared ignoring case, spaces and punctuation (``S. No.``, ``sno``,
  ``Serial Number``, ``product_name``, ``Input Image URL(s)``…; see ``HEADER_ALIASES``).
  Other columns are allowed and carried through to the output CSV.
* Several URLs share one cell, separated by commas; whitespace around each URL is ignored,
  and so are empty items (a trailing comma). A URL containing a literal comma therefore cannot
  be expressed in this format: percent-encode it as ``%2C``.
* Blank lines, and rows whose cells are all blank (spreadsheets export those), are skipped.
  They still count in row numbers, which are physical record numbers: the header is row 1.
  They also count against ``CsvLimits.max_rows``, since skipping them is work too.

Problems are collected, up to ``CsvLimits.max_errors``, and raised together as one
``CsvValidationError`` at the end, so a user sees every problem at once. Input that cannot be
read usefully any further (a limit exceeded, bytes that are not UTF-8, a bad header) stops the
parse at once with the same exception.

Modules: ``limits`` (limits and errors), ``header`` and ``rules`` and ``urls`` (what a header,
a row and a URL must satisfy, each rule once), ``records`` (where a broken record broke),
``parser`` (the push parser), ``output`` (the output CSV writer).
"""

from imgcore._csvio.header import HEADER_ALIASES, CsvHeader
from imgcore._csvio.limits import CsvIssue, CsvLimits, CsvLimitsError, CsvValidationError
from imgcore._csvio.output import ERRORS_COLUMN, OUTPUT_URLS_COLUMN, OutputRow, write_output_csv
from imgcore._csvio.parser import CsvParser, CsvReader, Product, iter_products

__all__ = [
    "ERRORS_COLUMN",
    "HEADER_ALIASES",
    "OUTPUT_URLS_COLUMN",
    "CsvHeader",
    "CsvIssue",
    "CsvLimits",
    "CsvLimitsError",
    "CsvParser",
    "CsvReader",
    "CsvValidationError",
    "OutputRow",
    "Product",
    "iter_products",
    "write_output_csv",
]
