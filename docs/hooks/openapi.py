"""mkdocs hook: the API's OpenAPI schema as ``openapi.json`` in the site, made from the app.

The schema is generated from ``imgapi.create_app`` at every build (the same document the API
serves at ``/schema/openapi.json``), so the file the docs link cannot drift from the code.
"""

from __future__ import annotations

import json
from typing import Any

from mkdocs.config.defaults import MkDocsConfig
from mkdocs.structure.files import File, Files

PATH = "openapi.json"


def openapi_schema() -> dict[str, Any]:
    """The OpenAPI document of the app with default settings (file storage: ``/media`` too)."""
    from imgapi.app import create_app
    from imgapi.settings import Settings

    # log_format "none": building the app must not take over mkdocs' logging.
    app = create_app(Settings(log_format="none"))
    schema: dict[str, Any] = app.openapi_schema.to_schema()
    return schema


def on_files(files: Files, config: MkDocsConfig, **kwargs: Any) -> Files:
    """Add the generated ``openapi.json``, so that pages may link it (checked by --strict)."""
    content = json.dumps(openapi_schema(), indent=2, ensure_ascii=False) + "\n"
    files.append(File.generated(config, PATH, content=content))
    return files
