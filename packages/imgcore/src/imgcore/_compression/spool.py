"""Handing downloaded bodies to compression processes through files in shared memory.

A body sent through a process pool's pipe is pickled, written in small pieces and read back
the same way, with a thread switch at every step: for a photograph that costs more CPU than
downloading it (docs/performance.md). Written once to a file on ``/dev/shm`` (memory, not
disk) and read once by the worker, it costs two copies. The files are slots used again and
again, so their memory is allocated once, not once per image. Where there is no ``/dev/shm``
there is no spool, and bodies go through the pipe as before.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

__all__ = ["SHARED_MEMORY", "Spool", "run_spooled"]

T = TypeVar("T")

SHARED_MEMORY = Path("/dev/shm")  # noqa: S108 (each spool is a private mkdtemp directory)
"""Where spools live: a memory-backed file system."""

_PREFIX = "imgcore-spool-"

#: A slot that held a body larger than this is emptied when it is given back.
KEEP_BYTES = 4 * 1024 * 1024


class Spool:
    """A private directory of slot files holding bodies for workers; removed by :meth:`close`."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self._names = itertools.count()
        self._free: list[Path] = []

    @classmethod
    def open(cls, parent: Path | None = None) -> Spool | None:
        """A new spool under ``parent`` (default :data:`SHARED_MEMORY`), or None where that is
        not a writable directory.

        Spools left by processes that died (killed, out of memory) are removed first: each
        holds at most a few bodies, but in memory.
        """
        parent = parent or SHARED_MEMORY
        if not (parent.is_dir() and os.access(parent, os.W_OK | os.X_OK)):
            return None
        _sweep(parent)
        directory = Path(tempfile.mkdtemp(prefix=f"{_PREFIX}{os.getpid()}-", dir=parent))
        return cls(directory)

    def write(self, data: bytes) -> Path:
        """Store ``data`` in a free slot and return the slot; :meth:`release` it once read."""
        path = self._free.pop() if self._free else self.directory / f"{next(self._names)}.body"
        fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o600)
        try:
            view = memoryview(data)
            offset = 0
            while offset < len(view):
                offset += os.pwrite(fd, view[offset:], offset)
        except BaseException:
            os.close(fd)
            self.release(path)
            raise
        os.close(fd)
        return path

    def release(self, path: Path) -> None:
        """Give a slot back for the next body."""
        with contextlib.suppress(OSError):
            if path.stat().st_size > KEEP_BYTES:
                os.truncate(path, 0)
        self._free.append(path)

    def close(self) -> None:
        """Remove the spool and whatever is still in it."""
        shutil.rmtree(self.directory, ignore_errors=True)


def run_spooled(function: Callable[..., T], path: Path, size: int, *args: Any) -> T:
    """In a worker: call ``function(body, *args)`` with the ``size`` bytes stored at ``path``."""
    with path.open("rb", buffering=0) as f:
        body = f.read(size)
    if len(body) != size:
        raise OSError(f"spooled body {path} is shorter than {size} bytes")
    return function(body, *args)


def _sweep(parent: Path) -> None:
    for directory in parent.glob(f"{_PREFIX}*-*"):
        pid = directory.name.removeprefix(_PREFIX).partition("-")[0]
        if pid.isdigit() and not _alive(int(pid)):
            shutil.rmtree(directory, ignore_errors=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's process
    return True
