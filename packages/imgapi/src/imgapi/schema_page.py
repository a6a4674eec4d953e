"""``/schema``: the API reference as one plain HTML page, made from the OpenAPI document.

Litestar's viewers (Redoc, Swagger UI…) load their JavaScript from a CDN, which a server
without internet access cannot reach: their pages stay blank. This page needs nothing but
itself (no script, no external style or image); the documents behind it are
``/schema/openapi.json`` and ``/schema/openapi.yaml``, for any OpenAPI tool.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from html import escape
from typing import Any

from litestar import Request
from litestar.openapi.plugins import JsonRenderPlugin, OpenAPIRenderPlugin, YamlRenderPlugin

__all__ = ["SchemaPagePlugin", "schema_plugins"]

_METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")

_STYLE = """
body { font: 15px/1.5 system-ui, sans-serif; margin: 2rem auto; max-width: 60rem;
       padding: 0 1rem; color: #1b1f24; }
code { font: 0.9em ui-monospace, monospace; }
section { border-top: 1px solid #d0d7de; padding: 0.5rem 0; }
h2 code { background: #eef1f4; padding: 0.1rem 0.4rem; border-radius: 4px; }
table { border-collapse: collapse; margin: 0.3rem 0; }
td, th { border: 1px solid #d0d7de; padding: 0.2rem 0.5rem; text-align: left;
         vertical-align: top; }
"""


def _text(value: object) -> str:
    return escape(str(value)) if value is not None else ""


def _rows(header: Iterable[str], rows: Iterable[Iterable[object]]) -> str:
    body = "".join("<tr>" + "".join(f"<td>{cell}</td>" for cell in row) + "</tr>" for row in rows)
    if not body:
        return ""
    head = "".join(f"<th>{_text(name)}</th>" for name in header)
    return f"<table><tr>{head}</tr>{body}</table>"


def _types(content: Mapping[str, Any] | None) -> str:
    return ", ".join(f"<code>{_text(name)}</code>" for name in content or {})


def _security(operation: Mapping[str, Any]) -> str:
    requirements = operation.get("security")
    if not requirements:
        return ""
    schemes = [name for requirement in requirements for name in requirement]
    optional = any(not requirement for requirement in requirements)
    names = " or ".join(f"<code>{_text(name)}</code>" for name in schemes)
    return f"<p>API key: {names}{' (not required: no key is configured)' if optional else ''}</p>"


def _operation(path: str, method: str, operation: Mapping[str, Any]) -> str:
    parts = [f"<section><h2><code>{method.upper()} {_text(path)}</code></h2>"]
    if summary := operation.get("summary"):
        parts.append(f"<p><strong>{_text(summary)}</strong></p>")
    if description := operation.get("description"):
        parts.append(f"<p>{_text(description)}</p>")
    parts.append(_security(operation))
    parts.append(
        _rows(
            ("Parameter", "In", "Required", "Description"),
            (
                (
                    f"<code>{_text(p.get('name'))}</code>",
                    _text(p.get("in")),
                    "yes" if p.get("required") else "no",
                    _text(p.get("description")),
                )
                for p in operation.get("parameters", [])
            ),
        )
    )
    if body := operation.get("requestBody"):
        parts.append(
            f"<p>Body: {_types(body.get('content'))}. {_text(body.get('description'))}</p>"
        )
    parts.append(
        _rows(
            ("Status", "Description", "Content"),
            (
                (
                    f"<code>{_text(status)}</code>",
                    _text(r.get("description")),
                    _types(r.get("content")),
                )
                for status, r in operation.get("responses", {}).items()
            ),
        )
    )
    parts.append("</section>")
    return "".join(parts)


class SchemaPagePlugin(OpenAPIRenderPlugin):
    """Renders the OpenAPI document as a self-contained HTML page (no script, no CDN)."""

    def __init__(self, *, path: str = "/") -> None:
        super().__init__(path=path)

    def render(self, request: Request[Any, Any, Any], openapi_schema: dict[str, Any]) -> bytes:
        """The page: title, description, links to the documents, then every operation."""
        info = openapi_schema.get("info", {})
        base = _text(request.url.path.rstrip("/"))
        operations = [
            _operation(path, method, item[method])
            for path, item in openapi_schema.get("paths", {}).items()
            for method in _METHODS
            if method in item
        ]
        page = f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{_text(info.get("title"))} {_text(info.get("version"))} API</title>
<style>{_STYLE}</style></head><body>
<h1>{_text(info.get("title"))} <small>{_text(info.get("version"))}</small></h1>
<p>{_text(info.get("description"))}</p>
<p>OpenAPI document: <a href="{base}/openapi.json">openapi.json</a> ·
<a href="{base}/openapi.yaml">openapi.yaml</a></p>
{"".join(operations)}
</body></html>
"""
        return page.encode()


def schema_plugins() -> list[OpenAPIRenderPlugin]:
    """``/schema`` (this page), ``/schema/openapi.json`` and ``/schema/openapi.yaml``."""
    return [SchemaPagePlugin(), JsonRenderPlugin(), YamlRenderPlugin()]
