"""Two builds in one run: the API end to end, a 10,000-row upload and status under load.

    uv run python benchmarks/bench_ab.py OLD_CHECKOUT NEW_CHECKOUT [--rounds 2]

Each checkout must have its own environment (``uv sync --frozen`` in it); its servers run
with that checkout's ``.venv/bin/python``. One origin (``--unique-bytes``) serves every run.
Each round measures the bare 2-process Pillow limit first, then each build in turn on a fresh
server: the first request after start (one row), then, warm, 300 images through run_bench
(img/s as a fraction of that round's limit), the upload of a 10,000-row CSV to 202, and
``GET /status`` at 500 requests/s with hey while 1,200 images process. Only figures of the
same round are compared. Prints; asserts nothing.
"""

from __future__ import annotations

import argparse
import re
import shutil
import tempfile
import time
from pathlib import Path

import httpx
from _bench import cpu_limit, free_port, make_csv, origin
from bench_api import big_csv, hey_status, run_bench, start_server, stop


def first_request(base: str, csv_path: Path) -> float:
    """Seconds from uploading a one-row CSV to its Completed status."""
    started = time.perf_counter()
    reply = httpx.post(
        f"{base}/upload", files={"file": ("one.csv", csv_path.read_bytes(), "text/csv")}
    )
    request_id = reply.json()["request_id"]
    while httpx.get(f"{base}/status/{request_id}").json()["status"] not in ("Completed", "Failed"):
        time.sleep(0.02)
    return time.perf_counter() - started


def status_p99(base: str, busy_csv: Path) -> str:
    busy = httpx.post(
        f"{base}/upload",
        files={"file": ("busy.csv", busy_csv.read_bytes(), "text/csv")},
        timeout=60,
    ).json()["request_id"]
    time.sleep(1)  # let the executor get going
    return hey_status(f"{base}/status/{busy}?per_page=10", rate=500, seconds=10)


def one_build(
    label: str, checkout: Path, csvs: dict[str, Path], origin_url: str, limit: float
) -> None:
    python = str(checkout / ".venv" / "bin" / "python")
    work = Path(tempfile.mkdtemp(prefix=f"imgcore-ab-{label}-"))
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    started = time.perf_counter()
    server = start_server(work, port, python=python)
    ready = time.perf_counter() - started
    try:
        first = first_request(base, csvs["one"])
        result = run_bench(base, csvs["main"], origin_url, server.pid)
        rate = float(result["images_per_s"])  # type: ignore[arg-type]
        data = big_csv(10_000)
        upload_started = time.perf_counter()
        httpx.post(f"{base}/upload", files={"file": ("big.csv", data, "text/csv")}, timeout=120)
        upload = time.perf_counter() - upload_started
    finally:
        stop(server)
    print(
        f"  [{label}] ready {ready:.2f} s; first 1-row request {first * 1000:.0f} ms; "
        f"300 images {rate:.2f} img/s = {rate / limit:.2f} of the limit "
        f"(peak RSS {result.get('rss_peak_mb')} MB); 10,000-row upload {upload * 1000:.0f} ms"
    )
    work = Path(tempfile.mkdtemp(prefix=f"imgcore-ab-{label}-status-"))
    port = free_port()
    server = start_server(work, port, python=python)
    try:
        summary = status_p99(f"http://127.0.0.1:{port}", csvs["busy"])
    finally:
        stop(server)
    p99 = re.search(r"p99 ([\d.]+ ms)", summary)
    print(f"  [{label}] GET /status at 500 req/s while processing: {summary}")
    if p99 is None:
        print(f"  [{label}] (no p99 parsed)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("old", type=Path)
    parser.add_argument("new", type=Path)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    if not shutil.which("hey"):
        raise SystemExit("hey is needed (apt-get install hey)")
    with origin() as origin_url:
        for number in range(1, args.rounds + 1):
            csvs = {
                "one": make_csv(origin_url, 1, 1),
                "main": make_csv(origin_url, 100, 3),
                "busy": make_csv(origin_url, 400, 3),
            }
            limit = cpu_limit(csvs["main"])["measured"]
            print(f"round {number}: bare Pillow q50, 2 processes: {limit:.2f} img/s")
            builds = [("old", args.old), ("new", args.new)]
            if number % 2 == 0:
                builds.reverse()  # neither build always runs on a warmer machine
            for label, checkout in builds:
                one_build(label, checkout.resolve(), csvs, origin_url, limit)


if __name__ == "__main__":
    main()
