"""What a re-import may reuse: recipes, and one fetch at a time per source in this process."""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator, Hashable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import partial

import anyio
import anyio.lowlevel
import msgspec
import sqlalchemy as sa

from imgcore._db import sources
from imgcore._db.database import Database
from imgcore._db.sources import Known
from imgcore.contracts import CodecSpec, CompressOptions
from imgcore.presets import Preset

__all__ = ["SourceLocks", "SourceLookups", "reason_without_asking", "recipe"]


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


@dataclass
class _Asked:
    client: str
    url: str
    recipe: str
    done: bool = False
    known: Known | None = None


class SourceLookups:
    """Looks sources up for images that start together (a claimed batch) in one query each
    client and recipe, instead of one query per image."""

    def __init__(self, database: Database) -> None:
        self._database = database
        self._queue: list[_Asked] = []
        self._lock = anyio.Lock()

    async def get(self, client: str, url: str, recipe: str) -> Known | None:
        """What is remembered of ``url`` for ``client`` and ``recipe`` (see
        :func:`imgcore._db.sources.lookup`)."""
        asked = _Asked(client, url, recipe)
        self._queue.append(asked)
        # Let the other images started in this batch ask first; the first to go on asks
        # for everyone queued, the others wait for its answer.
        await anyio.lowlevel.checkpoint()
        async with self._lock:
            if not asked.done:
                batch, self._queue = self._queue, []
                try:
                    found = await self._database.read(partial(_lookup_all, asked=batch), short=True)
                except BaseException:
                    # Those queued with this one ask again themselves.
                    self._queue = [each for each in batch if each is not asked] + self._queue
                    raise
                for each in batch:
                    each.known, each.done = found.get((each.client, each.recipe, each.url)), True
        return asked.known


def _lookup_all(conn: sa.Connection, asked: list[_Asked]) -> dict[tuple[str, str, str], Known]:
    """What is remembered of each asked URL, by (client, recipe, URL): one query per client
    and recipe."""
    groups: dict[tuple[str, str], list[str]] = {}
    for each in asked:
        groups.setdefault((each.client, each.recipe), []).append(each.url)
    return {
        (client, recipe_, url): known
        for (client, recipe_), urls in groups.items()
        for url, known in sources.lookup_many(
            conn, client=client, urls=urls, recipe=recipe_
        ).items()
    }
