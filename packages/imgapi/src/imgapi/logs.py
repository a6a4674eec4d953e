"""Structured logs: one JSON object (or key=value line) per record, with the HTTP request id.

The request id lives in a context variable set by the request middleware, so every line
logged while handling a request (imgcore's included) carries it as ``http_request_id``.
Fields passed with ``extra={...}`` become keys of the line.
"""

from __future__ import annotations

import contextvars
import logging
import sys
from datetime import UTC, datetime
from typing import Any, Literal

import msgspec

__all__ = [
    "JsonFormatter",
    "KeyValueFormatter",
    "RequestIdFilter",
    "configure_logging",
    "http_request_id",
]

http_request_id: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "http_request_id", default=None
)
"""The id of the HTTP request being handled in this context, if any."""

# Attributes every LogRecord has (and uvicorn's ANSI copy of its message); anything else on
# a record came from ``extra=``.
_STANDARD = frozenset(
    logging.LogRecord("", 0, "", 0, "", None, None).__dict__.keys()
    | {"message", "asctime", "taskName", "http_request_id", "color_message"}
)


class RequestIdFilter(logging.Filter):
    """Stamps each record with the current ``http_request_id`` (None outside requests)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not hasattr(record, "http_request_id"):
            record.http_request_id = http_request_id.get()
        return True


def _fields(record: logging.LogRecord) -> dict[str, Any]:
    fields: dict[str, Any] = {
        "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
        "level": record.levelname.lower(),
        "logger": record.name,
        "msg": record.getMessage(),
    }
    rid = getattr(record, "http_request_id", None)
    if rid is not None:
        fields["http_request_id"] = rid
    fields.update(
        (key, value)
        for key, value in record.__dict__.items()
        if key not in _STANDARD and not key.startswith("_")
    )
    return fields


class JsonFormatter(logging.Formatter):
    """One JSON object per line: ts, level, logger, msg, http_request_id, extras, exc."""

    def format(self, record: logging.LogRecord) -> str:
        fields = _fields(record)
        if record.exc_info:
            fields["exc"] = self.formatException(record.exc_info)
        return msgspec.json.encode(fields, enc_hook=str).decode()


class KeyValueFormatter(logging.Formatter):
    """``ts level logger msg key=value …``; values with spaces are quoted."""

    def format(self, record: logging.LogRecord) -> str:
        fields = _fields(record)
        head = f"{fields.pop('ts')} {fields.pop('level'):<7} {fields.pop('logger')}"
        parts = [head, _quote(str(fields.pop("msg")))]
        parts += [f"{key}={_quote(str(value))}" for key, value in fields.items()]
        line = " ".join(parts)
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        return line


def _quote(value: str) -> str:
    if value and not any(ch in value for ch in ' "=\n'):
        return value
    return msgspec.json.encode(value).decode()


class _Handler(logging.StreamHandler):  # type: ignore[type-arg]
    """Ours, so that configuring again replaces it rather than adding a second one."""


def configure_logging(level: str, fmt: Literal["json", "text", "none"]) -> None:
    """Send every log record to stderr in ``fmt`` at ``level`` and above (root logger)."""
    if fmt == "none":
        return
    root = logging.getLogger()
    for handler in list(root.handlers):
        if isinstance(handler, _Handler):
            root.removeHandler(handler)
    handler = _Handler(sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else KeyValueFormatter())
    handler.addFilter(RequestIdFilter())
    root.addHandler(handler)
    root.setLevel(level)
    # Our middleware writes one access line per request; uvicorn's would repeat it.
    logging.getLogger("uvicorn.access").disabled = True
