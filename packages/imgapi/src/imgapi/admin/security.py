"""Admin sessions (a signed, encrypted cookie naming a session kept in the database), the
login guard and CSRF tokens."""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
from typing import Any
from urllib.parse import urlsplit

from litestar.connection import ASGIConnection
from litestar.handlers import BaseRouteHandler
from litestar.middleware import DefineMiddleware
from litestar.middleware.session import SessionMiddleware
from litestar.middleware.session.client_side import ClientSideSessionBackend, CookieBackendConfig
from litestar.types import ASGIApp

from imgapi.admin.accounts import SESSION_LIFETIME, session_user
from imgapi.runtime import provide_runtime
from imgapi.settings import Settings

__all__ = [
    "ADMIN_PATH",
    "COOKIE_NAME",
    "SESSION_SECONDS",
    "SESSION_TOKEN",
    "CsrfError",
    "LoginRequiredError",
    "check_csrf",
    "csrf_token",
    "require_admin",
    "safe_next",
    "session_config",
    "session_middleware",
]

ADMIN_PATH = "/admin"
COOKIE_NAME = "imgapi_admin"
#: The cookie's lifetime: the session's own (it ends in the database as well).
SESSION_SECONDS = int(SESSION_LIFETIME.total_seconds())
#: The key of the session's token in the cookie.
SESSION_TOKEN = "sid"  # noqa: S105 - a key name, not a secret


class LoginRequiredError(Exception):
    """Raised by the guard; answered with a redirect to the login page."""

    def __init__(self, next_path: str) -> None:
        super().__init__(next_path)
        self.next_path = next_path


class CsrfError(Exception):
    """A form came without this session's CSRF token: answered with 403."""


def session_config(settings: Settings) -> CookieBackendConfig:
    """The admin session cookie: HttpOnly, SameSite=Lax, Secure behind https, path /admin.

    Its key derives from ``IMGAPI_SESSION_SECRET``; without one, a random key per process.
    """
    secret = settings.session_secret.encode() if settings.session_secret else os.urandom(32)
    return CookieBackendConfig(
        # AES-GCM wants 16, 24 or 32 bytes: any secret is stretched to 32.
        secret=hashlib.sha256(b"imgapi-admin-session\0" + secret).digest(),
        key=COOKIE_NAME,
        max_age=SESSION_SECONDS,
        path=ADMIN_PATH,
        secure=urlsplit(settings.public_url).scheme == "https",
        httponly=True,
        samesite="lax",
    )


def session_middleware(settings: Settings) -> DefineMiddleware:
    """The session middleware for the admin router, built when the app is.

    ``CookieBackendConfig.middleware`` holds a ready backend (an AES-GCM object), which a
    router cannot carry: Litestar deep-copies routers when registering them.
    """
    return DefineMiddleware(_session_middleware, config=session_config(settings))


def _session_middleware(app: ASGIApp, config: CookieBackendConfig) -> SessionMiddleware[Any]:
    return SessionMiddleware(app, backend=ClientSideSessionBackend(config=config))


def csrf_token(session: dict[str, Any]) -> str:
    """This session's CSRF token, created on first use."""
    token = session.get("csrf")
    if not isinstance(token, str):
        token = secrets.token_urlsafe(32)
        session["csrf"] = token
    return token


def check_csrf(session: dict[str, Any], presented: object) -> None:
    """Raise :class:`CsrfError` unless ``presented`` is this session's token."""
    expected = session.get("csrf")
    if not (
        isinstance(expected, str)
        and isinstance(presented, str)
        and hmac.compare_digest(expected.encode(), presented.encode())
    ):
        raise CsrfError


def safe_next(value: object) -> str:
    """``value`` if it is a path of the admin pages on this site, else the admin home."""
    if not isinstance(value, str) or not value.startswith(ADMIN_PATH):
        return ADMIN_PATH
    parts = urlsplit(value)
    if (
        parts.scheme
        or parts.netloc
        or "\\" in value
        or any(ord(ch) < 0x20 or ord(ch) == 0x7F for ch in value)
        or "/.." in parts.path
        or (parts.path != ADMIN_PATH and not parts.path.startswith(ADMIN_PATH + "/"))
    ):
        return ADMIN_PATH
    return value


async def require_admin(
    connection: ASGIConnection[Any, Any, Any, Any], route_handler: BaseRouteHandler
) -> None:
    """Litestar guard: the cookie must name a live session in the database.

    Logging out, a new password and ``imgapi revoke-sessions`` delete sessions there, so a
    copy of the cookie dies with its session. Sets ``connection.state.admin`` (the user) and
    ``connection.state.session_token``. Handlers marked ``opt={"public": True}`` (the login
    page, the stylesheet) are open.
    """
    if route_handler.opt.get("public"):
        return
    session = connection.scope.get("session")
    token = session.get(SESSION_TOKEN) if isinstance(session, dict) else None
    if isinstance(token, str) and token:
        engine = provide_runtime(connection.app.state).require_engine()
        user = await session_user(engine.database, token)
        if user is not None:
            connection.state.admin = user
            connection.state.session_token = token
            return
    path = connection.url.path
    if connection.url.query:
        path += "?" + connection.url.query
    raise LoginRequiredError(path if connection.scope.get("method") == "GET" else ADMIN_PATH)
