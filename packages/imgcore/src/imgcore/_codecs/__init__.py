"""Codecs: which installed codec compresses an image (``IMGCORE_CODEC``), and the Pillow one.

Codecs come from the ``imgcore_codecs`` hook; the built-in Pillow codec
(:mod:`imgcore._codecs.pillow`) registers through it like any plugin's.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import cast

import msgspec
import pluggy

from imgcore.config import ConfigError
from imgcore.contracts import CodecSpec

__all__ = ["InstalledCodec", "for_image", "installed_codecs", "select_codecs"]


class InstalledCodec(msgspec.Struct, frozen=True, kw_only=True):
    """A codec and the plugin that contributed it."""

    plugin: str
    spec: CodecSpec


def installed_codecs(pm: pluggy.PluginManager) -> list[InstalledCodec]:
    """Every codec the loaded plugins contribute, best first (highest rank, then name).

    Raises :class:`ConfigError` when two plugins contribute codecs of the same name.
    """
    found: dict[str, InstalledCodec] = {}
    for impl in pm.hook.imgcore_codecs.get_hookimpls():
        plugin = pm.get_name(impl.plugin) or repr(impl.plugin)
        specs = cast("list[CodecSpec]", impl.function())
        for spec in specs:
            if spec.name in found:
                raise ConfigError(
                    f"codec {spec.name!r} comes from both {found[spec.name].plugin!r} and "
                    f"{plugin!r}: disable one with IMGCORE_DISABLE_PLUGINS"
                )
            found[spec.name] = InstalledCodec(plugin=plugin, spec=spec)
    return sorted(found.values(), key=lambda c: (-c.spec.rank, c.spec.name))


def select_codecs(pm: pluggy.PluginManager, name: str = "") -> tuple[CodecSpec, ...]:
    """The codec ``name`` names (empty: the best installed) first, then the others by rank,
    which take the images whose formats it does not handle (see :func:`for_image`).

    Raises :class:`ConfigError` for a name no installed plugin contributes.
    """
    codecs = [c.spec for c in installed_codecs(pm)]
    if not codecs:
        raise ConfigError("no codec is installed (is the pillow plugin disabled?)")
    if name:
        chosen = [spec for spec in codecs if spec.name == name]
        if not chosen:
            names = ", ".join(spec.name for spec in codecs)
            raise ConfigError(f"IMGCORE_CODEC={name!r} names no installed codec ({names})")
        codecs.remove(chosen[0])
        codecs.insert(0, chosen[0])
    return tuple(codecs)


def for_image(
    codecs: Sequence[CodecSpec], input_format: str | None, output: str | frozenset[str]
) -> int:
    """Index in ``codecs`` of the first that decodes ``input_format`` and encodes ``output``
    (every one of them, for a preset's formats); 0 when none does (that codec then refuses
    the image with the usual error)."""
    outputs = frozenset({output}) if isinstance(output, str) else output
    for index, spec in enumerate(codecs):
        if input_format in spec.formats and outputs <= spec.outputs:
            return index
    return 0
