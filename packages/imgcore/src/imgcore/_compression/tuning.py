"""Process-wide settings that the programs owning a process (the CLIs, the server) apply."""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import os
import signal
import sys
from typing import Any

__all__ = [
    "IMAGE_MEMORY_CACHE",
    "MMAP_THRESHOLD",
    "WORKER_NICENESS",
    "cache_image_memory",
    "compression_worker_init",
    "die_with_parent",
    "limit_malloc_arenas",
]

_M_ARENA_MAX = -8  # from glibc's malloc.h
_M_MMAP_THRESHOLD = -3  # from glibc's malloc.h
_PR_SET_PDEATHSIG = 1  # from linux/prctl.h

MMAP_THRESHOLD = 256 * 1024
"""Bytes from which :func:`limit_malloc_arenas` maps a block on its own: most image bodies
are larger."""

WORKER_NICENESS = 10
"""How much lower compression workers run than the process serving requests."""


def limit_malloc_arenas(arenas: int = 2, *, compresses: bool = False) -> bool:
    """Cap glibc's malloc arenas (as ``MALLOC_ARENA_MAX`` would) and, unless this process
    ``compresses`` (a compression worker, or compression in threads), map every block of
    :data:`MMAP_THRESHOLD` bytes or more on its own (as ``MALLOC_MMAP_THRESHOLD_`` would);
    returns whether it applied.

    glibc gives each thread that allocates its own arena, up to 8 per core; image buffers
    passing through download, compression and storage threads then leave memory spread over
    many arenas and resident set size creeps up with the number of images processed. Two
    arenas keep it flat at no measurable cost in throughput. glibc also raises its mmap
    threshold after each large free (up to 32 MiB), after which image bodies are carved
    from the heap and leave holes there when freed; a fixed threshold hands each body back to
    the system when it is freed. Where a codec runs, glibc's own threshold stays: a fixed one
    would fault its buffers (libvips's regions, encoder buffers) in anew for every image, a
    sixth of the catalog preset's speed. A no-op off glibc.
    """
    if not sys.platform.startswith("linux"):
        return False
    name = ctypes.util.find_library("c")
    if name is None:
        return False
    try:
        libc = ctypes.CDLL(name)
        applied = bool(libc.mallopt(_M_ARENA_MAX, arenas))
        if not compresses:
            applied = bool(libc.mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD)) and applied
        return applied
    except (OSError, AttributeError):
        return False


IMAGE_MEMORY_CACHE = 128 * 1024 * 1024
"""Bytes of freed image memory a compression worker keeps for the next image."""


def cache_image_memory(max_bytes: int = IMAGE_MEMORY_CACHE) -> int:
    """Let Pillow reuse freed image memory (as ``PILLOW_BLOCKS_MAX`` would); returns the blocks.

    By default Pillow hands every image's pixels back to the system when the image is freed,
    and the next image of the same size takes them again, page fault by page fault, with the
    kernel zeroing every page before the decoder fills it. Keeping up to ``max_bytes`` of
    freed blocks removes that cost; a worker's resident memory stays at its peak instead of
    falling between images. ``PILLOW_BLOCKS_MAX`` in the environment wins over this.
    """
    from PIL import Image

    core: Any = Image.core  # type: ignore[attr-defined]  # Pillow's C module, untyped
    if "PILLOW_BLOCKS_MAX" not in os.environ:
        core.set_blocks_max(max(1, max_bytes // core.get_block_size()))
    return int(core.get_blocks_max())


def die_with_parent(parent_pid: int) -> None:
    """In a worker process: be killed when ``parent_pid`` dies (Linux), and exit now if it has.

    A worker pool's processes otherwise outlive a parent that was SIGKILLed, holding memory
    and CPU with nobody to answer.
    """
    if sys.platform.startswith("linux"):
        name = ctypes.util.find_library("c")
        if name is not None:
            with contextlib.suppress(OSError, AttributeError):
                ctypes.CDLL(name).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() != parent_pid:  # the parent died before the line above took effect
        os._exit(1)


def compression_worker_init(parent_pid: int, *, pillow: bool = True) -> None:
    """Initializer of compression worker processes: die with the parent, yield the CPU, keep
    to two malloc arenas at glibc's own mmap threshold (:func:`limit_malloc_arenas`: a
    codec's threads otherwise spread each image's buffers over arenas of their own) and, with
    ``pillow``, reuse Pillow's image memory (:func:`cache_image_memory`).

    Compression is batch work; the process that answers HTTP requests and drives downloads
    must get the CPU first when it needs it, or status latency suffers while images are
    processed. At a lower priority the workers still use every idle cycle.
    """
    die_with_parent(parent_pid)
    limit_malloc_arenas(compresses=True)
    if pillow:
        cache_image_memory()
    with contextlib.suppress(OSError):
        os.nice(WORKER_NICENESS)
