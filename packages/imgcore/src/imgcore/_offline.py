"""``imgcore process``: one CSV, straight to a directory — no database, no service."""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import anyio
import msgspec

from imgcore._codecs.pillow import PILLOW
from imgcore._compression.pool import Compressor
from imgcore._csvio import (
    CsvHeader,
    CsvLimits,
    CsvParser,
    OutputRow,
    Product,
    iter_products,
    write_output_csv,
)
from imgcore._fetch import Fetcher, FetchError, FetchOptions
from imgcore.contracts import CodecSpec, CompressOptions
from imgcore.errors import ImageError

__all__ = ["ImageFailure", "ProcessSummary", "process_csv"]

# Products processed together before their output rows are written (keeps memory flat).
CHUNK = 256


class ImageFailure(msgspec.Struct, frozen=True, kw_only=True):
    """One image that could not be processed."""

    row: int
    serial: int
    url: str
    reason: str
    message: str


class ProcessSummary(msgspec.Struct, kw_only=True):
    """What ``process_csv`` did."""

    products: int = 0
    images: int = 0
    ok: int = 0
    failed: int = 0
    input_bytes: int = 0
    output_bytes: int = 0
    seconds: float = 0.0
    failures: list[ImageFailure] = msgspec.field(default_factory=list)

    @property
    def ratio(self) -> float:
        """Output bytes over input bytes of the images that succeeded."""
        return self.output_bytes / self.input_bytes if self.input_bytes else 0.0


async def process_csv(
    csv_path: Path,
    out_dir: Path,
    *,
    output_csv: Path | None = None,
    compress: CompressOptions | None = None,
    codecs: Sequence[CodecSpec] = (PILLOW,),
    fetch: FetchOptions | None = None,
    limits: CsvLimits | None = None,
    base_url: str | None = None,
    workers: int | None = None,
    on_image: Callable[[ProcessSummary], None] | None = None,
) -> ProcessSummary:
    """Validate ``csv_path`` whole, then download, compress and write every image.

    Images go to ``out_dir/<serial>-<n>.<ext>``; the output CSV (default
    ``out_dir/output.csv``) adds ``Output Image Urls`` — the files' paths, or URLs under
    ``base_url``; ``codecs`` (:func:`imgcore._codecs.select_codecs`) compress them.
    Raises :class:`imgcore.CsvValidationError` before any download when the CSV is invalid.
    """
    limits = limits or CsvLimits()
    header, total = _validate(csv_path, limits)
    summary = ProcessSummary(products=total)
    await anyio.Path(out_dir).mkdir(parents=True, exist_ok=True)
    output_csv = output_csv or out_dir / "output.csv"
    compressor = Compressor(
        compress or CompressOptions(), workers=workers or os.cpu_count() or 1, codecs=codecs
    )
    started = time.perf_counter()
    tmp = output_csv.with_name(f".{output_csv.name}.tmp")
    try:
        async with Fetcher(fetch) as fetcher:
            with tmp.open("wb") as out:
                rows: list[OutputRow] = []
                first = True
                for chunk in _chunked(_reread(csv_path, limits)):
                    rows = await _process_chunk(
                        chunk, out_dir, fetcher, compressor, summary, base_url, on_image
                    )
                    for data in write_output_csv(header, rows, include_header=first):
                        out.write(data)
                    first = False
        tmp.replace(output_csv)
    finally:
        compressor.close()
        tmp.unlink(missing_ok=True)
    summary.seconds = time.perf_counter() - started
    return summary


def _validate(csv_path: Path, limits: CsvLimits) -> tuple[CsvHeader, int]:
    parser = CsvParser(limits)
    count = 0
    with csv_path.open("rb") as f:
        while data := f.read(256 * 1024):
            count += len(parser.feed(data))
    count += len(parser.finish())
    assert parser.header is not None  # finish() raised if there was none
    return parser.header, count


def _reread(csv_path: Path, limits: CsvLimits) -> Iterator[Product]:
    with csv_path.open("rb") as f:
        yield from iter_products(f, limits)


def _chunked(products: Iterator[Product]) -> Iterator[list[Product]]:
    chunk: list[Product] = []
    for product in products:
        chunk.append(product)
        if len(chunk) == CHUNK:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


async def _process_chunk(
    chunk: list[Product],
    out_dir: Path,
    fetcher: Fetcher,
    compressor: Compressor,
    summary: ProcessSummary,
    base_url: str | None,
    on_image: Callable[[ProcessSummary], None] | None,
) -> list[OutputRow]:
    outputs: dict[tuple[int, int], str | None] = {}
    errors: dict[tuple[int, int], str] = {}

    async def one(product: Product, index: int, url: str) -> None:
        try:
            fetched = await fetcher.fetch(url)
            image = await compressor(fetched.data)
            name = f"{product.serial}-{index + 1}{image.extension}"
            await anyio.Path(out_dir / name).write_bytes(image.data)
        except (FetchError, ImageError) as exc:
            summary.failed += 1
            errors[product.row, index] = str(exc)
            summary.failures.append(
                ImageFailure(
                    row=product.row,
                    serial=product.serial,
                    url=url,
                    reason=exc.reason,
                    message=str(exc),
                )
            )
            outputs[product.row, index] = None
        else:
            summary.ok += 1
            summary.input_bytes += image.input_bytes
            summary.output_bytes += image.output_bytes
            location = str(out_dir / name)
            outputs[product.row, index] = f"{base_url.rstrip('/')}/{name}" if base_url else location
        summary.images += 1
        if on_image is not None:
            on_image(summary)

    async with anyio.create_task_group() as tg:
        for product in chunk:
            for index, url in enumerate(product.urls):
                tg.start_soon(one, product, index, url)
    return [
        OutputRow(
            serial=p.serial,
            name=p.name,
            input_urls=p.urls,
            output_urls=tuple(outputs[p.row, i] for i in range(len(p.urls))),
            errors=tuple(
                f"{i + 1}: {errors[p.row, i]}" for i in range(len(p.urls)) if (p.row, i) in errors
            ),
            extra=p.extra,
        )
        for p in chunk
    ]
