"""End-to-end throughput of the local executor against the bare Pillow limit.

A request of real photographs (../shared/bench: 100 rows x 3 URLs, the default size mix)
served by the bench origin, processed by imgcore.Engine (SQLite, file storage) that is
already running, as a service that is up receives a request; timed from submit to Completed,
beside cpu_limit.py's measured 2-process Pillow decode+encode on the same images. Also
compares compression on threads and on processes. Prints figures; asserts nothing.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path
from typing import NamedTuple

import anyio
import psutil
from _bench import cpu_limit, make_csv, origin
from imgcore import Config, Engine

WARM_UP_SECONDS = 2.0


class Run(NamedTuple):
    wall: float
    images: int
    main_cpu: float
    workers_cpu: float


def cpu_seconds() -> tuple[float, dict[int, float]]:
    """CPU seconds (user + system) of this process, and of each compression process by pid."""
    me = psutil.Process()
    workers = {
        child.pid: sum(child.cpu_times()[:2])
        for child in me.children(recursive=True)
        if "multiprocessing" in " ".join(child.cmdline())  # not the origin server
    }
    return sum(me.cpu_times()[:2]), workers


async def run_once(csv_path: Path, mode: str) -> Run:
    """One request through a running engine, as a service that is already up receives it."""
    work = Path(tempfile.mkdtemp(prefix="imgcore-pipeline-"))
    config = Config(
        database_url=f"sqlite+aiosqlite:///{work}/db.sqlite3",
        storage_url=f"file://{work}/media",
        fetch_allow=("127.0.0.1/32",),
        compress_pool=mode,
    )
    async with Engine(config) as engine, engine.running():
        await anyio.sleep(WARM_UP_SECONDS)  # the compression processes start
        main_before, workers_before = cpu_seconds()
        started = time.perf_counter()
        request_id = await engine.submit_csv(csv_path.read_bytes())
        info = await engine.wait(request_id, interval=0.05)
        wall = time.perf_counter() - started
        main_after, workers_after = cpu_seconds()
    assert info.status.value == "Completed", info
    workers_cpu = sum(cpu - workers_before.get(pid, 0.0) for pid, cpu in workers_after.items())
    return Run(wall, info.total, main_after - main_before, workers_cpu)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=100)
    parser.add_argument("--modes", default="thread,process")
    args = parser.parse_args()
    with origin() as base_url:
        csv_path = make_csv(base_url, args.rows, 3)
        limit = cpu_limit(csv_path)["measured"]
        print(f"bare Pillow decode+encode q50, 2 processes: {limit:.2f} img/s")
        reusing = cpu_limit(csv_path, reuse_memory=True)["measured"]
        print(f"the same, Pillow reusing image memory as imgcore's workers do: {reusing:.2f} img/s")
        for mode in args.modes.split(","):
            anyio.run(run_once, csv_path, mode)  # warm-up (imports, page cache)
            run = anyio.run(run_once, csv_path, mode)
            rate = run.images / run.wall
            print(
                f"imgcore local executor ({mode:7s}): {run.images} images in {run.wall:.2f}s = "
                f"{rate:.2f} img/s = {rate / limit:.2f} of the limit "
                f"({rate / reusing:.2f} of the memory-reusing one); CPU: main process "
                f"{run.main_cpu:.1f} s, compression processes {run.workers_cpu:.1f} s (the bare "
                f"limit spends {2 * run.images / limit:.1f} s on the same images)"
            )


if __name__ == "__main__":
    main()
