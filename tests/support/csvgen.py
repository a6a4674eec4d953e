"""Build input CSV files (the original Django app's format) for tests."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from typing import TYPE_CHECKING

from imgcore._csvio import CsvLimits, CsvParser, CsvValidationError, Product

if TYPE_CHECKING:
    from support.origin import OriginServer

HEADER = ("S. No.", "Product Name", "Input Image Urls")

PHOTOS = ["s03_astronaut.jpg", "s03_chelsea.jpg", "s03_coffee.jpg", "s03_rocket.jpg"]
"""Real photographs in tests/data/corpus/img, served by the test origin."""


def make_csv(rows: list[list[str]]) -> bytes:
    """The seed's CSV format: one product per row, its URLs in one quoted cell."""
    lines = [",".join(HEADER)]
    for serial, urls in enumerate(rows, start=1):
        lines.append(f'{serial},SKU{serial},"{",".join(urls)}"')
    return ("\r\n".join(lines) + "\r\n").encode()


def photo_urls(origin: OriginServer, n: int, tag: str = "") -> list[str]:
    """``n`` distinct URLs of real photos on the origin."""
    return [origin.url(f"/corpus/img/{PHOTOS[i % len(PHOTOS)]}?{tag}{i}") for i in range(n)]


def image_url(serial: int, n: int, origin: str = "https://img.example.com") -> str:
    """A valid, unique image URL for image ``n`` of product ``serial``."""
    return f"{origin}/p/{serial}/{n}.jpg?r={serial}-{n}"


def product_rows(
    count: int, *, urls_per_row: int = 3, origin: str = "https://img.example.com"
) -> Iterator[tuple[int, str, str]]:
    """``count`` valid rows: (serial, name, comma-joined URLs)."""
    for serial in range(1, count + 1):
        urls = ",".join(image_url(serial, n, origin) for n in range(1, urls_per_row + 1))
        yield serial, f"Product {serial}", urls


def _cell(value: object) -> str:
    # Quote like RFC 4180 whatever the line ending (csv.writer leaves a lone CR unquoted
    # when the line terminator is LF).
    text = str(value)
    if any(ch in text for ch in ',"\r\n'):
        return '"' + text.replace('"', '""') + '"'
    return text


def csv_bytes(
    rows: Iterable[Sequence[object]],
    header: Sequence[str] | None = HEADER,
    *,
    newline: str = "\n",
    bom: bool = False,
) -> bytes:
    """Encode ``header`` (None: no header line) and ``rows`` as a UTF-8 CSV file."""
    lines = [header] if header is not None else []
    text = "".join(",".join(map(_cell, line)) + newline for line in [*lines, *rows])
    return (b"\xef\xbb\xbf" if bom else b"") + text.encode()


def parse_chunks(
    chunks: Iterable[bytes], limits: CsvLimits | None = None, *, window: int = 256 * 1024
) -> list[Product] | CsvValidationError:
    """Feed ``chunks`` to a :class:`CsvParser` one by one; the products, or the error raised."""
    parser = CsvParser(limits, window_bytes=window)
    products: list[Product] = []
    try:
        for chunk in chunks:
            products += parser.feed(chunk)
        products += parser.finish()
    except CsvValidationError as exc:
        return exc
    return products
