"""``GET /media/{key}``: the stored images, when storage is a local directory (``file:``)."""

from __future__ import annotations

import mimetypes
import os
import stat
from pathlib import Path
from typing import Annotated, Any

import anyio
from imgcore import Engine, StorageError
from litestar import Response, get
from litestar.datastructures import ETag
from litestar.di import NamedDependency
from litestar.openapi.datastructures import ResponseSpec
from litestar.params import FromPath, HeaderParameter
from litestar.response import File

from imgapi.problems import ProblemError, documented_header, problem_responses

__all__ = ["CACHE_CONTROL", "best_for", "media"]

#: A key always holds the same image once written (a re-run rewrites identical bytes).
CACHE_CONTROL = "public, max-age=31536000, immutable"

# mimetypes on Python 3.11 does not know every output format.
_TYPES = {
    ".jpg": "image/jpeg",
    ".jpeg": "image/jpeg",
    ".webp": "image/webp",
    ".avif": "image/avif",
    ".png": "image/png",
}


# Best first: the smaller files, for the same picture, where the client takes them.
_PREFERENCE = ("AVIF", "WEBP", "JPEG")


def best_for(alternatives: list[tuple[str, str]], accept: str | None) -> str:
    """The key, among ``(key, format)`` holding the same picture (the requested one first),
    in the best format ``accept`` lists by name (``image/avif``, ``image/webp``; a wildcard
    does not count: ``*/*`` clients may not decode AVIF). JPEG, or the requested key,
    otherwise."""
    taken = _accepted(accept)
    by_format = {fmt: key for key, fmt in reversed(alternatives)}
    for fmt in _PREFERENCE:
        if fmt in by_format and (fmt == "JPEG" or _MEDIA_TYPES[fmt] in taken):
            return by_format[fmt]
    return alternatives[0][0]


_MEDIA_TYPES = {"AVIF": "image/avif", "WEBP": "image/webp", "JPEG": "image/jpeg"}


def _accepted(accept: str | None) -> set[str]:
    """The media types ``accept`` names with a non-zero quality."""
    taken = set()
    for item in (accept or "").split(","):
        media_type, *params = (part.strip() for part in item.split(";"))
        quality = 1.0
        for param in params:
            name, _, value = param.partition("=")
            if name.strip().lower() == "q":
                try:
                    quality = float(value)
                except ValueError:
                    quality = 0.0
        if quality > 0:
            taken.add(media_type.lower())
    return taken


async def _stat(engine: Engine, key: str) -> tuple[Path, os.stat_result]:
    try:
        path = engine.media_path(key)
        if path is None:
            raise _not_found()
        return path, await anyio.to_thread.run_sync(os.stat, path)
    except (StorageError, OSError, ValueError):
        raise _not_found() from None


def _not_found() -> ProblemError:
    return ProblemError(404, "no stored file has this name", reason="not_found")


def _etag_matches(if_none_match: str | None, etag: str) -> bool:
    if not if_none_match:
        return False
    if if_none_match.strip() == "*":
        return True
    # Weak comparison (RFC 9110 13.1.2): W/ prefixes do not matter for If-None-Match.
    candidates = {tag.strip().removeprefix("W/") for tag in if_none_match.split(",")}
    return etag in candidates


@get(
    "/media/{key:path}",
    responses={
        **problem_responses(400, 404),
        304: ResponseSpec(
            data_container=None,
            description="Not modified: `If-None-Match` names the image's ETag",
            generate_examples=False,
        ),
    },
    summary="A stored image",
    description="Served with a strong ETag and a one-year immutable Cache-Control.",
    tags=["media"],
    media_type="image/*",
    response_headers=[
        documented_header("ETag", "Strong validator, for `If-None-Match`"),
        documented_header("Cache-Control", CACHE_CONTROL),
    ],
)
async def media(
    key: FromPath[str],
    engine: NamedDependency[Engine],
    if_none_match: Annotated[
        str | None,
        HeaderParameter(name="If-None-Match", description="ETags held; a match answers 304"),
    ] = None,
    accept: Annotated[
        str | None,
        HeaderParameter(
            name="Accept",
            description="Formats the client takes: where the preset wrote the same picture "
            "as AVIF or WebP too, the best one listed here is served",
        ),
    ] = None,
) -> Response[Any]:
    """Serve one stored file (or the same picture in a better format the client accepts)."""
    key = key.lstrip("/")
    headers = {"Cache-Control": CACHE_CONTROL, "X-Content-Type-Options": "nosniff"}
    # The file asked for first: a key that names nothing costs no database read.
    path, info = await _stat(engine, key)
    alternatives = await engine.alternatives(key)
    if len(alternatives) > 1:
        # The answer depends on Accept: caches must keep one per Accept value.
        headers["Vary"] = "Accept"
        best = best_for(alternatives, accept)
        if best != key:
            path, info = await _stat(engine, best)
    media_type = _TYPES.get(path.suffix.lower()) or mimetypes.guess_type(path.name)[0] or ""
    if not stat.S_ISREG(info.st_mode) or not media_type.startswith("image/"):
        raise _not_found()  # only images are stored here: serve nothing else
    tag = f"{info.st_size:x}-{info.st_mtime_ns:x}"
    if _etag_matches(if_none_match, f'"{tag}"'):
        return Response(b"", status_code=304, headers={**headers, "ETag": f'"{tag}"'})
    return File(
        path,
        filename=path.name,
        content_disposition_type="inline",
        media_type=media_type,
        stat_result=info,
        etag=ETag(value=tag),
        headers=headers,
    )
