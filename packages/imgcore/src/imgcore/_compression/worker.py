"""What runs in a compression worker process: its codecs, and the calls the pool sends it.

Everything here is imported in every worker before its first image: it loads only the
contracts and the codecs' registrations, never the pool's own machinery (asyncio, its futures)
nor a codec's library before that codec is built.
"""

from __future__ import annotations

from collections.abc import Sequence

from imgcore._codecs import for_image
from imgcore._compression.tuning import compression_worker_init
from imgcore.contracts import (
    Codec,
    CodecSpec,
    CompressedImage,
    CompressOptions,
    Variant,
    sniff_format,
)
from imgcore.errors import ImageError

__all__ = ["Codecs", "compress_in_worker", "init_worker", "variants_in_worker"]


class Codecs:
    """The codecs of one process, each built by its factory when an image first needs it."""

    def __init__(self, specs: Sequence[CodecSpec]) -> None:
        self.specs = tuple(specs)
        self._built: dict[int, Codec] = {}

    def compress(self, data: bytes, options: CompressOptions) -> CompressedImage:
        """``data`` compressed by the first codec that reads it and writes ``options.format``."""
        return self._codec(data, options.format).compress(data, options)

    def variants(
        self, data: bytes, variants: tuple[Variant, ...], options: CompressOptions
    ) -> list[CompressedImage]:
        """``data`` as each of ``variants``, by the first codec that writes all their formats."""
        formats = frozenset(variant.format for variant in variants)
        return self._codec(data, formats).variants(data, variants, options)

    def _codec(self, data: bytes, outputs: str | frozenset[str]) -> Codec:
        index = for_image(self.specs, sniff_format(data), outputs)
        codec = self._built.get(index)
        if codec is None:
            spec = self.specs[index]
            try:
                codec = spec.factory()
            # A codec whose library cannot load fails its images with a message that says
            # so, instead of an unexpected exception type from deep inside a worker.
            except Exception as exc:
                raise ImageError(f"codec {spec.name!r} could not be built: {exc}") from exc
            self._built[index] = codec
        return codec


# In a worker process: its codecs, set once by init_worker.
_worker_codecs: Codecs | None = None


def init_worker(parent_pid: int, specs: tuple[CodecSpec, ...]) -> None:
    """The pool's initializer: tune this process, and keep ``specs`` to build codecs from."""
    global _worker_codecs
    # Pillow's block cache only where Pillow is the chosen codec: loading Pillow costs a
    # worker of another codec memory, and its images would not use the cache.
    compression_worker_init(parent_pid, pillow=specs[0].name == "pillow")
    _worker_codecs = Codecs(specs)


def compress_in_worker(data: bytes, options: CompressOptions) -> CompressedImage:
    """:meth:`Codecs.compress` with this worker's codecs."""
    assert _worker_codecs is not None, "called outside a compression worker"
    return _worker_codecs.compress(data, options)


def variants_in_worker(
    data: bytes, options: CompressOptions, variants: tuple[Variant, ...]
) -> list[CompressedImage]:
    """:meth:`Codecs.variants` with this worker's codecs."""
    assert _worker_codecs is not None, "called outside a compression worker"
    return _worker_codecs.variants(data, variants, options)
