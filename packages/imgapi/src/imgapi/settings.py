"""Settings of the HTTP API: one msgspec Struct, read from ``IMGAPI_*`` environment variables.

Every field ``name`` (except ``core``) is read from ``IMGAPI_NAME``; tuples are comma-separated.
``core`` is imgcore's :class:`~imgcore.config.Config`, read from the ``IMGCORE_*`` variables.
The descriptions below are the reference documentation.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Annotated, Any, Literal

import msgspec
from imgcore.config import Config, read_env
from imgcore.config import env_name as core_env_name

__all__ = ["ENV_PREFIX", "Settings", "env_name"]

ENV_PREFIX = "IMGAPI_"


def _doc(description: str, **kw: Any) -> msgspec.Meta:
    return msgspec.Meta(description=description, **kw)


class Settings(msgspec.Struct, frozen=True, kw_only=True):
    """Everything the API needs; defaults give the embedded setup on http://127.0.0.1:8000."""

    public_url: Annotated[
        str,
        _doc(
            "Base URL clients reach the API at (links in responses and webhooks; stored files "
            "are served under PUBLIC_URL/media unless IMGCORE_PUBLIC_URL says otherwise)"
        ),
    ] = "http://127.0.0.1:8000"
    api_keys: Annotated[
        tuple[str, ...],
        _doc(
            "API keys, comma-separated, each a client of its own (beside the keys of "
            "`imgapi keys create`). Once any key exists, API calls need "
            "'Authorization: Bearer KEY' or 'X-API-Key: KEY'. None anywhere: the API is open"
        ),
    ] = ()
    max_unfinished_images: Annotated[
        int,
        _doc(
            "Images a client may have not finished yet, over all its running requests; an "
            "upload past it gets 429 with Retry-After and stores nothing. 0: no limit. "
            "`imgapi keys limit NAME N` sets one client's own limit",
            ge=0,
        ),
    ] = 0
    session_secret: Annotated[
        str,
        _doc(
            "Secret that signs admin session cookies; empty: a random one per process "
            "(sessions end when it restarts)"
        ),
    ] = ""
    admin_hash_concurrency: Annotated[
        int,
        _doc(
            "Admin password hashes (argon2, 64 MiB each) computed at once, on threads of "
            "their own; further logins wait their turn, and the API's work keeps its threads",
            ge=1,
        ),
    ] = 2
    admin_login_per_address: Annotated[
        int,
        _doc(
            "Admin login attempts one client address may make per IMGAPI_ADMIN_LOGIN_WINDOW; "
            "more get 429 with Retry-After (counted in each server process)",
            ge=1,
        ),
    ] = 20
    admin_login_per_account: Annotated[
        int,
        _doc(
            "Admin login attempts for one username, from anywhere, per "
            "IMGAPI_ADMIN_LOGIN_WINDOW; more get 429 with Retry-After (counted in each "
            "server process)",
            ge=1,
        ),
    ] = 10
    admin_login_window: Annotated[
        float,
        _doc("Seconds of the sliding window the admin login limits count attempts in", gt=0),
    ] = 60.0
    max_upload_bytes: Annotated[
        int, _doc("Largest upload request body in bytes (larger ones get 413)", gt=0)
    ] = 100_000_000
    host: Annotated[str, _doc("Address `imgapi serve` listens on")] = "127.0.0.1"
    port: Annotated[int, _doc("Port `imgapi serve` listens on", ge=0, le=65535)] = 8000
    workers: Annotated[
        int, _doc("Server processes started by `imgapi serve` (each runs an executor)", ge=1)
    ] = 1
    shutdown_timeout: Annotated[
        float,
        _doc("Seconds in-flight HTTP requests get to finish on shutdown", gt=0),
    ] = 30.0
    max_header_bytes: Annotated[
        int,
        _doc(
            "Largest request head (request line and headers) in bytes; a larger one gets 431 "
            "and the connection is closed before the rest is parsed",
            gt=0,
        ),
    ] = 65_536
    header_timeout: Annotated[
        float,
        _doc(
            "Seconds a client gets to send a request's line and headers, counted from the "
            "connection's opening or the request's first byte; then the connection is closed "
            "(with 408 if part of a head arrived)",
            gt=0,
        ),
    ] = 10.0
    body_timeout: Annotated[
        float,
        _doc(
            "Seconds a request body may go without a byte arriving while the server waits "
            "for it; then the connection is closed",
            gt=0,
        ),
    ] = 30.0
    linger_bytes: Annotated[
        int,
        _doc(
            "After an answer sent before its request body ended (an upload refused early), "
            "bytes of the rest read and discarded before the connection closes, so clients "
            "that send the whole body before reading still get the answer; 0 closes at once",
            ge=0,
        ),
    ] = 16_777_216
    linger_seconds: Annotated[
        float,
        _doc("Longest time spent reading and discarding that rest (see IMGAPI_LINGER_BYTES)", ge=0),
    ] = 10.0
    log_level: Annotated[
        Literal["DEBUG", "INFO", "WARNING", "ERROR"], _doc("Least severe log level written")
    ] = "INFO"
    log_format: Annotated[
        Literal["json", "text", "none"],
        _doc(
            "Log lines as JSON objects, as key=value text, or 'none' to leave logging as the "
            "host process configured it"
        ),
    ] = "json"
    core: Annotated[Config, _doc("imgcore's configuration, from the IMGCORE_* variables")] = (
        msgspec.field(default_factory=Config)
    )

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **overrides: Any) -> Settings:
        """Read the ``IMGAPI_*`` and ``IMGCORE_*`` variables; ``overrides`` win over both.

        ``IMGCORE_PUBLIC_URL`` and ``IMGCORE_API_URL``, when not set, follow
        ``IMGAPI_PUBLIC_URL`` (``…/media`` and the URL itself).
        """
        env = os.environ if environ is None else environ
        settings = read_env(
            cls,
            ENV_PREFIX,
            env,
            {k: v for k, v in overrides.items() if k != "core"},
            skip=frozenset({"core"}),
        )
        core = overrides.get("core")
        if core is None:
            core = Config.from_env(env, **derived_core_urls(settings.public_url, env))
        return msgspec.structs.replace(settings, core=core)

    @property
    def base_url(self) -> str:
        """``public_url`` without a trailing slash."""
        return self.public_url.rstrip("/")


def derived_core_urls(public_url: str, environ: Mapping[str, str]) -> dict[str, str]:
    """imgcore's ``public_url`` and ``api_url`` from the API's, for those not set explicitly."""
    base = public_url.rstrip("/")
    derived: dict[str, str] = {}
    if core_env_name("public_url") not in environ:
        derived["public_url"] = f"{base}/media"
    if core_env_name("api_url") not in environ:
        derived["api_url"] = base
    return derived


def env_name(field: str) -> str:
    """The environment variable that sets ``field``."""
    return ENV_PREFIX + field.upper()
