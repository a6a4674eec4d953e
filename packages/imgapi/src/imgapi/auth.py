"""API keys: ``Authorization: Bearer KEY`` or ``X-API-Key: KEY`` once any key exists.

A key names its client (see :mod:`imgapi.clients`); the guard records it in the connection's
state, where routes read it (:func:`provide_caller`) to show each client only its own requests.
"""

from __future__ import annotations

import hmac
from collections.abc import Sequence
from typing import Any

from litestar.connection import ASGIConnection
from litestar.handlers import BaseRouteHandler
from litestar.openapi.spec import Reference, SecurityRequirement, SecurityScheme

from imgapi.clients import any_key, client_of_key, env_client_name
from imgapi.problems import ProblemError
from imgapi.runtime import provide_runtime

__all__ = [
    "API_KEY_HEADER",
    "SECURITY",
    "SECURITY_SCHEMES",
    "key_matches",
    "matching_key",
    "presented_key",
    "provide_caller",
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


def matching_key(presented: bytes, keys: Sequence[bytes]) -> bytes | None:
    """The one of ``keys`` that ``presented`` is, comparing each in constant time."""
    found = None
    for key in keys:
        # No early exit: the time taken does not tell which key (if any) matched.
        if hmac.compare_digest(presented, key):
            found = key
    return found


def key_matches(presented: bytes, keys: Sequence[bytes]) -> bool:
    """Whether ``presented`` is one of ``keys``, comparing each in constant time."""
    return matching_key(presented, keys) is not None


_CALLER = "imgapi_client"


def provide_caller(request: ASGIConnection[Any, Any, Any, Any]) -> str | None:
    """Dependency: the client the request's key belongs to; None on an open API (no keys)."""
    caller: str | None = request.state.get(_CALLER)
    return caller


async def require_api_key(
    connection: ASGIConnection[Any, Any, Any, Any], _: BaseRouteHandler
) -> None:
    """Litestar guard: 401 unless the request carries a valid key, once any key exists.

    Keys in ``IMGAPI_API_KEYS`` are compared in memory; others are looked up by their hash on
    every request (no cache, so a revoked key fails at once, in every server process).
    """
    runtime = provide_runtime(connection.app.state)
    presented = presented_key(
        connection.headers.get("authorization"), connection.headers.get(API_KEY_HEADER)
    )
    client: str | None = None
    if presented is not None:
        env_key = matching_key(presented, runtime.api_keys)
        if env_key is not None:
            client = env_client_name(env_key)
        else:
            engine = runtime.require_engine()
            client = await engine.database.read(
                lambda conn: client_of_key(conn, presented), short=True
            )
    if client is None:
        if not runtime.api_keys:
            engine = runtime.require_engine()
            if not await engine.database.read(any_key, short=True):
                return  # no key anywhere: the API is open
        raise ProblemError(
            401,
            "send a valid API key as 'Authorization: Bearer KEY' or 'X-API-Key: KEY'",
            reason="unauthorized",
            headers={"WWW-Authenticate": 'Bearer realm="imgapi"'},
        )
    connection.state[_CALLER] = client
