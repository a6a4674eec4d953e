"""Object storage through obstore: S3 and S3-compatible stores, Google Cloud Storage, Azure."""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import timedelta
from typing import TYPE_CHECKING
from urllib.parse import quote

import msgspec
import obstore
from imgcore.plugin import ConfigError, StorageError, safe_key
from obstore.exceptions import (
    AlreadyExistsError,
    InvalidPathError,
    NotSupportedError,
    PermissionDeniedError,
    PreconditionError,
    UnauthenticatedError,
    UnknownConfigurationKeyError,
)
from obstore.store import AzureStore, GCSStore, S3Store, from_url

if TYPE_CHECKING:
    from obstore.store import ObjectStore, RetryConfig

__all__ = [
    "CACHE_CONTROL",
    "ObjectStorage",
    "S3Settings",
    "storage_error",
]

CACHE_CONTROL = "public, max-age=31536000, immutable"
"""Set on every upload: a key is written once per image and never changes meaning."""

MAX_PRESIGN_SECONDS = 7 * 24 * 3600  # the longest an S3 (SigV4) or GCS signature may last

# obstore retries 5xx, 429 and connection errors itself; its default (10 retries within 3
# minutes) would hold an image worker for minutes, while imgcore re-queues the image anyway.
RETRY_CONFIG: RetryConfig = {"max_retries": 3, "retry_timeout": timedelta(seconds=30)}

_PERMANENT: tuple[type[Exception], ...] = (
    PermissionDeniedError,
    UnauthenticatedError,
    InvalidPathError,
    NotSupportedError,
    UnknownConfigurationKeyError,
    AlreadyExistsError,
    PreconditionError,
    FileNotFoundError,  # on put or list: the bucket or container does not exist
    ValueError,
)
_STATUS = re.compile(r"status code: (\d{3})")


class S3Settings(msgspec.Struct, frozen=True, kw_only=True):
    """This plugin's settings, read from ``IMGCORE_S3_*`` environment variables.

    Credentials, region and endpoint are not here: obstore reads the store's standard
    variables itself (``AWS_*``, ``GOOGLE_*``, ``AZURE_*``).
    """

    public_url: str = ""
    """``IMGCORE_S3_PUBLIC_URL``: base URL serving the storage URL's prefix publicly
    (a public bucket or a CDN); empty means presigned URLs."""
    presign_seconds: int = MAX_PRESIGN_SECONDS
    """``IMGCORE_S3_PRESIGN_SECONDS``: lifetime of presigned URLs (at most 7 days on S3)."""

    @classmethod
    def from_env(cls, environ: Mapping[str, str]) -> S3Settings:
        """The settings set in ``environ``; raises :class:`ConfigError` for a bad value."""
        public_url = environ.get("IMGCORE_S3_PUBLIC_URL", "").strip()
        raw = environ.get("IMGCORE_S3_PRESIGN_SECONDS", "").strip()
        if not raw:
            return cls(public_url=public_url)
        try:
            seconds = int(raw)
        except ValueError:
            seconds = 0
        if not 0 < seconds <= MAX_PRESIGN_SECONDS:
            raise ConfigError(
                f"IMGCORE_S3_PRESIGN_SECONDS must be a whole number of seconds from 1 to "
                f"{MAX_PRESIGN_SECONDS}, not {raw!r}"
            )
        return cls(public_url=public_url, presign_seconds=seconds)


def storage_error(action: str, key: str, exc: Exception) -> StorageError:
    """obstore's exception as a :class:`StorageError`, transient for 5xx, 429 and no answer."""
    first_line = str(exc).split("\n", 1)[0][:500]
    message = f"cannot {action} {key!r}: {first_line}"
    if isinstance(exc, _PERMANENT):
        return StorageError(message, transient=False)
    found = _STATUS.search(str(exc))
    status = int(found.group(1)) if found else None
    transient = status is None or status >= 500 or status in (408, 429)
    return StorageError(message, transient=transient)


class ObjectStorage:
    """Images in an object store; URLs are ``public_url/key`` or presigned GET URLs.

    Uploads are single PUTs (or multipart uploads completed in one call), so a reader sees
    the whole object or none of it, and putting a key again replaces it.
    """

    def __init__(
        self,
        store: ObjectStore,
        *,
        public_url: str = "",
        presign: timedelta = timedelta(seconds=MAX_PRESIGN_SECONDS),
        cache_control: str = CACHE_CONTROL,
    ) -> None:
        if not public_url and not isinstance(store, S3Store | GCSStore | AzureStore):
            raise ConfigError(
                f"{type(store).__name__} cannot presign URLs: set IMGCORE_S3_PUBLIC_URL"
            )
        self.store = store
        self.public_url = public_url.rstrip("/")
        self.presign = presign
        self.cache_control = cache_control

    @classmethod
    def from_url(cls, url: str, settings: S3Settings | None = None) -> ObjectStorage:
        """``s3://bucket/prefix``, ``gs://bucket/prefix`` or ``az://container/prefix``.

        Credentials, region and endpoint come from the store's standard environment
        variables (``AWS_ACCESS_KEY_ID``, ``AWS_REGION``, ``AWS_ENDPOINT_URL``…).
        """
        settings = settings or S3Settings()
        try:
            store = from_url(url, retry_config=RETRY_CONFIG)
        except Exception as exc:  # obstore raises ValueError or its own errors here
            first_line = str(exc).split("\n", 1)[0]
            raise ConfigError(f"cannot use storage URL {url!r}: {first_line}") from None
        return cls(
            store,
            public_url=settings.public_url,
            presign=timedelta(seconds=settings.presign_seconds),
        )

    async def put(self, key: str, data: bytes, *, content_type: str) -> None:
        """Upload with ``Content-Type`` and a long, immutable ``Cache-Control``."""
        safe_key(key)
        try:
            await obstore.put_async(
                self.store,
                key,
                data,
                attributes={"Content-Type": content_type, "Cache-Control": self.cache_control},
            )
        except Exception as exc:
            raise storage_error("store", key, exc) from exc

    async def get(self, key: str) -> bytes:
        """The object's bytes; ``KeyError`` when there is none."""
        safe_key(key)
        try:
            result = await obstore.get_async(self.store, key)
            return bytes(await result.bytes_async())
        except FileNotFoundError:
            raise KeyError(key) from None
        except Exception as exc:
            raise storage_error("read", key, exc) from exc

    async def delete(self, key: str) -> None:
        """Delete the object; a missing one is not an error (S3 semantics)."""
        safe_key(key)
        try:
            await obstore.delete_async(self.store, key)
        except FileNotFoundError:
            return
        except Exception as exc:
            raise storage_error("delete", key, exc) from exc

    def url_for(self, key: str) -> str:
        """``public_url/key`` when a public base is set, otherwise a presigned GET URL.

        Signing is computed locally from the credentials; no request is made.
        """
        safe_key(key)
        if self.public_url:
            return f"{self.public_url}/{quote(key)}"
        if not isinstance(self.store, S3Store | GCSStore | AzureStore):
            raise StorageError(f"{type(self.store).__name__} cannot presign URLs", transient=False)
        try:
            return obstore.sign(self.store, "GET", key, self.presign)
        except Exception as exc:
            raise storage_error("sign a URL for", key, exc) from exc

    async def aclose(self) -> None:
        """Nothing to release: obstore's HTTP client closes when the store is dropped."""

    def __repr__(self) -> str:
        return f"ObjectStorage({self.store!r})"
