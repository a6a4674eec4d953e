"""The plugin manager: built-in plugins, then the ``imgcore`` entry points.

A built-in plugin has a short name (``webhook``, ``file``, ``local``, ``pillow``); a plugin
installed through an entry point is named after the entry point (``s3`` for
``[project.entry-points.imgcore] s3 = "imgcore_s3.plugin"``), as pluggy registers it.
``IMGCORE_DISABLE_PLUGINS`` (comma-separated names, as ``imgcore plugins`` lists them) keeps
those plugins from loading; a hook implementation whose name matches no hookspec fails loudly
at start.
"""

from __future__ import annotations

import importlib.metadata
import logging
import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from types import ModuleType

import msgspec
import pluggy

from imgcore import hookspecs

__all__ = [
    "BUILTIN_PLUGINS",
    "DISABLE_ENV",
    "PluginInfo",
    "create_plugin_manager",
    "describe_plugins",
    "plugin_migrations",
]

DISABLE_ENV = "IMGCORE_DISABLE_PLUGINS"

log = logging.getLogger("imgcore.plugins")

BUILTIN_PLUGINS: dict[str, str] = {
    "file": "imgcore._storage.plugin",
    "webhook": "imgcore._notify.webhook",
    "local": "imgcore._executors.local",
    "pillow": "imgcore._codecs.pillow",
}
"""imgcore's own plugins by name, registered through the same hooks as third-party ones."""

# The names built-ins had while they were public modules: still accepted by DISABLE_ENV.
_FORMER_NAMES = {
    "imgcore.storage.plugin": "file",
    "imgcore.notify.webhook": "webhook",
    "imgcore.executors.local": "local",
}


class PluginInfo(msgspec.Struct, frozen=True, kw_only=True):
    """A loaded plugin: its name, the distribution and version it came from, its hooks."""

    name: str
    version: str | None
    hooks: tuple[str, ...]
    builtin: bool
    distribution: str | None = None


def create_plugin_manager(
    *,
    environ: Mapping[str, str] | None = None,
    extra: Iterable[object] = (),
    load_entrypoints: bool = True,
) -> pluggy.PluginManager:
    """A plugin manager with imgcore's hookspecs, its built-ins and the installed plugins."""
    env = os.environ if environ is None else environ
    disabled = {
        _FORMER_NAMES.get(name.strip(), name.strip())
        for name in env.get(DISABLE_ENV, "").split(",")
        if name.strip()
    }
    pm = pluggy.PluginManager(hookspecs.PROJECT)
    pm.add_hookspecs(hookspecs)
    for name in disabled:
        pm.set_blocked(name)
    for name, module_name in BUILTIN_PLUGINS.items():
        if name not in disabled:
            pm.register(importlib.import_module(module_name), name=name)
    if load_entrypoints:
        pm.load_setuptools_entrypoints(hookspecs.PROJECT)
        unknown = disabled - set(BUILTIN_PLUGINS) - _entry_point_names()
        if unknown:
            log.warning("%s names no installed plugin: %s", DISABLE_ENV, ", ".join(sorted(unknown)))
    for plugin in extra:
        pm.register(plugin)
    pm.check_pending()
    return pm


def describe_plugins(pm: pluggy.PluginManager) -> list[PluginInfo]:
    """Every registered plugin, for ``imgcore plugins``."""
    dists = {id(plugin): dist for plugin, dist in pm.list_plugin_distinfo()}
    infos = []
    for name, plugin in pm.list_name_plugin():
        if plugin is None:
            continue
        dist = dists.get(id(plugin))
        infos.append(
            PluginInfo(
                name=name,
                version=dist.version if dist is not None else _module_version(plugin),
                hooks=tuple(sorted(impl.name for impl in pm.get_hookcallers(plugin) or ())),
                builtin=name in BUILTIN_PLUGINS,
                distribution=dist.project_name if dist is not None else None,
            )
        )
    return sorted(infos, key=lambda info: (not info.builtin, info.name))


def plugin_migrations(pm: pluggy.PluginManager) -> list[Path]:
    """The Alembic version directories the plugins add (``imgcore_migrations``)."""
    return [path for paths in pm.hook.imgcore_migrations() for path in paths]


def _entry_point_names() -> set[str]:
    return {ep.name for ep in importlib.metadata.entry_points(group=hookspecs.PROJECT)}


def _module_version(plugin: object) -> str | None:
    if isinstance(plugin, ModuleType) and plugin.__name__.startswith("imgcore."):
        from imgcore._version import __version__

        return __version__
    return None
