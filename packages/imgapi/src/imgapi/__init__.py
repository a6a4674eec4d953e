"""imgapi: the HTTP API and admin page for imgcore.

``create_app(settings)`` builds the Litestar app; ``imgapi serve`` runs it on uvicorn.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

if TYPE_CHECKING:
    from imgapi.app import create_app
    from imgapi.settings import Settings

__all__ = ["Settings", "__version__", "create_app"]


def __getattr__(name: str) -> Any:
    # Lazy, so that `import imgapi` (and the CLI's --help) does not load Litestar.
    if name == "create_app":
        from imgapi.app import create_app

        return create_app
    if name == "Settings":
        from imgapi.settings import Settings

        return Settings
    raise AttributeError(f"module 'imgapi' has no attribute {name!r}")
