"""Configuration: one msgspec Struct, read from ``IMGCORE_*`` environment variables.

Every field ``name`` is read from the variable ``IMGCORE_NAME``; tuples are comma-separated.
The descriptions below are the reference documentation (the docs page is generated from them).
:func:`read_env` is the one environment reader: imgapi's settings and plugins' use it too.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import TYPE_CHECKING, Annotated, Any, Literal, TypeVar

import msgspec

from imgcore.errors import ImgcoreError

if TYPE_CHECKING:
    from imgcore._csvio import CsvLimits
    from imgcore._fetch import FetchOptions
    from imgcore.contracts import CompressOptions

__all__ = ["ENV_PREFIX", "Config", "ConfigError", "env_name", "read_env"]

ENV_PREFIX = "IMGCORE_"

S = TypeVar("S", bound=msgspec.Struct)
_LISTS = (msgspec.inspect.VarTupleType, msgspec.inspect.TupleType, msgspec.inspect.ListType)


def _doc(description: str, **kw: Any) -> msgspec.Meta:
    return msgspec.Meta(description=description, **kw)


class ConfigError(ImgcoreError):
    """A configuration value that cannot be used."""

    reason = "invalid_config"


class Config(msgspec.Struct, frozen=True, kw_only=True):
    """Everything imgcore needs to run; defaults give the embedded setup (SQLite, ./media)."""

    database_url: Annotated[
        str,
        _doc(
            "SQLAlchemy URL of the database: sqlite+aiosqlite:///path.sqlite3 (embedded default), "
            "postgresql+asyncpg://… or mysql+asyncmy://…"
        ),
    ] = "sqlite+aiosqlite:///imgcore.sqlite3"
    storage_url: Annotated[
        str,
        _doc(
            "Where compressed images are stored, chosen by scheme: file://DIR (relative paths are "
            "resolved against the working directory) or a plugin's scheme such as s3://bucket/prefix"
        ),
    ] = "file:media"
    public_url: Annotated[
        str,
        _doc(
            "Base URL under which stored files are reachable (for file storage, the URL where the "
            "API serves media/); empty means the storage's own URLs"
        ),
    ] = "http://127.0.0.1:8000/media"
    executor: Annotated[
        str, _doc("Name of the executor that processes pending images (local, or a plugin's)")
    ] = "local"
    fetch_allow: Annotated[
        tuple[str, ...],
        _doc(
            "Addresses the downloader may reach although they are not public: CIDRs, IPs or host "
            "names, comma-separated (e.g. 127.0.0.0/8,::1). Empty: public addresses only"
        ),
    ] = ()
    fetch_max_bytes: Annotated[int, _doc("Largest image download in bytes", gt=0)] = 50_000_000
    fetch_connect_timeout: Annotated[float, _doc("Seconds to connect", gt=0)] = 5.0
    fetch_read_timeout: Annotated[float, _doc("Seconds to wait for each read", gt=0)] = 15.0
    fetch_total_timeout: Annotated[
        float, _doc("Seconds one download attempt may take in all", gt=0)
    ] = 60.0
    fetch_max_redirects: Annotated[int, _doc("Redirects followed per download", ge=0)] = 5
    fetch_max_attempts: Annotated[
        int, _doc("Download attempts on transient errors (timeouts, 429, 5xx)", ge=1)
    ] = 4
    fetch_concurrency: Annotated[int, _doc("Downloads in flight at once", ge=1)] = 32
    fetch_per_host: Annotated[int, _doc("Downloads in flight at once per host", ge=1)] = 8
    codec: Annotated[
        str,
        _doc(
            "Codec that decodes and encodes images, by name as imgcore plugins lists it "
            "(pillow, vips…); empty picks the best installed"
        ),
    ] = ""
    quality: Annotated[int, _doc("Output quality (1-95)", ge=1, le=95)] = 50
    quality_mode: Annotated[
        Literal["visual", "exact"],
        _doc(
            "What the quality number means: visual, the look libjpeg gives at that quality, "
            "from every codec and format at its calibrated setting; exact, the number as it "
            "is to the encoder"
        ),
    ] = "visual"
    output_format: Annotated[Literal["JPEG", "WEBP", "AVIF"], _doc("Output image format")] = "JPEG"
    optimize: Annotated[
        bool, _doc("JPEG: optimise Huffman tables (about 2% smaller, slower encode)")
    ] = False
    progressive: Annotated[bool, _doc("JPEG: write progressive files (slower encode)")] = False
    max_width: Annotated[int, _doc("Downscale wider images to this width; 0 keeps it", ge=0)] = 0
    max_height: Annotated[int, _doc("Downscale taller images to this height; 0 keeps it", ge=0)] = 0
    max_pixels: Annotated[int, _doc("Decompression-bomb limit: largest input in pixels", gt=0)] = (
        50_000_000
    )
    background: Annotated[str, _doc("Colour that transparent images are flattened on")] = "#ffffff"
    keep_original: Annotated[
        bool,
        _doc("Keep a JPEG source as it is when re-encoding would make it larger"),
    ] = True
    presets_file: Annotated[
        str,
        _doc(
            "TOML file of presets (named lists of variants) beside the built-in default and "
            "catalog; empty: the built-ins only. Checked when the engine starts"
        ),
    ] = ""
    reuse: Annotated[
        bool,
        _doc(
            "Remember each source processed (its validators and content hash) and reuse its "
            "outputs when a later import names it again and the origin still serves the same "
            "content; false: every image is downloaded and processed anew"
        ),
    ] = True
    reuse_max_age: Annotated[
        float,
        _doc(
            "Seconds after the origin last served or confirmed a source within which it is "
            "reused without asking the origin; 0: always revalidate (a conditional GET)",
            ge=0,
        ),
    ] = 0.0
    csv_max_rows: Annotated[int, _doc("Most rows in one CSV, blank ones too", gt=0)] = 1_000_000
    csv_max_columns: Annotated[int, _doc("Most columns in one CSV", gt=0)] = 64
    csv_max_urls_per_row: Annotated[int, _doc("Most image URLs in one row", gt=0)] = 50
    csv_max_cell_bytes: Annotated[int, _doc("Largest cell in bytes", gt=0)] = 64 * 1024
    csv_max_file_bytes: Annotated[int, _doc("Largest CSV file in bytes", gt=0)] = 100_000_000
    workers: Annotated[
        int, _doc("Images compressed at once by the local executor; 0 = one per CPU core", ge=0)
    ] = 0
    compress_pool: Annotated[
        Literal["process", "thread"],
        _doc(
            "Where the local executor compresses: a pool of worker processes (faster on the "
            "bench: no GIL contention with downloads and the database) or threads in this process"
        ),
    ] = "process"
    lease_seconds: Annotated[
        float,
        _doc(
            "How long a claimed image stays claimed without renewal; a crashed worker's images "
            "are taken over after this",
            gt=0,
        ),
    ] = 20.0
    max_attempts: Annotated[
        int, _doc("Processing attempts per image before it fails (crashes count too)", ge=1)
    ] = 5
    image_deadline: Annotated[
        float,
        _doc(
            "Seconds an image may take from its first attempt, over every download and "
            "processing attempt, retries, waits and restarts included; then it fails as "
            "deadline_exceeded",
            gt=0,
        ),
    ] = 120.0
    api_url: Annotated[
        str,
        _doc("Base URL of the HTTP API, for the links in webhook payloads"),
    ] = "http://127.0.0.1:8000"
    webhook_secrets: Annotated[
        tuple[str, ...],
        _doc(
            "Standard Webhooks signing secrets (whsec_…), comma-separated; each signs every "
            "delivery so receivers can rotate. Empty: deliveries are not signed"
        ),
    ] = ()
    webhook_timeout: Annotated[float, _doc("Seconds one webhook call may take", gt=0)] = 15.0
    webhook_retry_schedule: Annotated[
        tuple[float, ...],
        _doc(
            "Seconds to wait before each retry of a failed webhook (with ±20% jitter); "
            "after the last, the delivery is given up"
        ),
    ] = (5, 300, 1800, 7200, 18000, 36000, 36000)
    poll_interval: Annotated[
        float, _doc("Seconds an idle executor waits before looking for work again", gt=0)
    ] = 0.5

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **overrides: Any) -> Config:
        """Read every ``IMGCORE_*`` variable that is set; ``overrides`` win over the environment."""
        return read_env(cls, ENV_PREFIX, environ, overrides)

    def csv_limits(self) -> CsvLimits:
        """The CSV limits this config sets."""
        from imgcore._csvio import CsvLimits

        return CsvLimits(
            max_rows=self.csv_max_rows,
            max_columns=self.csv_max_columns,
            max_urls_per_row=self.csv_max_urls_per_row,
            max_cell_bytes=self.csv_max_cell_bytes,
            max_file_bytes=self.csv_max_file_bytes,
        )

    def compress_options(self) -> CompressOptions:
        """The compression settings this config sets."""
        from imgcore.contracts import CompressOptions

        return CompressOptions(
            quality=self.quality,
            quality_mode=self.quality_mode,
            format=self.output_format,
            optimize=self.optimize,
            progressive=self.progressive,
            max_width=self.max_width or None,
            max_height=self.max_height or None,
            max_pixels=self.max_pixels,
            background=self.background,
            keep_original=self.keep_original,
        )

    def fetch_options(self) -> FetchOptions:
        """The downloader settings this config sets."""
        from imgcore._fetch import FetchOptions

        return FetchOptions(
            allow=self.fetch_allow,
            max_bytes=self.fetch_max_bytes,
            connect_timeout=self.fetch_connect_timeout,
            read_timeout=self.fetch_read_timeout,
            total_timeout=self.fetch_total_timeout,
            max_redirects=self.fetch_max_redirects,
            max_attempts=self.fetch_max_attempts,
            concurrency=self.fetch_concurrency,
            per_host=self.fetch_per_host,
        )

    def replace(self, **changes: Any) -> Config:
        """A copy with some fields changed (validated like the environment)."""
        return msgspec.convert(
            {**msgspec.structs.asdict(self), **changes}, type(self), strict=False
        )


def env_name(field: str) -> str:
    """The environment variable that sets ``field``."""
    return ENV_PREFIX + field.upper()


def read_env(
    cls: type[S],
    prefix: str,
    environ: Mapping[str, str] | None = None,
    overrides: Mapping[str, Any] | None = None,
    *,
    skip: frozenset[str] = frozenset(),
) -> S:
    """An instance of the msgspec Struct ``cls`` from the variables ``PREFIX`` + ``FIELD``.

    Values are converted and checked by msgspec (``"8"`` becomes an int, ``"false"`` a bool);
    tuple and list fields are comma-separated. ``overrides`` win over the environment; fields
    in ``skip`` are not read from it. Raises :class:`ConfigError` naming the variable.
    """
    env = os.environ if environ is None else environ
    raw: dict[str, Any] = {}
    for field in msgspec.inspect.type_info(cls).fields:  # type: ignore[attr-defined]
        if field.name in skip:
            continue
        value = env.get(prefix + field.name.upper())
        if value is None:
            continue
        kind = field.type.type if isinstance(field.type, msgspec.inspect.Metadata) else field.type
        if isinstance(kind, _LISTS):
            raw[field.name] = [item.strip() for item in value.split(",") if item.strip()]
        else:
            raw[field.name] = value
    raw.update(overrides or {})
    try:
        return msgspec.convert(raw, cls, strict=False)
    except msgspec.ValidationError as exc:
        raise ConfigError(_env_message(str(exc), prefix)) from exc


def _env_message(message: str, prefix: str) -> str:
    # msgspec says "at `$.quality`"; users set variables, so name the variable.
    if "`$." in message:
        head, _, rest = message.partition("`$.")
        field, _, tail = rest.partition("`")
        return f"{head}{prefix}{field.split('[')[0].upper()}{tail}"
    return message
