"""Hostile connections against `imgapi serve`: server RSS and /healthz during a header flood.

Starts `imgapi serve` on loopback, then CLIENTS connections each send one request head of
HEAD_MB megabytes (a header that never ends) in 64 KiB writes while /healthz is polled.
Prints the server's peak RSS above its idle RSS, what each client sent before the server
closed it, and /healthz latency (#16 finding 3). `--compare` runs plain uvicorn on the same
app too (no head limit: it buffers every byte). Prints figures; asserts nothing.

    uv run python benchmarks/bench_hostile.py [--clients 8] [--head-mb 64] [--compare]
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx
import psutil
from _bench import free_port, wait_until_answers

MIB = 1 << 20


def start(work: Path, port: int, plain: bool) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "IMGAPI_LOG_FORMAT": "none",
        "IMGAPI_PUBLIC_URL": f"http://127.0.0.1:{port}",
        "IMGCORE_WORKERS": "1",
        "IMGCORE_COMPRESS_POOL": "thread",
    }
    if plain:
        command = [
            *(sys.executable, "-m", "uvicorn", "--factory", "imgapi.app:create_app"),
            *("--host", "127.0.0.1", "--port", str(port), "--no-access-log"),
        ]
    else:
        command = [sys.executable, "-m", "imgapi", "serve", "--port", str(port)]
    proc = subprocess.Popen(
        command, cwd=work, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    wait_until_answers(proc, f"http://127.0.0.1:{port}/healthz", 60)
    return proc


def flood(port: int, head_bytes: int, sent: list[int]) -> None:
    """One endless request head; records the bytes written before the server closed it."""
    chunk = b"a" * 65536
    total = 0
    with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
        try:
            sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: ")
            while total < head_bytes:
                sock.sendall(chunk)
                total += len(chunk)
            sock.sendall(b"\r\n\r\n")
            sock.recv(100)
        except OSError:
            pass
    sent.append(total)


def run(name: str, plain: bool, clients: int, head_mb: int) -> None:
    work = Path(tempfile.mkdtemp())
    port = free_port()
    server = start(work, port, plain)
    try:
        process = psutil.Process(server.pid)
        idle = process.memory_info().rss
        peak = [idle]
        done = threading.Event()

        def sample() -> None:
            while not done.wait(0.005):
                peak[0] = max(peak[0], process.memory_info().rss)

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        sent: list[int] = []
        threads = [
            threading.Thread(target=flood, args=(port, head_mb * MIB, sent)) for _ in range(clients)
        ]
        started = time.monotonic()
        for thread in threads:
            thread.start()
        latencies: list[float] = []
        with httpx.Client() as client:
            while True:
                t0 = time.monotonic()
                try:
                    client.get(f"http://127.0.0.1:{port}/healthz", timeout=30)
                    latencies.append(time.monotonic() - t0)
                except httpx.HTTPError:
                    latencies.append(float("inf"))
                if not any(thread.is_alive() for thread in threads):
                    break
                time.sleep(0.02)
        elapsed = time.monotonic() - started
        done.set()
        sampler.join()
        print(
            f"{name}: {clients} clients x {head_mb} MB head: "
            f"RSS idle {idle / MIB:.0f} MiB, peak +{(peak[0] - idle) / MIB:.0f} MiB; "
            f"sent before close {min(sent) / MIB:.1f}-{max(sent) / MIB:.1f} MiB; "
            f"/healthz p50 {statistics.median(latencies) * 1000:.0f} ms, "
            f"max {max(latencies) * 1000:.0f} ms over {len(latencies)} calls; "
            f"flood over in {elapsed:.1f} s"
        )
    finally:
        server.send_signal(signal.SIGTERM)
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--head-mb", type=int, default=64)
    parser.add_argument("--compare", action="store_true", help="also plain uvicorn")
    args = parser.parse_args()
    run("imgapi serve", False, args.clients, args.head_mb)
    if args.compare:
        run("plain uvicorn", True, args.clients, args.head_mb)


if __name__ == "__main__":
    main()
