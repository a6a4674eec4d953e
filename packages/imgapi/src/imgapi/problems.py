"""Errors as RFC 9457 problem documents (``application/problem+json``).

Handlers raise :class:`ProblemError` (or let imgcore's typed errors through); the exception
handlers registered by :func:`exception_handlers` turn every error, Litestar's own included,
into a :class:`Problem`.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from http import HTTPStatus
from typing import Any
from urllib.parse import quote

import msgspec
from imgcore import (
    CsvIssue,
    CsvValidationError,
    ImgcoreError,
    OutOfRangeError,
    RequestNotFoundError,
    RequestStateError,
    TooManyImagesError,
    UnknownPresetError,
    WebhookURLError,
)
from litestar import Request, Response
from litestar.datastructures import ResponseHeader
from litestar.exceptions import HTTPException, ValidationException
from litestar.openapi.datastructures import ResponseSpec
from litestar.types import ExceptionHandlersMap

__all__ = [
    "PROBLEM_MEDIA_TYPE",
    "Problem",
    "ProblemError",
    "ProblemIssue",
    "documented_header",
    "exception_handlers",
    "problem_answer",
    "problem_responses",
]

PROBLEM_MEDIA_TYPE = "application/problem+json"
RETRY_AFTER = 30
"""Seconds a client over its limit of unfinished images is told to wait (``Retry-After``)."""
TYPE_PREFIX = "urn:imgapi:problem:"

log = logging.getLogger("imgapi.errors")


class ProblemIssue(msgspec.Struct, frozen=True, kw_only=True):
    """One problem in the input: a CSV cell or row, or a request parameter."""

    row: int | None = None
    column: str | None = None
    reason: str
    message: str


class Problem(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """An RFC 9457 problem document; ``reason`` is the machine-readable code."""

    type: str = "about:blank"
    title: str
    status: int
    detail: str | None = None
    instance: str | None = None
    reason: str | None = None
    errors: list[ProblemIssue] | None = None
    truncated: bool | None = None
    presets: list[str] | None = None
    """``unknown_preset``: the names a request may choose."""


class ProblemError(Exception):
    """Raise in a handler to answer with a problem document."""

    def __init__(
        self,
        status: int,
        detail: str,
        *,
        reason: str,
        errors: Iterable[ProblemIssue] | None = None,
        truncated: bool | None = None,
        headers: Mapping[str, str] | None = None,
        presets: list[str] | None = None,
    ) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail
        self.reason = reason
        self.errors = list(errors) if errors is not None else None
        self.truncated = truncated
        self.presets = presets
        self.headers = dict(headers or {})

    def problem(self, instance: str | None = None) -> Problem:
        """This error as a problem document."""
        return Problem(
            type=TYPE_PREFIX + self.reason,
            title=HTTPStatus(self.status).phrase,
            status=self.status,
            detail=self.detail,
            instance=instance,
            reason=self.reason,
            errors=self.errors,
            truncated=self.truncated,
            presets=self.presets,
        )


def from_imgcore(exc: ImgcoreError) -> ProblemError:
    """The HTTP answer to one of imgcore's typed errors."""
    if isinstance(exc, CsvValidationError):
        too_large = any(issue.reason == "file_too_large" for issue in exc.issues)
        return ProblemError(
            413 if too_large else 400,
            exc.message,
            reason=exc.reason,
            errors=[_issue(issue) for issue in exc.issues],
            truncated=exc.truncated or None,
        )
    if isinstance(exc, RequestNotFoundError):
        return ProblemError(404, "no request has this id", reason=exc.reason)
    if isinstance(exc, OutOfRangeError):
        return ProblemError(
            400,
            exc.message,
            reason="invalid_parameter",
            errors=[ProblemIssue(reason="invalid_parameter", message=exc.message)],
        )
    if isinstance(exc, TooManyImagesError):
        return ProblemError(
            429, exc.message, reason=exc.reason, headers={"Retry-After": str(RETRY_AFTER)}
        )
    if isinstance(exc, RequestStateError):
        return ProblemError(409, f"{exc.message} (status {exc.status})", reason=exc.reason)
    if isinstance(exc, WebhookURLError):
        return ProblemError(400, exc.message, reason=exc.reason)
    if isinstance(exc, UnknownPresetError):
        return ProblemError(400, exc.message, reason=exc.reason, presets=exc.known)
    log.error("unexpected imgcore error: %s", exc, exc_info=exc)
    return ProblemError(500, "the server could not complete the request", reason="internal_error")


def _issue(issue: CsvIssue) -> ProblemIssue:
    return ProblemIssue(
        row=issue.row, column=issue.column, reason=issue.reason, message=issue.message
    )


def problem_response(problem: Problem, headers: Mapping[str, str] | None = None) -> Response[Any]:
    """A response carrying ``problem``."""
    return Response(
        content=msgspec.json.encode(problem),
        status_code=problem.status,
        media_type=PROBLEM_MEDIA_TYPE,
        headers=dict(headers or {}),
    )


def _instance(request: Request[Any, Any, Any]) -> str:
    # A URI reference (RFC 9457 3.1.5): the decoded path percent-encoded again.
    return quote(request.url.path, safe="/:@!$&'()*+,;=")


def _handle_problem(request: Request[Any, Any, Any], exc: ProblemError) -> Response[Any]:
    return problem_response(exc.problem(_instance(request)), exc.headers)


def _handle_imgcore(request: Request[Any, Any, Any], exc: ImgcoreError) -> Response[Any]:
    return _handle_problem(request, from_imgcore(exc))


def _handle_http(request: Request[Any, Any, Any], exc: HTTPException) -> Response[Any]:
    status = exc.status_code
    errors = None
    if isinstance(exc, ValidationException) and isinstance(exc.extra, list):
        errors = [
            ProblemIssue(
                reason="invalid_parameter",
                message=f"{item.get('key', '?')}: {item.get('message', 'invalid')}",
            )
            for item in exc.extra
            if isinstance(item, dict)
        ]
    reason = HTTPStatus(status).phrase.lower().replace(" ", "_").replace("-", "_")
    if status >= 500:
        log.error("HTTP %d: %s", status, exc.detail, exc_info=exc)
    problem = Problem(
        type=TYPE_PREFIX + reason,
        title=HTTPStatus(status).phrase,
        status=status,
        detail=exc.detail if status < 500 else None,
        instance=_instance(request),
        reason=reason,
        errors=errors or None,
    )
    return problem_response(problem, exc.headers)


def _handle_unexpected(request: Request[Any, Any, Any], exc: Exception) -> Response[Any]:
    log.error("unhandled error: %s", exc, exc_info=exc)
    return _handle_problem(
        request,
        ProblemError(500, "the server could not complete the request", reason="internal_error"),
    )


def problem_answer(request: Request[Any, Any, Any], exc: Exception) -> Response[Any]:
    """The problem document the app's handlers answer ``exc`` with (for routers that answer
    some errors otherwise, such as the admin pages)."""
    if isinstance(exc, ProblemError):
        return _handle_problem(request, exc)
    if isinstance(exc, ImgcoreError):
        return _handle_imgcore(request, exc)
    if isinstance(exc, HTTPException):
        return _handle_http(request, exc)
    return _handle_unexpected(request, exc)


def exception_handlers() -> ExceptionHandlersMap:
    """The app's exception handlers: every error becomes a problem document."""
    return {
        ProblemError: _handle_problem,
        ImgcoreError: _handle_imgcore,
        HTTPException: _handle_http,
        Exception: _handle_unexpected,
    }


_DESCRIPTIONS = {
    400: "The request is invalid; for a CSV, `errors` lists every problem with row and column",
    401: "An API key is required (Authorization: Bearer KEY or X-API-Key: KEY)",
    404: "No such resource",
    413: "The upload is larger than the server accepts",
    409: "The request's status does not allow this now (`reason`: still_running, already_ended)",
    415: "The body (or its file part) is not a CSV",
    429: "The client has too many images not finished yet; wait `Retry-After` seconds",
    503: "A dependency (the database, the executor) is not available",
}


def problem_responses(*statuses: int) -> dict[int, ResponseSpec]:
    """OpenAPI entries documenting the problem documents a route may answer with."""
    return {
        status: ResponseSpec(
            data_container=Problem,
            media_type=PROBLEM_MEDIA_TYPE,
            description=_DESCRIPTIONS.get(status, HTTPStatus(status).phrase),
            generate_examples=False,
        )
        for status in statuses
    }


def documented_header(name: str, description: str) -> ResponseHeader:
    """A header the success response always carries, for the OpenAPI schema only."""
    # A value makes Litestar give the header a schema (a string); documentation-only
    # headers are never sent, the handler sets the real one.
    return ResponseHeader(
        name=name, value="", documentation_only=True, required=True, description=description
    )
