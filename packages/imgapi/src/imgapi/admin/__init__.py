"""The admin pages under ``/admin``: login, requests, details, retry and delete.

Server-rendered (Jinja, autoescaped) with one small stylesheet; the session is a signed,
encrypted cookie limited to ``/admin`` naming a session kept in the database; every form
carries the session's CSRF token; logins are limited per address and account.
"""

from __future__ import annotations

from datetime import datetime

from jinja2 import Environment, PackageLoader, select_autoescape
from litestar import Router
from litestar.datastructures import ResponseHeader, State
from litestar.di import Provide
from litestar.plugins.jinja import JinjaTemplateEngine
from litestar.template import TemplateConfig

from imgapi.admin.security import ADMIN_PATH, require_admin, session_middleware
from imgapi.admin.throttle import LoginLimits
from imgapi.admin.views import HANDLERS, exception_handlers
from imgapi.settings import Settings

__all__ = ["admin_router", "template_config"]

# Pages embed nothing from elsewhere and may not be framed.
_HEADERS = [
    ResponseHeader(
        name="Content-Security-Policy",
        value=(
            "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; "
            "frame-ancestors 'none'; base-uri 'none'"
        ),
    ),
    ResponseHeader(name="X-Frame-Options", value="DENY"),
    ResponseHeader(name="Referrer-Policy", value="same-origin"),
    ResponseHeader(name="X-Content-Type-Options", value="nosniff"),
]


def admin_router(settings: Settings) -> Router:
    """Every admin route, behind the login guard (except the login page and stylesheet).

    The app's state holds the :class:`LoginLimits` (``login_limits``) the login route uses.
    """
    return Router(
        path=ADMIN_PATH,
        route_handlers=HANDLERS,
        guards=[require_admin],
        middleware=[session_middleware(settings)],
        dependencies={"login_limits": Provide(_login_limits, sync_to_thread=False)},
        exception_handlers=exception_handlers(),
        response_headers=_HEADERS,
        include_in_schema=False,
    )


def _login_limits(state: State) -> LoginLimits:
    limits: LoginLimits = state.login_limits
    return limits


_NONE = "\N{EN DASH}"  # shown for a missing value


def _size(value: int | None) -> str:
    if value is None:
        return _NONE
    size = float(value)
    for unit in ("B", "KB", "MB", "GB"):
        if size < 1000 or unit == "GB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1000
    return f"{size:.1f} GB"  # pragma: no cover - the loop always returns


def _saving(input_bytes: int | None, output_bytes: int | None) -> str:
    if not input_bytes or output_bytes is None:
        return _NONE
    return f"{(1 - output_bytes / input_bytes) * 100:.0f}%"


def _when(value: datetime | None) -> str:
    return _NONE if value is None else value.strftime("%Y-%m-%d %H:%M:%S UTC")


def template_config() -> TemplateConfig[JinjaTemplateEngine]:
    """The app's template engine: the admin templates, autoescaped."""
    environment = Environment(
        loader=PackageLoader("imgapi.admin", "templates"),
        autoescape=select_autoescape(default=True, default_for_string=True),
        trim_blocks=True,
        lstrip_blocks=True,
    )
    environment.filters.update(size=_size, saving=_saving, when=_when)
    return TemplateConfig(instance=JinjaTemplateEngine.from_environment(environment))
