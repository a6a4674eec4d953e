"""Streaming read of an upload body: ``multipart/form-data`` or a bare CSV.

Nothing is buffered beyond one network chunk: the ``file`` part's bytes are handed on as
they arrive, so imgcore validates the CSV while it streams in. Small fields must come
before the file (as S3's POST uploads require): the CSV is stored by the time a field
after it could be read, so a ``webhook_url`` there is rejected rather than lost.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, AsyncIterator, Collection
from typing import Any

from litestar.exceptions import InternalServerException
from multipart import (  # type: ignore[import-untyped]
    MultipartError,
    MultipartSegment,
    ParserLimitReached,
    PushMultipartParser,
)

from imgapi.problems import ProblemError

__all__ = [
    "CSV_MEDIA_TYPES",
    "FILE_FIELD",
    "PRESET_FIELD",
    "WEBHOOK_FIELD",
    "UploadForm",
    "check_file_type",
    "limited",
]

FILE_FIELD = "file"
WEBHOOK_FIELD = "webhook_url"
PRESET_FIELD = "preset"
MAX_FIELD_BYTES = 8192
MAX_PARTS = 16

#: Content types accepted for the CSV. Browsers on Windows label .csv files
#: application/vnd.ms-excel and curl labels them application/octet-stream; the CSV parser
#: rejects what is not UTF-8 text, whatever the label said.
CSV_MEDIA_TYPES = frozenset(
    {
        "text/csv",
        "text/plain",
        "text/x-csv",
        "text/comma-separated-values",
        "application/csv",
        "application/x-csv",
        "application/vnd.ms-excel",
        "application/octet-stream",
    }
)


def too_large(max_bytes: int) -> ProblemError:
    """The 413 answer to an upload over ``max_bytes``."""
    return ProblemError(
        413, f"the upload is larger than {max_bytes} bytes", reason="upload_too_large"
    )


def check_file_type(content_type: str | None) -> None:
    """Raise 415 unless ``content_type`` (without parameters) may label a CSV."""
    if content_type is not None and content_type.lower() not in CSV_MEDIA_TYPES:
        raise ProblemError(
            415,
            f"the file is {content_type}, not a CSV; export it as CSV (UTF-8)",
            reason="unsupported_media_type",
        )


async def limited(body: AsyncIterator[bytes], max_bytes: int) -> AsyncGenerator[bytes, None]:
    """``body``'s non-empty chunks; 413 as soon as more than ``max_bytes`` arrived."""
    total = 0
    try:
        async for chunk in body:
            total += len(chunk)
            if total > max_bytes:
                raise too_large(max_bytes)
            if chunk:
                yield chunk
    except InternalServerException:
        # Litestar's way of saying the client went away mid-body.
        raise ProblemError(
            400, "the connection closed before the upload ended", reason="upload_interrupted"
        ) from None


def _invalid(message: str) -> ProblemError:
    return ProblemError(400, message, reason="invalid_multipart")


class UploadForm:
    """A ``multipart/form-data`` upload read as it arrives.

    ``await read_until_file()`` reads the small fields before the ``file`` part, then
    ``file_chunks()`` yields the file's bytes and, once it ends, checks the rest of the body.
    Every problem is raised as a :class:`ProblemError` from whichever of the two is running.
    """

    def __init__(
        self,
        body: AsyncIterator[bytes],
        boundary: str,
        *,
        keep: Collection[str] = (WEBHOOK_FIELD, PRESET_FIELD),
    ) -> None:
        """``keep``: the small fields to read (others are ignored)."""
        self._events = self._parse(body, boundary)
        self._keep_names = frozenset(keep)
        #: Small fields read before the file, by name.
        self.fields: dict[str, str] = {}
        #: The file part's file name and content type, once reached.
        self.filename: str | None = None
        self.content_type: str | None = None

    async def _parse(self, body: AsyncIterator[bytes], boundary: str) -> AsyncGenerator[Any, None]:
        try:
            with PushMultipartParser(
                boundary, max_segment_count=MAX_PARTS, max_header_count=8
            ) as parser:
                async for chunk in body:
                    for event in parser.parse(chunk):
                        yield event
                    if parser.closed:
                        return
        except ParserLimitReached as exc:
            raise _invalid(f"the form is too large in its structure: {exc}") from None
        except MultipartError as exc:
            raise _invalid(f"malformed multipart body: {exc}") from None

    async def read_until_file(self) -> None:
        """Read the fields before the ``file`` part; 400 if there is no such part."""
        name: str | None = None
        value = bytearray()
        async for event in self._events:
            if isinstance(event, MultipartSegment):
                if event.name == FILE_FIELD:
                    self.filename = _basename(event.filename)
                    self.content_type = event.content_type
                    return
                name = event.name
                value.clear()
            elif event is None:
                self._keep(name, bytes(value))
                name = None
            else:
                value += event
                if len(value) > MAX_FIELD_BYTES:
                    raise ProblemError(
                        400,
                        f"the form field {name!r} is longer than {MAX_FIELD_BYTES} bytes",
                        reason="field_too_long",
                    )
        raise ProblemError(
            400, f"the form has no {FILE_FIELD!r} field with the CSV", reason="missing_file"
        )

    def _keep(self, name: str | None, value: bytes) -> None:
        if name is None or name not in self._keep_names:
            return  # unknown fields are ignored, as the original app did
        if name in self.fields:
            raise ProblemError(400, f"the form has {name!r} twice", reason="duplicate_field")
        try:
            self.fields[name] = value.decode()
        except UnicodeDecodeError:
            raise ProblemError(
                400, f"the form field {name!r} is not UTF-8", reason="invalid_field"
            ) from None

    async def file_chunks(self) -> AsyncGenerator[bytes, None]:
        """The file's bytes as they arrive, then a check of whatever follows the file."""
        async for event in self._events:
            if event is None:
                break
            yield event if isinstance(event, bytes) else bytes(event)
        async for event in self._events:
            if not isinstance(event, MultipartSegment):
                continue
            if event.name == FILE_FIELD:
                raise ProblemError(400, "send one file per upload", reason="multiple_files")
            if event.name == WEBHOOK_FIELD:
                raise ProblemError(
                    400,
                    f"send {WEBHOOK_FIELD!r} before {FILE_FIELD!r}: the file is read as it "
                    "arrives, so fields after it come too late",
                    reason="field_after_file",
                )

    async def aclose(self) -> None:
        """Stop reading (the rest of the body is left unread)."""
        await self._events.aclose()


def _basename(filename: str | None) -> str | None:
    # Old browsers send the client's full path.
    if not filename:
        return None
    name = filename.replace("\\", "/").rsplit("/", 1)[-1].strip()
    return name[:255] or None
