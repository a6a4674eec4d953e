"""A flood of admin logins against `imgapi serve`: server RSS and an unrelated upload's latency.

Starts `imgapi serve` on loopback (one process, an admin user made with `imgapi
create-admin`), measures a one-row upload with no flood, then during a flood of ATTEMPTS
concurrent login attempts with wrong passwords (#16 finding 2: 80 attempts took RSS from
145 to 939 MB and a one-row upload 6.9 s before the hash bound). Two floods:

- ``spread``: each attempt from its own loopback address (127.0.1.x) for a username of its
  own, as a distributed guesser would: no attempt limit applies, only the hash bound
  (IMGAPI_ADMIN_HASH_CONCURRENCY) holds memory and CPU;
- ``one address``: every attempt from 127.0.0.1 for ``admin``: the attempt limits answer
  429 past their count, at no hashing cost.

Prints figures; asserts nothing.

    uv run python benchmarks/bench_login_flood.py [--attempts 80] [--uploads 10]
"""

from __future__ import annotations

import argparse
import collections
import os
import re
import signal
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
PASSWORD = "correct horse battery"
CSV = b"S. No.,Product Name,Input Image Urls\r\n1,Bench,http://127.0.0.1:9/x.jpg\r\n"


def start(work: Path, port: int, extra: dict[str, str]) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "IMGAPI_LOG_FORMAT": "none",
        "IMGAPI_PUBLIC_URL": f"http://127.0.0.1:{port}",
        "IMGCORE_WORKERS": "1",
        "IMGCORE_COMPRESS_POOL": "thread",
        "IMGCORE_FETCH_ALLOW": "127.0.0.1",
        "IMGCORE_FETCH_MAX_ATTEMPTS": "1",
        **extra,
    }
    subprocess.run(
        [sys.executable, "-m", "imgapi", "create-admin", "admin"],
        input=PASSWORD + "\n",
        text=True,
        cwd=work,
        env=env,
        check=True,
        capture_output=True,
    )
    proc = subprocess.Popen(
        [sys.executable, "-m", "imgapi", "serve", "--port", str(port)],
        cwd=work,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    wait_until_answers(proc, f"http://127.0.0.1:{port}/healthz", 60)
    return proc


def upload_seconds(client: httpx.Client) -> float:
    t0 = time.monotonic()
    response = client.post("/upload", files={"file": ("one.csv", CSV, "text/csv")})
    elapsed = time.monotonic() - t0
    if response.status_code != 202:
        raise SystemExit(f"upload answered {response.status_code}: {response.text}")
    return elapsed


def attempt(base_url: str, address: str, username: str, codes: collections.Counter[str]) -> None:
    transport = httpx.HTTPTransport(local_address=address)
    with httpx.Client(base_url=base_url, transport=transport, timeout=300) as client:
        try:
            page = client.get("/admin/login").text
            token = re.search(r'name="csrf_token" value="([^"]+)"', page)
            response = client.post(
                "/admin/login",
                data={
                    "csrf_token": token.group(1) if token else "",
                    "username": username,
                    "password": "wrong password",
                },
            )
            codes[str(response.status_code)] += 1
        except httpx.HTTPError as exc:
            codes[type(exc).__name__] += 1


def summary(latencies: list[float]) -> str:
    return (
        f"p50 {statistics.median(latencies) * 1000:.0f} ms, "
        f"max {max(latencies) * 1000:.0f} ms over {len(latencies)}"
    )


def run(attempts: int, uploads: int, extra: dict[str, str]) -> None:
    work = Path(tempfile.mkdtemp())
    port = free_port()
    base_url = f"http://127.0.0.1:{port}"
    server = start(work, port, extra)
    try:
        process = psutil.Process(server.pid)
        with httpx.Client(base_url=base_url, timeout=300) as client:
            quiet = [upload_seconds(client) for _ in range(uploads)]
            idle = process.memory_info().rss
            print(f"no flood: RSS {idle / MIB:.0f} MiB; one-row upload {summary(quiet)}")
            for name, spread in (("spread", True), ("one address", False)):
                peak = [process.memory_info().rss]
                done = threading.Event()

                def sample(peak: list[int] = peak, done: threading.Event = done) -> None:
                    while not done.wait(0.005):
                        peak[0] = max(peak[0], process.memory_info().rss)

                sampler = threading.Thread(target=sample, daemon=True)
                sampler.start()
                codes: collections.Counter[str] = collections.Counter()
                threads = [
                    threading.Thread(
                        target=attempt,
                        args=(
                            base_url,
                            f"127.0.1.{n % 250 + 1}" if spread else "127.0.0.1",
                            f"guess{n}" if spread else "admin",
                            codes,
                        ),
                    )
                    for n in range(attempts)
                ]
                started = time.monotonic()
                for thread in threads:
                    thread.start()
                during: list[float] = []
                while any(thread.is_alive() for thread in threads) or not during:
                    during.append(upload_seconds(client))
                    time.sleep(0.05)
                elapsed = time.monotonic() - started
                done.set()
                sampler.join()
                answers = ", ".join(f"{count} x {code}" for code, count in sorted(codes.items()))
                print(
                    f"flood ({name}) of {attempts} logins: RSS peak {peak[0] / MIB:.0f} MiB "
                    f"(+{(peak[0] - idle) / MIB:.0f}); one-row upload {summary(during)}; "
                    f"answers {answers}; over in {elapsed:.1f} s"
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
    parser.add_argument("--attempts", type=int, default=80, help="concurrent login attempts")
    parser.add_argument("--uploads", type=int, default=10, help="uploads timed with no flood")
    parser.add_argument(
        "--hash-concurrency", type=int, default=None, help="IMGAPI_ADMIN_HASH_CONCURRENCY"
    )
    args = parser.parse_args()
    extra = {}
    if args.hash_concurrency is not None:
        extra["IMGAPI_ADMIN_HASH_CONCURRENCY"] = str(args.hash_concurrency)
    run(args.attempts, args.uploads, extra)


if __name__ == "__main__":
    main()
