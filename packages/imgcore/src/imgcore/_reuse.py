"""What a re-import may reuse: recipes, and one fetch at a time per source in this process."""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator, Hashable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import anyio
import msgspec

from imgcore._db.sources import Known
from imgcore.contracts import CodecSpec, CompressOptions
from imgcore.presets import Preset

__all__ = ["SourceLocks", "reason_without_asking", "recipe"]


def recipe(preset: Preset, options: CompressOptions, codecs: Sequence[CodecSpec]) -> str:
    """SHA-256 of everything that decides an image's outputs: the preset's variants (its name
    does not matter), the compression options and the codecs, in their order."""
    described = {
        "variants": preset.variants,
        "options": options,
        "codecs": [spec.name for spec in codecs],
    }
    return hashlib.sha256(msgspec.json.encode(described)).hexdigest()


def reason_without_asking(
    known: Known | None, *, request_id: object, max_age: float, now: datetime
) -> str | None:
    """Why ``known``'s outputs may be reused without asking the origin, else None.

    ``same_content``: this very request fetched the source already (a URL named in several
    rows); ``max_age``: the origin served or confirmed it less than ``max_age`` seconds ago.
    """
    if known is None or known.rendition_id is None:
        return None
    if known.checked_by == request_id:
        return "same_content"
    if max_age > 0 and now - known.checked_at < timedelta(seconds=max_age):
        return "max_age"
    return None


@dataclass
class _Held:
    lock: anyio.Lock = field(default_factory=anyio.Lock)
    users: int = 0


class SourceLocks:
    """One image per source at a time: a second image of the same source waits, then finds
    what the first recorded instead of downloading it again."""

    def __init__(self) -> None:
        self._held: dict[Hashable, _Held] = {}

    @asynccontextmanager
    async def hold(self, key: Hashable) -> AsyncIterator[None]:
        """Hold ``key`` for the block (waiting while another task holds it)."""
        held = self._held.get(key)
        if held is None:
            held = self._held[key] = _Held()
        held.users += 1
        try:
            async with held.lock:
                yield
        finally:
            held.users -= 1
            if held.users == 0:
                del self._held[key]
