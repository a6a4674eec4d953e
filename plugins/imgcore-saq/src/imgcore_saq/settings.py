"""The SAQ executor's settings, read from ``IMGCORE_QUEUE_URL`` and ``IMGCORE_SAQ_*``."""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from typing import Annotated, Any
from urllib.parse import urlsplit

import msgspec
from imgcore.plugin import Config, ConfigError, read_env

__all__ = ["QUEUE_URL_ENV", "SaqSettings", "default_timeout"]

QUEUE_URL_ENV = "IMGCORE_QUEUE_URL"
_PREFIX = "IMGCORE_SAQ_"
_SCHEMES = ("redis", "rediss", "postgres", "postgresql")

# Seconds a job gets for compressing and storing once its download is in (on top of the
# download's own worst case); generous, because it includes waiting for a free core.
_PROCESS_MARGIN = 120.0


def _doc(description: str, **kw: Any) -> msgspec.Meta:
    return msgspec.Meta(description=description, **kw)


class SaqSettings(msgspec.Struct, frozen=True, kw_only=True):
    """Where the queue is and how workers use it; ``IMGCORE_SAQ_<FIELD>`` sets each field.

    ``queue_url`` comes from ``IMGCORE_QUEUE_URL``.
    """

    queue_url: Annotated[
        str,
        _doc(
            "The queue: redis://host:6379/0 (or rediss://) or postgresql://user@host/db "
            "(a SQLAlchemy +driver suffix is dropped)"
        ),
    ]
    queue: Annotated[
        str, _doc("Queue name: API and workers of one deployment use the same", min_length=1)
    ] = "imgcore"
    concurrency: Annotated[
        int,
        _doc("Jobs (images) a worker process runs at once; 0 = IMGCORE_FETCH_CONCURRENCY", ge=0),
    ] = 0
    timeout: Annotated[
        int,
        _doc(
            "Seconds one job may run before it is cancelled and retried; 0 = every download "
            "attempt with its backoff plus two minutes to compress and store",
            ge=0,
        ),
    ] = 0
    retries: Annotated[
        int,
        _doc(
            "Times SAQ runs a job that raised, timed out or lost its worker (1 s backoff doubling "
            "to 60 s); the image's own attempts are counted in the database",
            ge=1,
        ),
    ] = 10
    sweep_seconds: Annotated[
        int,
        _doc("How often a worker looks for jobs of dead workers (no heartbeat) to retry", ge=1),
    ] = 10
    reconcile_seconds: Annotated[
        float,
        _doc(
            "How often a worker enqueues unfinished images that have no job in the queue "
            "(also once at start); 0 = at start only",
            ge=0,
        ),
    ] = 300.0
    consume: Annotated[
        bool,
        _doc("False: this process only enqueues (an API host); it runs no SAQ worker"),
    ] = True

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **overrides: Any) -> SaqSettings:
        """Read the settings; ConfigError when the queue URL is missing or unusable."""
        env = os.environ if environ is None else environ
        given = {"queue_url": env[QUEUE_URL_ENV]} if QUEUE_URL_ENV in env else {}
        given.update(overrides)
        if not given.get("queue_url"):
            raise ConfigError(
                f"the saq executor needs {QUEUE_URL_ENV} (redis://… or postgresql://…)"
            )
        try:
            settings = read_env(cls, _PREFIX, env, given, skip=frozenset({"queue_url"}))
        except ConfigError as exc:
            raise ConfigError(f"invalid saq setting: {exc}") from exc
        if settings.scheme not in _SCHEMES:
            raise ConfigError(
                f"{QUEUE_URL_ENV} must start with redis://, rediss:// or postgresql://, "
                f"not {settings.queue_url.partition(':')[0]!r}"
            )
        return settings

    @property
    def scheme(self) -> str:
        """``redis``, ``rediss``, ``postgres`` or ``postgresql`` (a ``+driver`` dropped)."""
        return urlsplit(self.queue_url).scheme.lower().partition("+")[0]

    @property
    def is_postgres(self) -> bool:
        """Whether the queue lives in PostgreSQL."""
        return self.scheme.startswith("postgres")

    def job_timeout(self, config: Config) -> int:
        """Seconds one job may run: ``timeout``, or derived from the download limits."""
        return self.timeout or default_timeout(config)


def default_timeout(config: Config) -> int:
    """Every download attempt at its total timeout, the backoff between them, and a margin."""
    fetch = config.fetch_options()
    backoff = (fetch.max_attempts - 1) * fetch.backoff_max
    download = fetch.max_attempts * fetch.total_timeout + backoff
    return math.ceil(download + _PROCESS_MARGIN)
