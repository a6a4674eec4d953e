"""What users get back of a request's images: URLs filled in, and output CSV rows with a
preset's further variants and details."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Callable
from functools import partial
from uuid import UUID

import msgspec

from imgcore._csvio import CsvHeader, OutputRow, write_output_csv
from imgcore._csvio.output import OUTPUT_URLS_COLUMN
from imgcore._db import requests as queries
from imgcore._db.database import Database
from imgcore.config import Config
from imgcore.models import ImageInfo, ProductInfo, output_url
from imgcore.presets import Preset, recorded_preset
from imgcore.states import ImageStatus

__all__ = ["image_of_key", "more_columns", "output_chunks", "output_row", "with_urls"]

OUTPUT_PAGE = 1000

# requests/<request uuid>/<image id>[-<variant>].<ext>: the keys presets write.
_IMAGE_KEY = re.compile(r"^requests/([0-9a-f-]{36})/([0-9]{1,19})(?:-[a-z0-9_]+)?\.[a-z]+$")


def image_of_key(key: str) -> tuple[UUID, int] | None:
    """The (request, image) a storage key belongs to, if it is an image's output."""
    match = _IMAGE_KEY.match(key)
    if match is None:
        return None
    try:
        return UUID(match.group(1)), int(match.group(2))
    except ValueError:
        return None


def with_urls(product: ProductInfo, url_for: Callable[[str], str]) -> ProductInfo:
    """``product`` with each image's ``output_url`` and variant URLs."""
    images = tuple(
        msgspec.structs.replace(
            image,
            output_url=output_url(image.status, image.storage_key, url_for),
            variants=tuple(msgspec.structs.replace(v, url=url_for(v.key)) for v in image.variants),
        )
        for image in product.images
    )
    return msgspec.structs.replace(product, images=images)


def more_columns(preset: Preset) -> tuple[str, ...]:
    """The output CSV's columns after ``Output Image Urls`` for a request of ``preset``: one
    ``Output Image Urls (<variant>)`` per further variant, then the details (source size and
    SHA-256, each variant's size and bytes). ``default`` adds none: its CSV stays as it was
    before presets."""
    if preset.name == "default":
        return ()
    names = [variant.name for variant in preset.variants]
    return (
        *(f"{OUTPUT_URLS_COLUMN} ({name})" for name in names[1:]),
        "Source Sizes",
        "Source SHA-256",
        *(f"Output Sizes ({name})" for name in names),
        *(f"Output Bytes ({name})" for name in names),
    )


def output_row(product: ProductInfo, preset: Preset, url_for: Callable[[str], str]) -> OutputRow:
    """One row of the output CSV (see :func:`more_columns`); every list is positional, as
    ``Output Image Urls``: an empty item where an image has no output."""
    product = with_urls(product, url_for)
    images = product.images
    more: tuple[str, ...] = ()
    if preset.name != "default":
        count = len(preset.variants)
        done = [_variants(image, count) for image in images]
        urls = [",".join(row[i][0] for row in done) for i in range(1, count)]
        sources = ",".join(_size(image.input_width, image.input_height, image) for image in images)
        hashes = ",".join(image.content_hash or "" for image in images)
        sizes = [",".join(row[i][1] for row in done) for i in range(count)]
        sizes_bytes = [",".join(row[i][2] for row in done) for i in range(count)]
        more = (*urls, sources, hashes, *sizes, *sizes_bytes)
    return OutputRow(
        serial=product.serial,
        name=product.name,
        input_urls=tuple(image.input_url for image in images),
        output_urls=tuple(image.output_url for image in images),
        errors=tuple(
            f"{image.position + 1}: {image.error}"
            for image in images
            if image.status is ImageStatus.FAILED
        ),
        extra=product.extra,
        more=more,
    )


def _size(width: int | None, height: int | None, image: ImageInfo) -> str:
    done = image.status is ImageStatus.DONE and width is not None and height is not None
    return f"{width}x{height}" if done else ""


def _variants(image: ImageInfo, count: int) -> list[tuple[str, str, str]]:
    """(url, size, bytes) of each of ``count`` variants; empty strings where none is stored."""
    cells = [
        (v.url, _size(v.width, v.height, image), str(v.bytes)) if v.url else ("", "", "")
        for v in image.variants[:count]
    ]
    return cells + [("", "", "")] * (count - len(cells))


async def output_chunks(
    database: Database,
    config: Config,
    url_for: Callable[[str], str],
    request_id: UUID,
    header: CsvHeader,
) -> AsyncIterator[bytes]:
    """A request's output CSV, in input order, a page of products at a time."""
    # One short read per page: the stream may pause (a slow client) or stop anywhere
    # without holding a connection.
    _, recorded = await database.read(lambda conn: queries.get_preset(conn, request_id), short=True)
    preset = recorded_preset(recorded, config)
    columns = more_columns(preset)
    start = 0
    while True:
        page = await database.read(
            partial(
                queries.read_product_page, request_id=request_id, start=start, limit=OUTPUT_PAGE
            )
        )
        if not page:
            return
        rows = [output_row(product, preset, url_for) for product in page]
        for chunk in write_output_csv(
            header, rows, include_header=start == 0, more_columns=columns
        ):
            yield chunk
        start = page[-1].position + 1
