"""The Litestar application: ``create_app(settings)``."""

from __future__ import annotations

from urllib.parse import urlsplit

from litestar import Litestar, Router
from litestar.datastructures import State
from litestar.di import Provide
from litestar.middleware import DefineMiddleware
from litestar.openapi import OpenAPIConfig
from litestar.openapi.spec import Components
from litestar.types import ControllerRouterHandler

from imgapi import __version__
from imgapi.admin import admin_router, template_config
from imgapi.admin.throttle import LoginLimits
from imgapi.auth import SECURITY_SCHEMES, provide_caller
from imgapi.logs import configure_logging
from imgapi.metrics import Metrics
from imgapi.middleware import RequestContextMiddleware
from imgapi.problems import exception_handlers
from imgapi.routes.events import events
from imgapi.routes.health import healthz, metrics, readyz
from imgapi.routes.media import media
from imgapi.routes.presets import presets
from imgapi.routes.requests import cancel_request, delete_request, list_requests, retry_request
from imgapi.routes.status import output_csv, status
from imgapi.routes.upload import upload
from imgapi.runtime import Runtime, provide_engine, provide_runtime, run_engine
from imgapi.schema_page import schema_plugins
from imgapi.settings import Settings

__all__ = ["create_app"]

# Bodies of routes other than the upload (which enforces IMGAPI_MAX_UPLOAD_BYTES itself).
OTHER_BODY_LIMIT = 64 * 1024


def create_app(settings: Settings | None = None) -> Litestar:
    """The API app; ``settings`` default to the ``IMGAPI_*`` / ``IMGCORE_*`` environment.

    Its lifespan opens an :class:`imgcore.engine.Engine` and runs the executor in the
    background; ``/media`` is mounted when storage is a local directory (``file:``).
    """
    settings = settings if settings is not None else Settings.from_env()
    configure_logging(settings.log_level, settings.log_format)
    runtime = Runtime(settings, Metrics())
    # Without keys the guarded routes are open: the empty requirement says so in the schema
    # (a client, or a schema-driven test, may then call them without credentials).
    guarded = Router(
        path="/",
        route_handlers=[
            upload,
            status,
            output_csv,
            events,
            list_requests,
            retry_request,
            cancel_request,
            delete_request,
            presets,
        ],
        security=None if settings.api_keys else [{}],
    )
    handlers: list[ControllerRouterHandler] = [guarded, healthz, readyz, metrics]
    if urlsplit(settings.core.storage_url).scheme == "file":
        handlers.append(media)
    handlers.append(admin_router(settings))
    return Litestar(
        route_handlers=handlers,
        lifespan=[run_engine],
        state=State({"runtime": runtime, "login_limits": LoginLimits(settings)}),
        dependencies={
            "runtime": Provide(provide_runtime, sync_to_thread=False),
            "engine": Provide(provide_engine, sync_to_thread=False),
            "caller": Provide(provide_caller, sync_to_thread=False),
        },
        middleware=[DefineMiddleware(RequestContextMiddleware, metrics=runtime.metrics)],
        exception_handlers=exception_handlers(),
        template_config=template_config(),
        request_max_body_size=OTHER_BODY_LIMIT,
        openapi_config=OpenAPIConfig(
            title="imgapi",
            version=__version__,
            description=(
                "Upload a CSV of products and their image URLs; every image is downloaded, "
                "compressed and stored. Errors are RFC 9457 problem documents."
            ),
            path="/schema",
            # A page that works offline (the stock viewers load their scripts from a CDN).
            render_plugins=schema_plugins(),
            components=Components(security_schemes=SECURITY_SCHEMES),
        ),
        logging_config=None,
    )
