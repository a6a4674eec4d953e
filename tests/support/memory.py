"""Peak resident memory of a process (and, optionally, its children), sampled in a thread."""

from __future__ import annotations

import contextlib
import threading

import psutil


class PeakRss:
    """``with PeakRss(pid) as rss: …`` then ``rss.growth`` is the peak minus the start.

    ``tree=True`` counts the process and all its descendants (compression workers, say).
    """

    def __init__(self, pid: int | None = None, *, tree: bool = False, every: float = 0.005) -> None:
        self._process = psutil.Process(pid)
        self._tree = tree
        self._every = every
        self.start = self.peak = self._total()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _total(self) -> int:
        processes = [self._process]
        if self._tree:
            processes += self._process.children(recursive=True)
        total = 0
        for process in processes:
            with contextlib.suppress(psutil.NoSuchProcess):
                total += process.memory_info().rss
        return total

    def _run(self) -> None:
        while not self._stop.wait(self._every):
            self.peak = max(self.peak, self._total())

    def __enter__(self) -> PeakRss:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    @property
    def growth(self) -> int:
        """Bytes the peak rose above the first sample."""
        return self.peak - self.start
