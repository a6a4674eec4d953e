"""The engine's argument checks: ids, ranges and pages, and the CSV sources it accepts."""

from __future__ import annotations

from collections.abc import AsyncIterable, AsyncIterator, Iterable
from typing import IO
from uuid import UUID

import anyio

from imgcore.errors import OutOfRangeError, RequestNotFoundError

__all__ = [
    "MAX_CLIENT",
    "MAX_POSITION",
    "READ_CHUNK",
    "Source",
    "as_uuid",
    "check_client",
    "check_page",
    "check_range",
    "chunks",
]

Source = bytes | IO[bytes] | Iterable[bytes] | AsyncIterable[bytes]
"""What a CSV may be submitted as."""
READ_CHUNK = 256 * 1024
MAX_POSITION = 2**31 - 1
"""The largest product position a page may reach (``start + limit``): positions are 32-bit
integers in PostgreSQL and MariaDB."""


MAX_CLIENT = 64
"""The longest client id a request may belong to."""


def check_client(client: str | None) -> None:
    """Raise ValueError for a client id that is empty or longer than :data:`MAX_CLIENT`."""
    if client is not None and not 1 <= len(client) <= MAX_CLIENT:
        raise ValueError(f"a client id has 1 to {MAX_CLIENT} characters, not {len(client)}")


def check_range(name: str, value: int, low: int, high: int) -> None:
    """Raise :class:`OutOfRangeError` unless ``low <= value <= high`` (an int, not a bool)."""
    # A clear error here instead of the driver's OverflowError (or a 32-bit overflow on
    # PostgreSQL) deep in a query.
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise OutOfRangeError(name, value, low, high)


def check_page(start: int, limit: int) -> None:
    """Raise :class:`OutOfRangeError` unless the page stays within :data:`MAX_POSITION`."""
    check_range("start", start, 0, MAX_POSITION)
    check_range("limit", limit, 0, MAX_POSITION - start)


def as_uuid(value: UUID | str) -> UUID:
    """A request id; :class:`RequestNotFoundError` for text that is not one."""
    if isinstance(value, UUID):
        return value
    try:
        return UUID(value)
    except (ValueError, AttributeError, TypeError):
        raise RequestNotFoundError(value) from None


async def chunks(source: Source) -> AsyncIterator[bytes]:
    """The bytes of ``source``, a chunk at a time (files read on a worker thread)."""
    if isinstance(source, bytes | bytearray | memoryview):
        data = bytes(source)
        for i in range(0, len(data), READ_CHUNK):
            yield data[i : i + READ_CHUNK]
    elif isinstance(source, AsyncIterable):
        async for chunk in source:
            yield chunk
    elif hasattr(source, "read"):
        while chunk := await anyio.to_thread.run_sync(source.read, READ_CHUNK):
            yield chunk
    else:
        for chunk in source:
            yield chunk
