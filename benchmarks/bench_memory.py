"""Peak RSS of processing a 100-image request vs a 10,000-image request (nothing may grow).

Each run is a fresh process (so peaks do not mix) processing small photographs (s03, 0.3 MP)
from the bench origin through imgcore.Engine; its peak is the RSS summed over the process and
its compression workers, sampled every 50 ms. Prints both peaks and their ratio (target ≤ 1.2).
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

from _bench import make_csv, origin

CHILD = r"""
import sys, tempfile, threading, time, anyio, psutil
from pathlib import Path
from imgcore import Config, Engine
from imgcore._compression.tuning import limit_malloc_arenas

limit_malloc_arenas()  # as `imgcore worker` and `imgapi serve` do
peak = 0.0

def sample():
    # The whole tree: this process and its compression workers.
    global peak
    me = psutil.Process()
    while True:
        procs = [me, *me.children(recursive=True)]
        total = 0
        for p in procs:
            try:
                total += p.memory_info().rss
            except psutil.Error:
                pass
        peak = max(peak, total / 2**20)
        time.sleep(0.05)

async def main(csv_path):
    work = Path(tempfile.mkdtemp())
    config = Config(database_url=f"sqlite+aiosqlite:///{work}/db.sqlite3",
                    storage_url=f"file://{work}/media", fetch_allow=("127.0.0.1/32",),
                    poll_interval=0.05)
    async with Engine(config) as engine:
        rid = await engine.submit_csv(open(csv_path, "rb"))
        async with engine.running():
            info = await engine.wait(rid, interval=0.1)
    print(f"{info.status.value} {info.total} {peak:.1f}")

threading.Thread(target=sample, daemon=True).start()
anyio.run(main, sys.argv[1])
"""


def run(csv_path: Path) -> tuple[int, float, float]:
    started = time.perf_counter()
    out = subprocess.run(
        [sys.executable, "-c", CHILD, str(csv_path)], check=True, capture_output=True, text=True
    ).stdout.split()
    wall = time.perf_counter() - started
    assert out[0] == "Completed", out
    return int(out[1]), float(out[2]), wall


def main() -> None:
    with origin() as base_url:
        small = make_csv(base_url, 100, 1, mix="s03:1")
        large = make_csv(base_url, 10_000, 1, mix="s03:1")
        n_small, rss_small, wall_small = run(small)
        n_large, rss_large, wall_large = run(large)
    print(f"{n_small:>6} images: peak RSS {rss_small:.1f} MB ({wall_small:.1f}s)")
    print(f"{n_large:>6} images: peak RSS {rss_large:.1f} MB ({wall_large:.1f}s)")
    print(f"ratio {rss_large / rss_small:.2f} (target ≤ 1.20)")


if __name__ == "__main__":
    main()
