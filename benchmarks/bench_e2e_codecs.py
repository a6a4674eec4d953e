"""Codecs end to end: `imgapi serve` on the bench mix against the 2-process Pillow limit.

One origin (``--unique-bytes``) and one 300-image CSV. Each round measures the bare
2-process Pillow q50 limit (cpu_limit.py) first, then each setting on a fresh server, after a
one-row warm-up request: images per second as a fraction of that round's limit, and the peak
RSS of the server's process tree (run_bench.py). Settings: Pillow ``exact`` (what the
original app wrote), the defaults of a fresh install (the vips codec when installed,
``visual`` quality) and vips ``exact``. Prints; asserts nothing.

    uv run python benchmarks/bench_e2e_codecs.py [--rounds 2] [--rows 100]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

from _bench import cpu_limit, free_port, make_csv, origin
from bench_ab import first_request
from bench_api import run_bench, start_server, stop

SETTINGS: dict[str, dict[str, str]] = {
    "pillow exact": {"IMGCORE_CODEC": "pillow", "IMGCORE_QUALITY_MODE": "exact"},
    "defaults": {},
    "vips exact": {"IMGCORE_CODEC": "vips", "IMGCORE_QUALITY_MODE": "exact"},
}


def one_setting(label: str, env: dict[str, str], csvs: dict[str, Path], origin_url: str) -> dict:
    saved = {name: os.environ.get(name) for name in ("IMGCORE_CODEC", "IMGCORE_QUALITY_MODE")}
    os.environ.update(env)
    try:
        work = Path(tempfile.mkdtemp(prefix="imgcore-codecs-"))
        port = free_port()
        base = f"http://127.0.0.1:{port}"
        server = start_server(work, port)
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
    try:
        first = first_request(base, csvs["one"])
        result = run_bench(base, csvs["main"], origin_url, server.pid)
        output = sum(path.stat().st_size for path in (work / "media").rglob("*") if path.is_file())
    finally:
        stop(server)
    return {**result, "first": first, "output_bytes": output, "label": label}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--rows", type=int, default=100)
    args = parser.parse_args()
    with origin() as origin_url:
        csvs = {"main": make_csv(origin_url, args.rows, 3), "one": make_csv(origin_url, 1, 1)}
        for number in range(args.rounds):
            limit = cpu_limit(csvs["main"])["measured"]
            print(f"round {number + 1}: bare Pillow q50 limit, 2 processes: {limit:.2f} img/s")
            labels = list(SETTINGS) if number % 2 == 0 else list(reversed(SETTINGS))
            for label in labels:
                started = time.perf_counter()
                r = one_setting(label, SETTINGS[label], csvs, origin_url)
                rate = float(r["images_per_s"])
                print(
                    f"  {label:13} {rate:6.2f} img/s = {rate / limit:.2f} of the limit; "
                    f"peak RSS {r.get('rss_peak_mb')} MB; output {r['output_bytes'] / 1e6:.2f} MB; "
                    f"first request {r['first'] * 1000:.0f} ms "
                    f"({time.perf_counter() - started:.0f} s in all)",
                    flush=True,
                )


if __name__ == "__main__":
    main()
