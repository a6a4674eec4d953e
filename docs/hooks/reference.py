"""mkdocs hook: tables generated from the code, so the docs cannot drift from it.

``<!-- config-reference: module:Struct prefix -->`` in a page becomes a table of that settings
Struct's fields: environment variable, type, default and description.
"""

from __future__ import annotations

import importlib
import re
from typing import Any

import msgspec

MARKER = re.compile(r"<!-- config-reference: (?P<target>[\w.]+:\w+) (?P<prefix>\w+) -->")


def _type_name(t: msgspec.inspect.Type) -> str:
    if isinstance(t, msgspec.inspect.Metadata):
        return _type_name(t.type)
    names = {
        msgspec.inspect.StrType: "string",
        msgspec.inspect.IntType: "integer",
        msgspec.inspect.FloatType: "number",
        msgspec.inspect.BoolType: "boolean",
    }
    for kind, name in names.items():
        if isinstance(t, kind):
            return name
    if isinstance(t, msgspec.inspect.LiteralType):
        return " \\| ".join(f"`{v}`" for v in t.values)
    if isinstance(t, msgspec.inspect.VarTupleType | msgspec.inspect.ListType):
        return f"comma-separated {_type_name(t.item_type)}s"
    return type(t).__name__.removesuffix("Type").lower()


def _default(value: Any) -> str:
    if value is msgspec.NODEFAULT:
        return "*required*"
    if isinstance(value, tuple):
        return f"`{','.join(str(v) for v in value)}`" if value else "*(empty)*"
    if isinstance(value, bool):
        return f"`{str(value).lower()}`"
    return f"`{value}`" if value != "" else "*(empty)*"


def config_table(target: str, prefix: str) -> str:
    """The Markdown table documenting every field of ``module:Struct``."""
    module, _, name = target.partition(":")
    struct = getattr(importlib.import_module(module), name)
    info = msgspec.inspect.type_info(struct)
    assert isinstance(info, msgspec.inspect.StructType)
    rows = ["| Variable | Type | Default | Description |", "|---|---|---|---|"]
    for field in info.fields:
        meta = field.type if isinstance(field.type, msgspec.inspect.Metadata) else None
        if isinstance(meta.type if meta else field.type, msgspec.inspect.StructType):
            continue  # a nested settings Struct has its own table
        description = ((meta.extra_json_schema or {}) if meta else {}).get("description", "")
        if not description:
            raise ValueError(f"{target}.{field.name} has no description")
        rows.append(
            f"| `{prefix}{field.name.upper()}` | {_type_name(field.type)} | "
            f"{_default(field.default)} | {description} |"
        )
    return "\n".join(rows)


def on_page_markdown(markdown: str, **kwargs: Any) -> str:
    """Replace every config-reference marker with its table."""
    return MARKER.sub(lambda m: config_table(m["target"], m["prefix"]), markdown)
