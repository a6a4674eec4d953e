"""The compression pool: the selected codec on every core.

Each worker process (:mod:`imgcore._compression.worker`) builds its codecs once, from their
picklable factories, the first time an image needs them; bodies reach the workers through
the :mod:`spool <imgcore._compression.spool>` beside this module instead of the pool's pipe.
"""

from __future__ import annotations

import asyncio
import contextlib
import multiprocessing
import os
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import Any, TypeVar

import anyio
import anyio.to_thread

from imgcore._codecs.pillow import PILLOW
from imgcore._compression.spool import Spool, run_spooled
from imgcore._compression.worker import (
    Codecs,
    compress_in_worker,
    init_worker,
    variants_in_worker,
)
from imgcore.contracts import CodecSpec, CompressedImage, CompressOptions, Variant, sniff_format
from imgcore.errors import ImageError

__all__ = ["Compressor"]

T = TypeVar("T")


class Compressor:
    """Runs the selected codec on every core.

    ``codecs`` is :func:`imgcore._codecs.select_codecs`'s answer: the chosen codec first,
    the others after it for the formats it does not handle (default: Pillow alone).

    ``mode="process"``: a pool of worker processes (started with ``spawn``, never forked
    from a process with running threads); a worker that dies — a decoder crash, the OOM
    killer — fails only the images handed to the pool, and the pool is rebuilt. Bodies reach
    the workers through a :class:`imgcore._compression.spool.Spool` where the system has one.
    ``mode="thread"``: worker threads in this process (Pillow releases the GIL while it
    decodes and encodes, but downloads and database work compete for it).
    """

    def __init__(
        self,
        options: CompressOptions,
        *,
        workers: int,
        mode: str = "process",
        codecs: Sequence[CodecSpec] = (PILLOW,),
    ) -> None:
        if mode not in ("process", "thread"):
            raise ValueError(f"unknown compress mode {mode!r}")
        if not codecs:
            raise ValueError("no codec to compress with")
        self.options = options
        self.codecs = tuple(codecs)
        # Thread mode: one set of codecs shared by the threads (codecs are stateless).
        self._local_codecs = Codecs(self.codecs) if mode == "thread" else None
        self.workers = workers
        self.mode = mode
        # Processes: one image queued behind each worker's, so none waits for the next.
        self._limiter = anyio.CapacityLimiter(workers if mode == "thread" else 2 * workers)
        self._pool: ProcessPoolExecutor | None = None
        self._spool: Spool | None = None

    async def start(self) -> None:
        """Start the worker processes and wait until they answer, so that neither the first
        image nor a readiness probe answered before them waits for them."""
        if self.mode == "process":
            pool = self._process_pool()
            # The pool starts a process per task submitted while none is idle.
            warming = [pool.submit(sniff_format, b"") for _ in range(self.workers)]
            with contextlib.suppress(BrokenProcessPool):  # rebuilt when the first image comes
                await asyncio.gather(*(asyncio.wrap_future(future) for future in warming))

    async def __call__(
        self, data: bytes, options: CompressOptions | None = None
    ) -> CompressedImage:
        """Compress ``data`` on a worker (``options``: the engine's unless given); raises
        :class:`imgcore.errors.ImageError`."""
        options = options or self.options
        if self._local_codecs is not None:
            return await anyio.to_thread.run_sync(
                self._local_codecs.compress, data, options, limiter=self._limiter
            )
        return await self._run(compress_in_worker, data, options)

    async def variants(
        self, data: bytes, variants: Sequence[Variant], options: CompressOptions | None = None
    ) -> list[CompressedImage]:
        """``data`` decoded once and encoded as each of ``variants`` on a worker (``options``:
        the engine's, for what variants do not say); raises
        :class:`imgcore.errors.ImageError`."""
        chosen = tuple(variants)
        options = options or self.options
        if self._local_codecs is not None:
            return await anyio.to_thread.run_sync(
                self._local_codecs.variants, data, chosen, options, limiter=self._limiter
            )
        return await self._run(variants_in_worker, data, options, chosen)

    async def _run(
        self, function: Callable[..., T], data: bytes, options: CompressOptions, *args: Any
    ) -> T:
        async with self._limiter:
            pool = self._process_pool()
            spool = self._spool
            spooled = spool.write(data) if spool is not None else None
            try:
                if spooled is None:
                    return await asyncio.wrap_future(pool.submit(function, data, options, *args))
                return await asyncio.wrap_future(
                    pool.submit(run_spooled, function, spooled, len(data), options, *args)
                )
            except BrokenProcessPool:
                if self._pool is pool:
                    self._pool = None
                    pool.shutdown(wait=False, cancel_futures=True)
                raise ImageError(
                    "the compression worker died on this image", reason="worker_crashed"
                ) from None
            finally:
                if spool is not None and spooled is not None:
                    spool.release(spooled)

    def _process_pool(self) -> ProcessPoolExecutor:
        if self._pool is None:
            # Looked for with the pool, not per image: where there is no spool, it stays None.
            if self._spool is None:
                self._spool = Spool.open()
            self._pool = ProcessPoolExecutor(
                max_workers=self.workers,
                mp_context=multiprocessing.get_context("spawn"),
                initializer=init_worker,
                initargs=(os.getpid(), self.codecs),
            )
        return self._pool

    def close(self) -> None:
        """Stop the worker processes, if any, and remove their spool."""
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
            self._pool = None
        if self._spool is not None:
            self._spool.close()
            self._spool = None
