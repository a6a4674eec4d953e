"""API keys: ``Authorization: Bearer KEY`` or ``X-API-Key: KEY`` when keys are configured."""

from __future__ import annotations

import hmac
from collections.abc import Sequence
from typing import Any

from litestar.connection import ASGIConnection
from litestar.handlers import BaseRouteHandler
from litestar.openapi.spec import Reference, SecurityRequirement, SecurityScheme

from imgapi.problems import ProblemError
from imgapi.runtime import provide_runtime

__all__ = [
    "API_KEY_HEADER",
    "SECURITY",
    "SECURITY_SCHEMES",
    "key_matches",
    "presented_key",
    "require_api_key",
]

API_KEY_HEADER = "x-api-key"

#: OpenAPI security schemes (components) and the requirement of the protected routes.
SECURITY_SCHEMES: dict[str, SecurityScheme | Reference] = {
    "bearer": SecurityScheme(type="http", scheme="bearer", description="Authorization: Bearer KEY"),
    "apiKey": SecurityScheme(
        type="apiKey", name="X-API-Key", security_scheme_in="header", description="X-API-Key: KEY"
    ),
}
SECURITY: list[SecurityRequirement] = [{"bearer": []}, {"apiKey": []}]


def presented_key(authorization: str | None, api_key: str | None) -> bytes | None:
    """The key a client sent, as the raw header bytes, or None."""
    if authorization:
        scheme, _, credentials = authorization.strip().partition(" ")
        if scheme.lower() == "bearer" and credentials.strip():
            # Header values arrive decoded as latin-1; back to the bytes that were sent.
            return credentials.strip().encode("latin-1")
    if api_key:
        return api_key.strip().encode("latin-1")
    return None


def key_matches(presented: bytes, keys: Sequence[bytes]) -> bool:
    """Whether ``presented`` is one of ``keys``, comparing each in constant time."""
    found = False
    for key in keys:
        # No early exit: the time taken does not tell which key (if any) matched.
        found |= hmac.compare_digest(presented, key)
    return found


async def require_api_key(
    connection: ASGIConnection[Any, Any, Any, Any], _: BaseRouteHandler
) -> None:
    """Litestar guard: 401 unless the request carries a configured key (open when none are)."""
    keys = provide_runtime(connection.app.state).api_keys
    if not keys:
        return
    presented = presented_key(
        connection.headers.get("authorization"), connection.headers.get(API_KEY_HEADER)
    )
    if presented is None or not key_matches(presented, keys):
        raise ProblemError(
            401,
            "send a valid API key as 'Authorization: Bearer KEY' or 'X-API-Key: KEY'",
            reason="unauthorized",
            headers={"WWW-Authenticate": 'Bearer realm="imgapi"'},
        )
