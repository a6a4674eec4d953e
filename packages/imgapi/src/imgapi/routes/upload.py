"""``POST /upload``: a CSV in, a request id out; the body is streamed into imgcore."""

from __future__ import annotations

import logging
from contextlib import aclosing
from dataclasses import dataclass
from functools import partial
from typing import Annotated, Any
from uuid import UUID

import msgspec
from imgcore.engine import Engine
from imgcore.errors import ImgcoreError, TooManyImagesError
from litestar import Request, Response, post
from litestar.di import NamedDependency
from litestar.openapi.spec import (
    Encoding,
    OpenAPIFormat,
    OpenAPIMediaType,
    OpenAPIType,
    Operation,
    RequestBody,
    Schema,
)
from litestar.params import QueryParameter

from imgapi.auth import SECURITY, require_api_key
from imgapi.clients import client_limit
from imgapi.form import (
    CSV_MEDIA_TYPES,
    FILE_FIELD,
    PRESET_FIELD,
    WEBHOOK_FIELD,
    UploadForm,
    check_file_type,
    limited,
    too_large,
)
from imgapi.problems import ProblemError, documented_header, from_imgcore, problem_responses
from imgapi.runtime import Runtime

__all__ = ["Accepted", "upload"]

log = logging.getLogger("imgapi.upload")


class Accepted(msgspec.Struct, frozen=True, kw_only=True):
    """The upload was stored; its images are processed in the background."""

    request_id: UUID
    status: str
    status_url: str
    output_csv_url: str


@dataclass
class _UploadOperation(Operation):
    """Documents the body, which the handler reads as a stream rather than as a parameter."""

    def __post_init__(self) -> None:
        form = Schema(
            type=OpenAPIType.OBJECT,
            required=[FILE_FIELD],
            properties={
                WEBHOOK_FIELD: Schema(
                    type=OpenAPIType.STRING,
                    description="URL called when the request ends; put it before the file",
                ),
                PRESET_FIELD: Schema(
                    type=OpenAPIType.STRING,
                    description="The preset to write each image as (GET /presets lists "
                    "them; default: `default`); put it before the file",
                ),
                FILE_FIELD: Schema(
                    type=OpenAPIType.STRING,
                    format=OpenAPIFormat.BINARY,
                    description="The CSV: S. No., Product Name, Input Image Urls (UTF-8)",
                ),
            },
        )
        self.request_body = RequestBody(
            required=True,
            description="A multipart form with the CSV in `file`, or the CSV itself as text/csv",
            content={
                "multipart/form-data": OpenAPIMediaType(
                    schema=form,
                    # The file part's accepted labels (none at all is accepted too).
                    encoding={
                        FILE_FIELD: Encoding(
                            content_type=", ".join(
                                sorted(CSV_MEDIA_TYPES, key=lambda t: (t != "text/csv", t))
                            )
                        )
                    },
                ),
                "text/csv": OpenAPIMediaType(
                    schema=Schema(type=OpenAPIType.STRING, format=OpenAPIFormat.BINARY)
                ),
            },
        )


@post(
    ["/upload", "/api/upload"],
    status_code=202,
    request_max_body_size=None,  # the handler enforces IMGAPI_MAX_UPLOAD_BYTES while streaming
    guards=[require_api_key],
    security=SECURITY,
    operation_class=_UploadOperation,
    response_headers=[documented_header("Location", "The URL of the new request's status")],
    responses=problem_responses(400, 401, 413, 415, 429),
    summary="Upload a CSV of products",
    description=(
        "Validates the CSV while it streams in and stores it as a new request (202), or "
        "stores nothing and answers with a problem document listing every problem found."
    ),
    tags=["requests"],
)
async def upload(
    request: Request[Any, Any, Any],
    runtime: NamedDependency[Runtime],
    engine: NamedDependency[Engine],
    caller: NamedDependency[str | None],
    webhook_url: Annotated[
        str | None,
        QueryParameter(
            description="URL called when the request ends (or the form field of that name)",
        ),
    ] = None,
    filename: Annotated[
        str | None, QueryParameter(description="Name to record for a text/csv body")
    ] = None,
    preset: Annotated[
        str | None,
        QueryParameter(
            description="The preset to write each image as, by name (GET /presets lists them; "
            "default: `default`), or the form field of that name",
        ),
    ] = None,
) -> Response[Accepted]:
    """Store an uploaded CSV as a new request."""
    try:
        request_id = await _submit(request, runtime, engine, webhook_url, filename, preset, caller)
    except ImgcoreError as exc:
        problem = from_imgcore(exc)
        _rejected(runtime, problem)
        raise problem from None
    except ProblemError as exc:
        _rejected(runtime, exc)
        raise
    runtime.metrics.uploads.labels("accepted").inc()
    base = runtime.settings.base_url
    status_url = f"{base}/status/{request_id}"
    log.info("upload accepted", extra={"request_id": str(request_id)})
    return Response(
        Accepted(
            request_id=request_id,
            status="Pending",
            status_url=status_url,
            output_csv_url=f"{status_url}/output.csv",
        ),
        status_code=202,
        headers={"Location": status_url},
    )


async def _submit(
    request: Request[Any, Any, Any],
    runtime: Runtime,
    engine: Engine,
    webhook_url: str | None,
    filename: str | None,
    preset: str | None,
    client: str | None,
) -> UUID:
    limit = await _limit_of(runtime, engine, client)
    if limit is not None:
        unfinished = await engine.unfinished_images(client)
        if unfinished >= limit:
            # At the limit already: refused before a byte of the body is read.
            raise from_imgcore(TooManyImagesError(unfinished=unfinished + 1, limit=limit))
    max_bytes = runtime.settings.max_upload_bytes
    length = request.headers.get("content-length", "")
    if length.isdigit() and int(length) > max_bytes:
        raise too_large(max_bytes)  # before reading a byte
    media_type, options = request.content_type
    body = limited(request.stream(), max_bytes)
    if media_type == "multipart/form-data":
        boundary = options.get("boundary")
        if not boundary:
            raise ProblemError(
                400, "the multipart Content-Type has no boundary", reason="invalid_multipart"
            )
        form = UploadForm(body, boundary)
        try:
            await form.read_until_file()
            check_file_type(form.content_type)
            form_webhook = _one_of(form.fields, WEBHOOK_FIELD, webhook_url)
            form_preset = _one_of(form.fields, PRESET_FIELD, preset)
            async with aclosing(form.file_chunks()) as chunks:
                return await engine.submit_csv(
                    chunks,
                    webhook_url=form_webhook,
                    filename=form.filename,
                    preset=form_preset,
                    client=client,
                    max_unfinished=limit,
                )
        finally:
            await form.aclose()
    if media_type in CSV_MEDIA_TYPES:
        async with aclosing(body) as chunks:
            return await engine.submit_csv(
                chunks,
                webhook_url=_blank_to_none(webhook_url),
                filename=filename or None,
                preset=_blank_to_none(preset),
                client=client,
                max_unfinished=limit,
            )
    raise ProblemError(
        415,
        f"send the CSV as multipart/form-data (field {FILE_FIELD!r}) or as text/csv, "
        f"not as {media_type or 'a body without Content-Type'}",
        reason="unsupported_media_type",
    )


def _one_of(fields: dict[str, str], name: str, query: str | None) -> str | None:
    """A setting given in the form or in the query string (400 when in both)."""
    in_form = _blank_to_none(fields.get(name))
    in_query = _blank_to_none(query)
    if in_form is not None and in_query is not None:
        raise ProblemError(
            400,
            f"give {name!r} in the form or in the query string, not both",
            reason="duplicate_field",
        )
    return in_form or in_query


async def _limit_of(runtime: Runtime, engine: Engine, client: str | None) -> int | None:
    """The client's limit on unfinished images: its own, else the setting; None: no limit."""
    own = None
    if client is not None:
        own = await engine.database.read(partial(client_limit, name=client), short=True)
    limit = own if own is not None else runtime.settings.max_unfinished_images
    return limit or None


def _blank_to_none(value: str | None) -> str | None:
    return value.strip() or None if value is not None else None


def _rejected(runtime: Runtime, problem: ProblemError) -> None:
    # The rest of a rejected body may be huge (a 1 GB file over the limit): without this,
    # uvicorn keeps the connection alive and reads every remaining byte just to discard it.
    # With it, the server discards only a bounded rest before closing (a lingering close,
    # imgapi.connection_limits), so clients that send before reading still see this answer.
    problem.headers.setdefault("Connection", "close")
    runtime.metrics.uploads.labels(problem.reason).inc()
    log.info(
        "upload rejected: %s",
        problem.detail,
        extra={"status": problem.status, "reason": problem.reason},
    )
