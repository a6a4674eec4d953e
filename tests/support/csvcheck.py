"""Parse CSV bytes in tests of imgcore._csvio, and build their rows."""

from __future__ import annotations

from collections.abc import Iterable

import pytest
from imgcore._csvio import CsvIssue, CsvLimits, CsvParser, CsvValidationError, Product

from support.csvgen import csv_bytes

URL = "https://img.example.com/a.jpg"
URL2 = "https://img.example.com/b.jpg"
HEAD = b"S. No.,Product Name,Input Image Urls\n"


def parse(
    data: bytes, limits: CsvLimits | None = None, *, window: int = 256 * 1024
) -> list[Product]:
    """Feed ``data`` whole and finish."""
    parser = CsvParser(limits, window_bytes=window)
    return parser.feed(data) + parser.finish()


def feed_all(parser: CsvParser, chunks: Iterable[bytes]) -> None:
    for chunk in chunks:
        parser.feed(chunk)


def outcome(result: list[Product] | CsvValidationError) -> object:
    """Something comparable with ==: the products, or the issues and the truncated flag."""
    if isinstance(result, CsvValidationError):
        return (result.issues, result.truncated)
    return result


def issues(data: bytes, limits: CsvLimits | None = None) -> list[CsvIssue]:
    """The issues of the error that parsing ``data`` must raise."""
    with pytest.raises(CsvValidationError) as info:
        parse(data, limits)
    return info.value.issues


def one_issue(data: bytes, limits: CsvLimits | None = None) -> CsvIssue:
    [issue] = issues(data, limits)
    return issue


def row(serial: object = 1, name: str = "Mug", urls: str = URL) -> bytes:
    return csv_bytes([(serial, name, urls)], header=None)
