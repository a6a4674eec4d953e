"""Thumbnails of processed images: made from the stored output when first asked for, then kept.

Only the admin pages show thumbnails, so they are not made while images are processed: the
first request for one decodes the output at a reduced scale, stores the thumbnail beside it
and records its key with the image.
"""

from __future__ import annotations

from typing import Final
from uuid import UUID

import anyio
import anyio.to_thread
import msgspec

from imgcore._compress import InvalidOptionsError, make_thumbnail
from imgcore._db import images
from imgcore._db.database import Database
from imgcore.contracts import Storage, image_key

__all__ = ["THUMBNAIL_EXTENSION", "ThumbnailOptions", "Thumbnails", "thumbnail_key"]

THUMBNAIL_EXTENSION: Final = ".thumb.jpg"
"""Suffix of an image's thumbnail key (``requests/<request>/<image>.thumb.jpg``)."""


class ThumbnailOptions(msgspec.Struct, frozen=True, kw_only=True):
    """The size and quality of the thumbnails :class:`Thumbnails` makes."""

    size: int = 256
    """Fit within ``size`` x ``size`` pixels (keeping the aspect ratio, never enlarging)."""
    quality: int = 70
    """JPEG quality, 1..95."""

    def __post_init__(self) -> None:
        if isinstance(self.size, bool) or self.size < 1:
            raise InvalidOptionsError(f"size must be at least 1, not {self.size!r}")
        if isinstance(self.quality, bool) or not 1 <= self.quality <= 95:
            raise InvalidOptionsError(f"quality must be 1..95, not {self.quality!r}")


def thumbnail_key(request_id: UUID, image_id: int) -> str:
    """Where an image's thumbnail is stored, beside its output."""
    return image_key(request_id, image_id, THUMBNAIL_EXTENSION)


class Thumbnails:
    """Gets a done image's thumbnail, making and storing it the first time.

    Pillow releases the GIL while it decodes, resizes and encodes, so thumbnails are made on
    worker threads of this process (at most ``threads`` at once), not queued behind the
    images that the compression workers are processing.
    """

    def __init__(
        self,
        database: Database,
        storage: Storage,
        options: ThumbnailOptions | None = None,
        *,
        threads: int = 2,
    ) -> None:
        self.database = database
        self.storage = storage
        self.options = options or ThumbnailOptions()
        self._threads = anyio.CapacityLimiter(threads)

    async def get(self, request_id: UUID, image_id: int) -> bytes | None:
        """The JPEG thumbnail of image ``image_id`` of ``request_id``; None unless it is done.

        Raises :class:`imgcore.contracts.StorageError` when the storage fails, and
        :class:`imgcore._compress.ImageError` when the stored output cannot be decoded.
        """
        keys = await self.database.read(
            lambda conn: images.done_image_keys(conn, request_id, image_id), short=True
        )
        if keys is None:
            return None
        output_key, stored_key = keys
        if stored_key is not None:
            try:
                return await self.storage.get(stored_key)
            except KeyError:
                pass  # recorded, then lost (or never written): make it again
        try:
            output = await self.storage.get(output_key)
        except KeyError:
            return None
        thumbnail = await anyio.to_thread.run_sync(
            make_thumbnail, output, self.options.size, self.options.quality, limiter=self._threads
        )
        key = thumbnail_key(request_id, image_id)
        # The key first: a thumbnail stored then never recorded would outlive a deleted request.
        if stored_key != key:
            await self.database.write(lambda conn: images.set_thumbnail_key(conn, image_id, key))
        await self.storage.put(key, thumbnail, content_type="image/jpeg")
        return thumbnail
