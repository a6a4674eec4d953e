"""``GET /status/{id}`` (progress, products, deliveries) and ``GET /status/{id}/output.csv``."""

from __future__ import annotations

import math
import re
from collections.abc import AsyncIterator
from datetime import datetime
from typing import Annotated, Any
from urllib.parse import urlencode
from uuid import UUID

import msgspec
from imgcore.engine import MAX_POSITION, Engine
from imgcore.models import DeliveryInfo, ImageProgress, ProductProgress, RequestInfo
from litestar import Request, Response, get
from litestar.di import NamedDependency
from litestar.params import FromPath, QueryParameter
from litestar.response import Stream

from imgapi.auth import SECURITY, require_api_key
from imgapi.problems import problem_responses
from imgapi.runtime import Runtime

__all__ = [
    "MAX_PAGE",
    "MAX_PER_PAGE",
    "DeliveryOut",
    "ImageOut",
    "PageOut",
    "ProductOut",
    "StatusOut",
    "VariantOut",
    "output_csv",
    "output_csv_download",
    "read_status",
    "status",
]

MAX_PER_PAGE = 1000
#: Any page of any size stays within the positions a database holds: larger page numbers
#: are a 400, not an overflow in the query.
MAX_PAGE = MAX_POSITION // MAX_PER_PAGE


class VariantOut(msgspec.Struct, frozen=True, kw_only=True):
    """One stored variant of a done image, in its preset's order."""

    name: str
    url: str
    format: str
    width: int
    height: int
    bytes: int


class ImageOut(msgspec.Struct, frozen=True, kw_only=True):
    """One image of a product, in the order of the input cell; ``output_url`` is the first
    variant's, ``source_*`` describe the downloaded source (null until it is done)."""

    input_url: str
    output_url: str | None
    status: str
    error: str | None
    error_reason: str | None
    variants: list[VariantOut]
    source_width: int | None
    source_height: int | None
    source_sha256: str | None
    reused: str | None
    """Null when the outputs were made for this image, else why an earlier import's were
    reused: ``not_modified``, ``same_content`` or ``max_age``."""


class ProductOut(msgspec.Struct, frozen=True, kw_only=True):
    """One row of the CSV with its images."""

    serial: int
    name: str
    images: list[ImageOut]


class DeliveryOut(msgspec.Struct, frozen=True, kw_only=True):
    """One notification of the finished request (a webhook call) and how it went."""

    notifier: str
    event: str
    status: str
    attempts: int
    last_status_code: int | None
    last_error: str | None
    created_at: datetime
    delivered_at: datetime | None
    next_attempt_at: datetime | None


class PageOut(msgspec.Struct, frozen=True, kw_only=True):
    """Where this page of products sits; ``next``/``prev`` are absolute URLs or null."""

    page: int
    per_page: int
    pages: int
    total_products: int
    next: str | None
    prev: str | None


class StatusOut(msgspec.Struct, frozen=True, kw_only=True):
    """A request's status ("Pending", "In Process", "Completed", "Failed") and progress."""

    request_id: UUID
    status: str
    filename: str | None
    preset: str
    total: int
    done: int
    failed: int
    pending: int
    reused: int
    """Of ``done``, the images whose outputs were reused from an earlier import."""
    error: str | None
    created_at: datetime
    updated_at: datetime
    finished_at: datetime | None
    output_csv_url: str
    products: list[ProductOut]
    page: PageOut
    deliveries: list[DeliveryOut]


def _image(image: ImageProgress) -> ImageOut:
    return ImageOut(
        input_url=image.input_url,
        output_url=image.output_url,
        status=image.status.value,
        error=image.error,
        error_reason=image.error_reason,
        variants=[
            VariantOut(
                name=v.name,
                url=v.url,
                format=v.format,
                width=v.width,
                height=v.height,
                bytes=v.bytes,
            )
            for v in image.variants
        ],
        source_width=image.source_width,
        source_height=image.source_height,
        source_sha256=image.content_hash,
        reused=image.reused,
    )


def _product(product: ProductProgress) -> ProductOut:
    return ProductOut(
        serial=product.serial,
        name=product.name,
        images=[_image(image) for image in product.images],
    )


def _delivery(delivery: DeliveryInfo) -> DeliveryOut:
    # The target URL is left out: webhook URLs often carry a token.
    return DeliveryOut(
        notifier=delivery.notifier,
        event=delivery.event,
        status=delivery.status,
        attempts=delivery.attempts,
        last_status_code=delivery.last_status_code,
        last_error=delivery.last_error,
        created_at=delivery.created_at,
        delivered_at=delivery.delivered_at,
        next_attempt_at=delivery.next_attempt_at,
    )


def _page_url(base: str, path: str, page: int, per_page: int) -> str:
    return f"{base}{path}?{urlencode({'page': page, 'per_page': per_page})}"


async def read_status(
    engine: Engine,
    request_id: str,
    *,
    base: str,
    path: str,
    page: int,
    per_page: int,
    client: str | None = None,
) -> StatusOut:
    """The JSON answer of ``GET /status/{id}`` (raises ``RequestNotFoundError``, also for
    another ``client``'s request)."""
    info, products, deliveries = await engine.snapshot(
        request_id, start=(page - 1) * per_page, limit=per_page, client=client
    )
    return _status_document(
        info, products, deliveries, base=base, path=path, page=page, per_page=per_page
    )


def _status_document(
    info: RequestInfo,
    products: list[ProductProgress],
    deliveries: list[DeliveryInfo],
    *,
    base: str,
    path: str,
    page: int,
    per_page: int,
) -> StatusOut:
    pages = max(1, math.ceil(info.total_products / per_page))
    return StatusOut(
        request_id=info.request_id,
        status=info.status.value,
        filename=info.filename,
        preset=info.preset,
        total=info.total,
        done=info.done,
        failed=info.failed,
        pending=info.pending,
        reused=info.reused,
        error=info.error,
        created_at=info.created_at,
        updated_at=info.updated_at,
        finished_at=info.finished_at,
        output_csv_url=f"{base}/status/{info.request_id}/output.csv",
        products=[_product(product) for product in products],
        page=PageOut(
            page=page,
            per_page=per_page,
            pages=pages,
            total_products=info.total_products,
            next=_page_url(base, path, page + 1, per_page) if page < pages else None,
            prev=_page_url(base, path, min(page - 1, pages), per_page) if page > 1 else None,
        ),
        deliveries=[_delivery(delivery) for delivery in deliveries],
    )


@get(
    ["/status/{request_id:str}", "/api/status/{request_id:str}"],
    guards=[require_api_key],
    security=SECURITY,
    responses=problem_responses(400, 401, 404),
    summary="A request's status, progress and products",
    description=(
        "Products are paged (`page` from 1 up to 2147483, `per_page` up to 1000); `page.next` "
        "is the URL of the next page. Unknown and malformed ids answer 404; out-of-range "
        "`page` or `per_page` 400."
    ),
    tags=["requests"],
)
async def status(
    request: Request[Any, Any, Any],
    request_id: FromPath[str],
    runtime: NamedDependency[Runtime],
    engine: NamedDependency[Engine],
    caller: NamedDependency[str | None],
    page: Annotated[
        int, QueryParameter(ge=1, le=MAX_PAGE, description="Page of products, from 1")
    ] = 1,
    per_page: Annotated[
        int, QueryParameter(ge=1, le=MAX_PER_PAGE, description="Products per page")
    ] = 100,
) -> Response[StatusOut]:
    """Report on one request."""
    document = await read_status(
        engine,
        request_id,
        base=runtime.settings.base_url,
        path=request.url.path,
        page=page,
        per_page=per_page,
        client=caller,
    )
    headers = {"Cache-Control": "no-store"}
    if document.page.next is not None:
        headers["Link"] = f'<{document.page.next}>; rel="next"'
    return Response(document, headers=headers)


_UNSAFE_FILENAME = re.compile(r"[^A-Za-z0-9._-]+")


def output_filename(info: RequestInfo) -> str:
    """``<input name>-output.csv`` (ASCII letters, digits, ``._-`` only), or by request id."""
    stem = ""
    if info.filename:
        stem = _UNSAFE_FILENAME.sub("_", info.filename.rsplit(".", 1)[0]).strip("._")[:100]
    return f"{stem or info.request_id}-output.csv"


@get(
    ["/status/{request_id:str}/output.csv", "/api/status/{request_id:str}/output.csv"],
    guards=[require_api_key],
    security=SECURITY,
    media_type="text/csv",
    responses=problem_responses(400, 401, 404),
    summary="The output CSV",
    description=(
        "The input columns plus `Output Image Urls`, streamed in input order; images not "
        "processed yet have no output URL."
    ),
    tags=["requests"],
)
async def output_csv(
    request_id: FromPath[str], engine: NamedDependency[Engine], caller: NamedDependency[str | None]
) -> Stream:
    """Stream a request's output CSV."""
    return await output_csv_download(engine, request_id, client=caller)


async def output_csv_download(engine: Engine, request_id: str, client: str | None = None) -> Stream:
    """The output CSV as a download (404 problem for an unknown id, or another ``client``'s,
    before any byte)."""
    info = await engine.status(request_id, client=client)
    chunks: AsyncIterator[bytes] = await engine.output_csv(info.request_id)
    return Stream(
        chunks,
        media_type="text/csv",
        headers={
            "Content-Disposition": f'attachment; filename="{output_filename(info)}"',
            "Cache-Control": "no-store",
        },
    )
