"""The ``catalog`` preset end to end, beside a bare loop doing the same work.

A request of real photographs (../shared/bench: 100 rows x 3 URLs = the 300-image default
mix, every URL with bytes of its own: origin ``--unique-bytes``) with ``preset=catalog``,
processed by an imgcore.Engine that is already running (SQLite, file storage, the local
executor, the installed codec of highest rank unless ``--codec``), timed from submit to
Completed. Beside it, in the same run, a bare loop: the same bodies, downloaded beforehand,
through the same codec's ``variants()`` (one decode, every variant encoded) on as many
processes as the engine's compression pool, with no HTTP, database or storage. Prints the
ratio of the two throughputs (the target is 0.85 or more), the bytes per image of each
variant, and the peak RSS of the engine's process tree (this process and its compression
workers, sampled; the target is 300 MB or less). Asserts nothing.

Smoke-test with ``--rows 2``; figures come from the default size.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import threading
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING

import psutil
from _bench import make_csv, origin
from imgcore.contracts import CompressOptions
from imgcore.presets import CATALOG

if TYPE_CHECKING:
    from imgcore import Config
    from imgcore.contracts import CodecSpec

# The engine, the HTTP client and the CSV reader load inside the functions that use them:
# the compression workers (spawned) re-import this script first, and what it imports at the
# top would sit in their memory, which this script measures.

WARM_UP_SECONDS = 2.0


class PeakRss:
    """Samples the memory of this process and its descendants (not the origin) every 50 ms:
    RSS summed (shared library pages counted once per process) and PSS (shared pages split
    between the processes that map them, so the sum is what the tree holds)."""

    def __init__(self, exclude: set[int]) -> None:
        self.exclude = exclude
        self.peak = 0
        self.peak_pss = 0
        self.by_process: dict[int, int] = {}  # each process's own peak RSS
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        me = psutil.Process()
        while not self._stop.is_set():
            total = pss = 0
            for proc in [me, *me.children(recursive=True)]:
                if proc.pid in self.exclude:
                    continue
                try:
                    info = proc.memory_full_info()
                except psutil.Error:
                    continue
                total += info.rss
                self.by_process[proc.pid] = max(self.by_process.get(proc.pid, 0), info.rss)
                pss += getattr(info, "pss", info.rss)
            self.peak = max(self.peak, total)
            self.peak_pss = max(self.peak_pss, pss)
            self._stop.wait(0.05)

    def __enter__(self) -> PeakRss:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def origin_pids() -> set[int]:
    """The bench origin (a child of this process started before the engine)."""
    return {
        child.pid
        for child in psutil.Process().children(recursive=True)
        if "origin.py" in " ".join(child.cmdline())
    }


async def end_to_end(csv_path: Path, config: Config) -> tuple[float, int, dict[str, list[int]]]:
    """Seconds from submit to Completed, images, and each variant's bytes per image."""
    import anyio
    from imgcore import Engine

    async with Engine(config) as engine, engine.running():
        await anyio.sleep(WARM_UP_SECONDS)  # the compression processes start
        started = time.perf_counter()
        request_id = await engine.submit_csv(csv_path.read_bytes(), preset="catalog")
        info = await engine.wait(request_id, interval=0.05)
        wall = time.perf_counter() - started
        assert info.status.value == "Completed", info
        sizes: dict[str, list[int]] = {v.name: [] for v in CATALOG.variants}
        for product in await engine.products(request_id, limit=info.total_products):
            for image in product.images:
                for variant in image.variants:
                    sizes[variant.name].append(variant.bytes)
    return wall, info.total, sizes


_codec = None


def _variants(spec: CodecSpec, data: bytes) -> list[int]:
    global _codec
    if _codec is None:
        _codec = spec.factory()
    return [i.output_bytes for i in _codec.variants(data, CATALOG.variants, CompressOptions())]


def bare_loop(bodies: list[bytes], spec: CodecSpec, workers: int) -> tuple[float, list[list[int]]]:
    """The same decode and encodes in ``workers`` processes: seconds, bytes per image."""
    with ProcessPoolExecutor(max_workers=workers) as pool:
        list(pool.map(_variants, [spec] * workers, bodies[:workers]))  # start and warm up
        started = time.perf_counter()
        results = list(pool.map(_variants, [spec] * len(bodies), bodies))
        return time.perf_counter() - started, results


def download(csv_path: Path) -> list[bytes]:
    import httpx
    from imgcore._csvio import iter_products

    with csv_path.open("rb") as f:
        urls = [url for product in iter_products(f) for url in product.urls]
    with httpx.Client() as client:
        return [client.get(url).raise_for_status().content for url in urls]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=100)
    parser.add_argument("--per-row", type=int, default=3)
    parser.add_argument("--codec", default="", help="IMGCORE_CODEC (default: the best installed)")
    args = parser.parse_args()
    import anyio
    from imgcore import Config
    from imgcore._codecs import select_codecs
    from imgcore._plugins import create_plugin_manager

    spec = select_codecs(create_plugin_manager(), args.codec)[0]
    workers = os.cpu_count() or 1
    with origin() as base_url:
        csv_path = make_csv(base_url, args.rows, args.per_row)
        work = Path(tempfile.mkdtemp(prefix="imgcore-presets-"))
        config = Config(
            database_url=f"sqlite+aiosqlite:///{work}/db.sqlite3",
            storage_url=f"file://{work}/media",
            fetch_allow=("127.0.0.1/32",),
            codec=spec.name,
            workers=workers,
        )
        with PeakRss(exclude=origin_pids()) as rss:
            wall, images, sizes = anyio.run(end_to_end, csv_path, config)
        # Only now: the bare loop's bodies, all in memory, must not count in the engine's RSS.
        bodies = download(csv_path)
        bare, results = bare_loop(bodies, spec, workers)
    e2e_rate, bare_rate = images / wall, len(bodies) / bare
    print(f"codec {spec.name}, {workers} compression processes, {images} images, preset catalog")
    print(f"end to end (HTTP, SQLite, file storage): {wall:.2f} s = {e2e_rate:.2f} img/s")
    print(f"bare loop (same codec, variants() only): {bare:.2f} s = {bare_rate:.2f} img/s")
    print(f"ratio end to end / bare: {e2e_rate / bare_rate:.2f} (target >= 0.85)")
    print(
        f"peak RSS of the engine's process tree: {rss.peak / 2**20:.0f} MB summed, "
        f"{rss.peak_pss / 2**20:.0f} MB PSS (target <= 300)"
    )
    print(
        "  each process's own peak RSS: "
        + ", ".join(f"{peak / 2**20:.0f} MB" for peak in rss.by_process.values())
    )
    print("bytes per image, by variant (end to end | bare loop), mean and median:")
    for index, variant in enumerate(CATALOG.variants):
        ours = sizes[variant.name]
        theirs = [r[index] for r in results]
        print(
            f"  {variant.name:7s} {variant.format:5s} {statistics.mean(ours):9.0f} "
            f"{statistics.median(ours):9.0f} | {statistics.mean(theirs):9.0f} "
            f"{statistics.median(theirs):9.0f}"
        )


if __name__ == "__main__":
    main()
