"""The API end to end: images/s through the real server, upload latency, status under load.

Starts ../shared/bench/origin.py and `imgapi serve` (SQLite, ./media in a temp dir), then:
1. run_bench.py (the shared client) on 100 rows x 3 URLs: upload → poll → Completed, beside
   cpu_limit.py's 2-process Pillow decode+encode on the same images (target ≥ 0.9 of it);
2. upload-to-202 latency of a 10,000-row CSV;
3. GET /status/{id} at a fixed 500 requests/s for 10 s while a 1,200-image request is
   processing, with hey (Debian's package; a Go client at a set rate that leaves the CPU to
   the server), or a Python open-loop client without it (latency counted from each
   request's scheduled time; it competes with the server for the two cores). Target: p99
   < 50 ms at 500 requests/s. Then wrk's closed-loop maximum (8 connections), if installed.
   HEY_WORKERS=<n> spreads the same rate over n clients instead of 10 (they fire together).
4. The same status load on granian instead of uvicorn (when granian is installed), to
   choose the server `imgapi serve` runs on.
Prints figures; asserts nothing.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
from _bench import bench_dir, cpu_limit, free_port, make_csv, origin, wait_until_answers


def start_server(
    work: Path, port: int, server: str = "uvicorn", python: str = sys.executable
) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "IMGCORE_FETCH_ALLOW": "127.0.0.1/32",
        "IMGAPI_LOG_FORMAT": "none",
        "IMGAPI_PUBLIC_URL": f"http://127.0.0.1:{port}",
    }
    if server == "granian":
        command = [
            *("granian", "--interface", "asgi", "--factory", "--host", "127.0.0.1"),
            *("--port", str(port), "--workers", "1", "--no-ws", "imgapi.app:create_app"),
        ]
    else:
        command = [python, "-m", "imgapi", "serve", "--port", str(port)]
    proc = subprocess.Popen(
        command,
        cwd=work,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    wait_until_answers(proc, f"http://127.0.0.1:{port}/readyz", 30)
    return proc


def stop(server: subprocess.Popen[bytes]) -> None:
    """SIGTERM, then SIGKILL if the server is still there after 30 s."""
    server.send_signal(signal.SIGTERM)
    try:
        server.wait(timeout=30)
    except subprocess.TimeoutExpired:
        server.kill()
        server.wait()


def run_bench(base: str, csv_path: Path, origin_url: str, pid: int) -> dict[str, object]:
    out = Path(tempfile.mkdtemp()) / "run.jsonl"
    subprocess.run(
        [
            sys.executable,
            "run_bench.py",
            "--base-url",
            base,
            "--csv",
            str(csv_path),
            "--upload-path",
            "/api/upload/",
            "--status-path",
            "/api/status/{id}/",
            "--poll-interval",
            "0.2",
            "--webhook",
            "--complete-on",
            "status",
            "--server-pid",
            str(pid),
            "--origin-url",
            origin_url,
            "--json-out",
            str(out),
        ],
        cwd=bench_dir(),
        check=True,
        stdout=subprocess.DEVNULL,
    )
    return dict(json.loads(out.read_text().splitlines()[-1]))


def big_csv(rows: int) -> bytes:
    lines = ["S. No.,Product Name,Input Image Urls"]
    lines += [
        f'{i},Product {i},"https://img.example.com/{i}/a.jpg,https://img.example.com/{i}/b.jpg,'
        f'https://img.example.com/{i}/c.jpg"'
        for i in range(1, rows + 1)
    ]
    return ("\n".join(lines) + "\n").encode()


async def status_load(base: str, request_id: str, rate: int, seconds: float) -> list[float]:
    latencies: list[float] = []
    limits = httpx.Limits(max_connections=64, max_keepalive_connections=64)
    async with httpx.AsyncClient(base_url=base, limits=limits, timeout=10) as client:
        start = time.perf_counter()

        async def one(scheduled: float) -> None:
            response = await client.get(f"/status/{request_id}", params={"per_page": 10})
            response.raise_for_status()
            latencies.append(time.perf_counter() - scheduled)

        tasks = []
        for i in range(int(rate * seconds)):
            scheduled = start + i / rate
            delay = scheduled - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(one(scheduled)))
        await asyncio.gather(*tasks)
    return latencies


def hey_status(url: str, rate: int, seconds: int) -> str:
    """hey at ``rate`` requests/s (``HEY_WORKERS`` clients, 10 by default) for ``seconds``; a
    one-line summary."""
    workers = int(os.environ.get("HEY_WORKERS", "10"))
    out = subprocess.run(
        ["hey", "-z", f"{seconds}s", "-c", str(workers), "-q", str(rate // workers), url],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    rps = re.search(r"Requests/sec:\s+([\d.]+)", out)
    p50 = re.search(r"50% in ([\d.]+) secs", out)
    p99 = re.search(r"99% in ([\d.]+) secs", out)
    codes = dict(re.findall(r"\[(\d+)\]\s+(\d+) responses", out))
    ms = lambda m: f"{float(m[1]) * 1000:.1f} ms" if m else "?"  # noqa: E731
    return (
        f"{rps[1] if rps else '?'} req/s answered, p50 {ms(p50)}, p99 {ms(p99)}, responses {codes}"
    )


def wrk_status(url: str) -> str:
    """wrk's closed-loop maximum: 8 connections for 10 s; a one-line summary."""
    out = subprocess.run(
        ["wrk", "-t2", "-c8", "-d10s", "--latency", url], capture_output=True, text=True, check=True
    ).stdout
    rps = re.search(r"Requests/sec:\s+([\d.]+)", out)
    p50 = re.search(r"50%\s+([\d.]+\w+)", out)
    p99 = re.search(r"99%\s+([\d.]+\w+)", out)
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    return (
        f"{rps[1] if rps else '?'} req/s, p50 {p50[1] if p50 else '?'}, "
        f"p99 {p99[1] if p99 else '?'}, non-2xx {errors[1] if errors else 0}"
    )


def status_under_load(base: str, busy_csv: Path, label: str) -> None:
    """Upload ``busy_csv`` and load GET /status on it while it is processing."""
    busy = httpx.post(
        f"{base}/upload",
        files={"file": ("busy.csv", busy_csv.read_bytes(), "text/csv")},
        timeout=60,
    ).json()["request_id"]
    url = f"{base}/status/{busy}?per_page=10"
    time.sleep(1)  # let the executor get going
    if shutil.which("hey"):
        summary = hey_status(url, rate=500, seconds=10)
    else:
        latencies = sorted(asyncio.run(status_load(base, busy, rate=500, seconds=10)))
        p50 = statistics.median(latencies) * 1000
        p99 = latencies[int(len(latencies) * 0.99) - 1] * 1000
        summary = f"{len(latencies)} answered, p50 {p50:.1f} ms, p99 {p99:.1f} ms (Python client)"
    still = httpx.get(f"{base}/status/{busy}").json()
    print(
        f"[{label}] GET /status at 500 req/s for 10 s while processing: {summary} "
        f"(target p99 < 50 ms); the request had {still['done'] + still['failed']}/"
        f"{still['total']} images ended by then"
    )
    if shutil.which("wrk"):
        print(f"[{label}] GET /status closed loop (wrk, 8 connections, 10 s): {wrk_status(url)}")


def main() -> None:
    work = Path(tempfile.mkdtemp(prefix="imgcore-api-"))
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    with origin() as origin_url:
        csv_path = make_csv(origin_url, 100, 3)
        busy_csv = make_csv(origin_url, 400, 3)
        limit = cpu_limit(csv_path)["measured"]
        server = start_server(work, port)
        try:
            result = run_bench(base, csv_path, origin_url, server.pid)
            rate = float(result["images_per_s"])  # type: ignore[arg-type]
            print(f"bare Pillow decode+encode q50, 2 processes: {limit:.2f} img/s")
            print(
                f"imgapi end to end (run_bench, 300 images): {rate:.2f} img/s = "
                f"{rate / limit:.2f} of the limit; webhook after {result.get('webhook_s')} s; "
                f"peak RSS {result.get('rss_peak_mb')} MB"
            )

            data = big_csv(10_000)
            started = time.perf_counter()
            reply = httpx.post(
                f"{base}/upload", files={"file": ("big.csv", data, "text/csv")}, timeout=120
            )
            took = time.perf_counter() - started
            print(
                f"upload 10,000 rows / 30,000 URLs ({len(data) / 1e6:.1f} MB) to 202: "
                f"{took * 1000:.0f} ms (HTTP {reply.status_code})"
            )

        finally:
            stop(server)
        # Status under load on a fresh server of each kind, the same request processing.
        for kind in ("uvicorn", "granian"):
            if kind == "granian" and not shutil.which("granian"):
                continue
            work = Path(tempfile.mkdtemp(prefix=f"imgcore-api-{kind}-"))
            port = free_port()
            server = start_server(work, port, kind)
            try:
                status_under_load(f"http://127.0.0.1:{port}", busy_csv, kind)
            finally:
                stop(server)


if __name__ == "__main__":
    main()
