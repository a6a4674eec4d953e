"""The compression pool: :func:`imgcore._compress.compress` on every core.

Bodies reach worker processes through the :mod:`spool <imgcore._compression.spool>` beside
this module instead of the pool's pipe.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import os
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import TypeVar

import anyio
import anyio.to_thread

from imgcore._compress import CompressedImage, CompressOptions, ImageError, compress, sniff_format
from imgcore._compression.spool import Spool, run_spooled
from imgcore._compression.tuning import compression_worker_init

__all__ = ["Compressor"]

T = TypeVar("T")


class Compressor:
    """Runs :func:`imgcore._compress.compress` on every core.

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
    ) -> None:
        if mode not in ("process", "thread"):
            raise ValueError(f"unknown compress mode {mode!r}")
        self.options = options
        self.workers = workers
        self.mode = mode
        # Processes: one image queued behind each worker's, so none waits for the next.
        self._limiter = anyio.CapacityLimiter(workers if mode == "thread" else 2 * workers)
        self._pool: ProcessPoolExecutor | None = None
        self._spool: Spool | None = None

    def start(self) -> None:
        """Start the worker processes now, so that the first image does not wait for them."""
        if self.mode == "process":
            pool = self._process_pool()
            # The pool starts a process per task submitted while none is idle.
            for _ in range(self.workers):
                pool.submit(sniff_format, b"")

    async def __call__(self, data: bytes) -> CompressedImage:
        """Compress ``data`` on a worker; raises :class:`imgcore._compress.ImageError`."""
        return await self._run(compress, data, self.options)

    async def _run(
        self, function: Callable[[bytes, CompressOptions], T], data: bytes, options: CompressOptions
    ) -> T:
        if self.mode == "thread":
            return await anyio.to_thread.run_sync(function, data, options, limiter=self._limiter)
        async with self._limiter:
            pool = self._process_pool()
            spool = self._spool
            spooled = spool.write(data) if spool is not None else None
            try:
                if spooled is None:
                    return await asyncio.wrap_future(pool.submit(function, data, options))
                return await asyncio.wrap_future(
                    pool.submit(run_spooled, function, spooled, len(data), options)
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
                initializer=compression_worker_init,
                initargs=(os.getpid(),),
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
