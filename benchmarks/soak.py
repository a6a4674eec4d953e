"""Soak: the real server under steady uploads and status polling; does its memory stay flat?

Starts ../shared/bench/origin.py and `imgapi serve` (SQLite and ./media in a temp dir, on a
free loopback port), then runs ``--rounds`` rounds (default 2) of ``--seconds`` each (default
180) against the same server process: small CSVs uploaded at ``--rate`` per second (at most
``--max-uploads`` a round) while ``--pollers`` clients poll the status of the requests in
flight. After each round's uploads it waits (at most ``--drain`` seconds) for the requests to
end. The RSS of the server's process tree (the server and its compression workers) is sampled
every second; every ``--report-every`` seconds a line shows it.

Prints per round: requests completed, errors by kind, p50/p99 of upload and status latency,
peak RSS, and whether RSS climbed from the round's first half to its second; then the peak
RSS of each round and their ratio (run over run). Figures only: nothing is asserted, and on a
shared machine they are indicative. Not a test; run with ``uv run nox -s soak`` (``-- --seconds
60`` for a short run).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import math
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import psutil
from _bench import free_port, make_csv, origin

TERMINAL = ("Completed", "Failed")
# RSS above this ratio between halves or rounds is reported as a climb (noise stays below).
CLIMB = 1.10


@dataclass
class Round:
    """What one round measured."""

    number: int
    uploads: int = 0
    completed: int = 0
    failed: int = 0
    errors: Counter[str] = field(default_factory=Counter)
    upload_latency: list[float] = field(default_factory=list)
    status_latency: list[float] = field(default_factory=list)
    #: (seconds since the round started, RSS in MB of the server's process tree)
    rss: list[tuple[float, float]] = field(default_factory=list)
    in_flight: dict[str, float] = field(default_factory=dict)  # request id → upload time
    end_to_end: list[float] = field(default_factory=list)

    def peak(self, start: float = 0.0, end: float = math.inf) -> float:
        return max((mb for t, mb in self.rss if start <= t < end), default=0.0)


def tree_rss_mb(process: psutil.Process) -> float:
    """RSS of ``process`` and all its descendants, in MB."""
    total = 0
    for proc in [process, *process.children(recursive=True)]:
        with contextlib.suppress(psutil.Error):  # a worker that just exited
            total += proc.memory_info().rss
    return total / 2**20


def percentile(values: list[float], q: float) -> float:
    if not values:
        return math.nan
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, math.ceil(q * len(ordered)) - 1))]


def csv_pieces(base_url: str, count: int, rows: int, per_row: int) -> list[bytes]:
    """``count`` small CSVs of ``rows`` rows, cut from one bench CSV (every URL unique)."""
    path = make_csv(base_url, count * rows, per_row, mix="s03:1")
    header, *lines = path.read_text().splitlines()
    return [
        ("\n".join([header, *lines[i : i + rows]]) + "\n").encode()
        for i in range(0, count * rows, rows)
    ]


def start_server(work: Path, port: int) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "IMGCORE_DATABASE_URL": f"sqlite+aiosqlite:///{work}/imgcore.sqlite3",
        "IMGCORE_STORAGE_URL": f"file:{work}/media",
        "IMGCORE_FETCH_ALLOW": "127.0.0.1/32",
        "IMGAPI_PUBLIC_URL": f"http://127.0.0.1:{port}",
        "IMGAPI_LOG_FORMAT": "json",
    }
    proc = subprocess.Popen(
        [sys.executable, "-m", "imgapi", "serve", "--host", "127.0.0.1", "--port", str(port)],
        cwd=work,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=(work / "server.log").open("wb"),
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"imgapi serve exited ({proc.returncode}); see {work}/server.log")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=2).status_code == 200:
                return proc
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    proc.kill()
    raise SystemExit("imgapi serve did not become ready within 60 s")


async def uploader(
    client: httpx.AsyncClient,
    stats: Round,
    pieces: list[bytes],
    rate: float,
    until: float,
) -> None:
    """Open loop: one upload every 1/rate s (each in its own task) until time or CSVs run out."""
    tasks: set[asyncio.Task[None]] = set()
    start = time.monotonic()

    async def one(csv: bytes) -> None:
        sent = time.monotonic()
        try:
            response = await client.post(
                "/upload", files={"file": ("soak.csv", csv, "text/csv")}, timeout=60
            )
        except httpx.HTTPError as exc:
            stats.errors[f"upload {type(exc).__name__}"] += 1
            return
        stats.upload_latency.append(time.monotonic() - sent)
        if response.status_code != 202:
            stats.errors[f"upload HTTP {response.status_code}"] += 1
            return
        stats.in_flight[response.json()["request_id"]] = sent

    for i, csv in enumerate(pieces):
        due = start + i / rate
        if due >= until:
            break
        await asyncio.sleep(max(0.0, due - time.monotonic()))
        stats.uploads += 1
        task = asyncio.create_task(one(csv))
        tasks.add(task)
        task.add_done_callback(tasks.discard)
    if tasks:
        await asyncio.gather(*tasks)


async def poller(
    client: httpx.AsyncClient, stats: Round, stop: asyncio.Event, rng: random.Random
) -> None:
    """Closed loop: the status of a random request in flight, then a short pause."""
    while not stop.is_set():
        if not stats.in_flight:
            await asyncio.sleep(0.05)
            continue
        request_id = rng.choice(list(stats.in_flight))
        sent = time.monotonic()
        try:
            response = await client.get(
                f"/status/{request_id}", params={"per_page": 10}, timeout=30
            )
        except httpx.HTTPError as exc:
            stats.errors[f"status {type(exc).__name__}"] += 1
            continue
        stats.status_latency.append(time.monotonic() - sent)
        if response.status_code != 200:
            stats.errors[f"status HTTP {response.status_code}"] += 1
            continue
        status = response.json()["status"]
        if status in TERMINAL and request_id in stats.in_flight:
            uploaded = stats.in_flight.pop(request_id)
            stats.end_to_end.append(time.monotonic() - uploaded)
            if status == "Completed":
                stats.completed += 1
            else:
                stats.failed += 1
                stats.errors["request Failed"] += 1
        await asyncio.sleep(0.05)


async def sampler(
    server: psutil.Process, stats: Round, stop: asyncio.Event, started: float, every: float
) -> None:
    """RSS every second; a progress line every ``every`` seconds."""
    next_report = every
    while not stop.is_set():
        t = time.monotonic() - started
        try:
            stats.rss.append((t, tree_rss_mb(server)))
        except psutil.NoSuchProcess:
            stats.errors["server exited"] += 1
            return
        if t >= next_report:
            next_report += every
            print(
                f"  t={t:5.0f}s  rss={stats.rss[-1][1]:7.1f} MB  uploads={stats.uploads:4d}  "
                f"done={stats.completed:4d}  in flight={len(stats.in_flight):3d}  "
                f"errors={sum(stats.errors.values())}",
                flush=True,
            )
        await asyncio.sleep(1.0)


async def run_round(
    number: int, base: str, server: psutil.Process, pieces: list[bytes], args: argparse.Namespace
) -> Round:
    stats = Round(number)
    rng = random.Random(number)
    limits = httpx.Limits(max_connections=64, max_keepalive_connections=32)
    stop = asyncio.Event()
    started = time.monotonic()
    print(f"round {number}: {args.seconds:.0f} s, {len(pieces)} uploads at most", flush=True)
    async with httpx.AsyncClient(base_url=base, limits=limits) as client:
        background = [
            asyncio.create_task(sampler(server, stats, stop, started, args.report_every)),
            *(asyncio.create_task(poller(client, stats, stop, rng)) for _ in range(args.pollers)),
        ]
        await uploader(client, stats, pieces, args.rate, started + args.seconds)
        drain_until = time.monotonic() + args.drain
        while stats.in_flight and time.monotonic() < drain_until:
            await asyncio.sleep(0.2)
        if stats.in_flight:
            stats.errors["not finished after the drain"] += len(stats.in_flight)
        stop.set()
        await asyncio.gather(*background)
    return stats


def report(stats: Round) -> None:
    ms = 1000
    duration = stats.rss[-1][0] if stats.rss else 0.0
    half = duration / 2
    first, second = stats.peak(0, half), stats.peak(half)
    climb = second / first if first else math.nan
    errors = ", ".join(f"{kind}: {n}" for kind, n in stats.errors.most_common()) or "none"
    print(f"round {stats.number} ({duration:.0f} s):")
    print(
        f"  requests: {stats.uploads} uploaded, {stats.completed} completed, "
        f"{stats.failed} failed; end to end p50 {percentile(stats.end_to_end, 0.5):.2f} s, "
        f"p99 {percentile(stats.end_to_end, 0.99):.2f} s"
    )
    print(f"  errors: {errors}")
    print(
        f"  upload: {len(stats.upload_latency)} answered, "
        f"p50 {percentile(stats.upload_latency, 0.5) * ms:.0f} ms, "
        f"p99 {percentile(stats.upload_latency, 0.99) * ms:.0f} ms"
    )
    print(
        f"  status: {len(stats.status_latency)} answered, "
        f"p50 {percentile(stats.status_latency, 0.5) * ms:.1f} ms, "
        f"p99 {percentile(stats.status_latency, 0.99) * ms:.1f} ms"
    )
    print(
        f"  peak RSS {stats.peak():.1f} MB; first half {first:.1f} MB, second half "
        f"{second:.1f} MB: ratio {climb:.2f} "
        f"({'CLIMBED' if climb > CLIMB else 'flat'}, threshold {CLIMB:.2f})"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--seconds", type=float, default=180, help="length of a round")
    parser.add_argument("--rounds", type=int, default=2, help="rounds against one server")
    parser.add_argument("--rate", type=float, default=3, help="uploads per second")
    parser.add_argument("--max-uploads", type=int, help="per round (default rate * seconds)")
    parser.add_argument("--rows", type=int, default=3, help="rows per uploaded CSV")
    parser.add_argument("--per-row", type=int, default=1, help="image URLs per row")
    parser.add_argument("--pollers", type=int, default=4, help="concurrent status pollers")
    parser.add_argument("--drain", type=float, default=60, help="seconds to let a round end")
    parser.add_argument("--report-every", type=float, default=10, help="seconds between lines")
    parser.add_argument("--keep", action="store_true", help="keep the database, media and log")
    args = parser.parse_args()
    per_round = args.max_uploads or math.ceil(args.rate * args.seconds)

    work = Path(tempfile.mkdtemp(prefix="imgcore-soak-"))
    port = free_port()
    with origin() as origin_url:
        pieces = csv_pieces(origin_url, per_round * args.rounds, args.rows, args.per_row)
        proc = start_server(work, port)
        server = psutil.Process(proc.pid)
        print(f"imgapi serve pid {proc.pid} on port {port}, data in {work}", flush=True)
        rounds: list[Round] = []
        try:
            for number in range(1, args.rounds + 1):
                batch = pieces[(number - 1) * per_round : number * per_round]
                rounds.append(
                    asyncio.run(run_round(number, f"http://127.0.0.1:{port}", server, batch, args))
                )
        finally:
            proc.send_signal(signal.SIGTERM)
            try:
                code = proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                proc.kill()
                code = proc.wait()
    print()
    for stats in rounds:
        report(stats)
    peaks = [stats.peak() for stats in rounds]
    print(f"peak RSS per round: {', '.join(f'{peak:.1f} MB' for peak in peaks)}")
    if len(peaks) >= 2 and peaks[0]:
        ratio = peaks[-1] / peaks[0]
        verdict = "CLIMBED" if ratio > CLIMB else "flat"
        print(f"last round / first round: {ratio:.2f} ({verdict}, threshold {CLIMB:.2f})")
    # uvicorn re-raises SIGTERM once it has shut down: -15 is a clean exit, -9 a forced one.
    clean = "clean shutdown" if code in (0, -signal.SIGTERM) else "NOT a clean shutdown"
    print(f"server exit code {code} ({clean})")
    if args.keep:
        print(f"database, media and server.log kept in {work}")
    else:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
