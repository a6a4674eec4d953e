"""The :class:`~imgcore.contracts.Work` an Engine hands its executor: leases and the pipeline.

Every database call an executor makes goes through here, so executors (the built-in one and
plugins) know nothing of the tables, the queries or how transactions are run.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from functools import partial
from uuid import UUID

import sqlalchemy as sa

from imgcore._clock import utcnow
from imgcore._db import images
from imgcore._db.database import Database
from imgcore._pipeline import Pipeline
from imgcore.contracts import Claim

__all__ = ["LeasedWork"]


class LeasedWork:
    """:class:`~imgcore.contracts.Work` on the engine's database, leases held as ``owner``."""

    def __init__(
        self,
        *,
        database: Database,
        pipeline: Pipeline,
        lease: timedelta,
        fetch_concurrency: int,
        compression_workers: int,
    ) -> None:
        self._database = database
        self._pipeline = pipeline
        self._lease = lease
        self._fetch_concurrency = fetch_concurrency
        self._compression_workers = compression_workers

    @property
    def owner(self) -> str:
        """This process's name on the leases it takes."""
        return self._pipeline.owner

    @property
    def lease(self) -> timedelta:
        """How long a claim holds an image unless renewed."""
        return self._lease

    @property
    def fetch_concurrency(self) -> int:
        """Downloads worth running at once."""
        return self._fetch_concurrency

    @property
    def compression_workers(self) -> int:
        """The processes compressing images."""
        return self._compression_workers

    async def claim(self, limit: int) -> list[Claim]:
        """Lease up to ``limit`` due images."""
        return await self._database.write(
            partial(
                images.claim_images, owner=self.owner, limit=limit, lease=self._lease, now=utcnow()
            )
        )

    async def claim_image(self, image_id: int) -> Claim | datetime | None:
        """Lease ``image_id`` if due, else when it will be; ``None`` once it has ended."""
        owner, lease, now = self.owner, self._lease, utcnow()

        # One transaction: the due time read is the one that made the claim fail.
        def claim_or_due(conn: sa.Connection) -> Claim | datetime | None:
            claims = images.claim_image_ids(conn, [image_id], owner=owner, lease=lease, now=now)
            return claims[0] if claims else images.image_due_at(conn, image_id)

        return await self._database.write(claim_or_due)

    async def due_at(self, image_id: int) -> datetime | None:
        """When an unfinished image may next be claimed; ``None`` once it has ended."""
        return await self._database.read(partial(images.image_due_at, image_id=image_id))

    async def pending_ids(
        self, request_id: UUID | None, *, after: int = 0, limit: int = 1000
    ) -> list[int]:
        """Ids above ``after`` of unfinished images (of a request, or of all), ascending."""
        return await self._database.read(
            partial(images.pending_image_ids, request_id=request_id, after_id=after, limit=limit)
        )

    async def process(self, claim: Claim) -> None:
        """Take a leased image to its next state."""
        await self._pipeline.process(claim)

    async def renew(self, ids: Sequence[int]) -> int:
        """Extend this owner's leases on ``ids``; returns how many it still holds."""
        return await self._database.write(
            partial(images.renew_leases, owner=self.owner, ids=ids, until=utcnow() + self._lease)
        )

    async def defer(self, claim: Claim, *, error_reason: str, error: str) -> bool:
        """Give a leased image back as pending, due now, with the reason recorded."""
        return await self._database.write(
            partial(
                images.defer_image,
                claim=claim,
                owner=self.owner,
                at=utcnow(),
                error_reason=error_reason,
                error=error,
            )
        )

    async def release(self) -> int:
        """Give back every image this owner holds, uncounted."""
        return await self._database.write(
            partial(images.release_images, owner=self.owner, now=utcnow())
        )
