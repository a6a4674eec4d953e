"""End-to-end throughput of the local executor against the bare Pillow limit.

A request of real photographs (../shared/bench: 100 rows x 3 URLs, the default size mix)
served by the bench origin, processed by imgcore.Engine (SQLite, file storage), timed from
submit to Completed, beside cpu_limit.py's measured 2-process Pillow decode+encode on the same
images. Also compares compression on threads and on processes. Prints figures; asserts nothing.
"""

from __future__ import annotations

import argparse
import resource
import tempfile
import time
from pathlib import Path

import anyio
from _bench import cpu_limit, make_csv, origin
from imgcore import Config, Engine


def cpu_seconds() -> tuple[float, float]:
    """CPU seconds (user + system) of this process and of its waited-for children."""
    me, children = (
        resource.getrusage(resource.RUSAGE_SELF),
        resource.getrusage(resource.RUSAGE_CHILDREN),
    )
    return me.ru_utime + me.ru_stime, children.ru_utime + children.ru_stime


async def run_once(csv_path: Path, base_url: str, mode: str) -> tuple[float, int]:
    work = Path(tempfile.mkdtemp(prefix="imgcore-pipeline-"))
    config = Config(
        database_url=f"sqlite+aiosqlite:///{work}/db.sqlite3",
        storage_url=f"file://{work}/media",
        fetch_allow=("127.0.0.1/32",),
        poll_interval=0.05,
        compress_pool=mode,
    )
    async with Engine(config) as engine:
        started = time.perf_counter()
        request_id = await engine.submit_csv(csv_path.read_bytes())
        async with engine.running():
            info = await engine.wait(request_id, interval=0.02)
        wall = time.perf_counter() - started
    assert info.status.value == "Completed", info
    return wall, info.total


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=100)
    parser.add_argument("--modes", default="thread,process")
    args = parser.parse_args()
    with origin() as base_url:
        csv_path = make_csv(base_url, args.rows, 3)
        limit = cpu_limit(csv_path)["measured"]
        print(f"bare Pillow decode+encode q50, 2 processes: {limit:.2f} img/s")
        for mode in args.modes.split(","):
            anyio.run(run_once, csv_path, base_url, mode)  # warm-up (imports, page cache)
            main_before, workers_before = cpu_seconds()
            wall, n = anyio.run(run_once, csv_path, base_url, mode)
            main_after, workers_after = cpu_seconds()
            rate = n / wall
            print(
                f"imgcore local executor ({mode:7s}): {n} images in {wall:.2f}s = "
                f"{rate:.2f} img/s = {rate / limit:.2f} of the limit; CPU: main process "
                f"{main_after - main_before:.1f} s, compression processes "
                f"{workers_after - workers_before:.1f} s (the bare limit spends "
                f"{2 * n / limit:.1f} s on the same images)"
            )


if __name__ == "__main__":
    main()
