"""Fair share between API clients: client B's small request beside client A's huge one.

Starts ../shared/bench/origin.py and `imgapi serve` (SQLite, two API keys, a temp dir), then:
1. B's request alone (B_IMAGES images, default 30): seconds from upload to Completed — its
   own processing time;
2. A's request (A_IMAGES images, default 30,000) uploaded and running, B's request again;
3. prints both times and B's delay beyond its own processing time (target: < 5 s), and how
   far A got meanwhile.
Prints figures; asserts nothing. A smoke run: A_IMAGES=300 B_IMAGES=5 python bench_fairness.py
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
from _bench import free_port, make_csv, origin, wait_until_answers

A_IMAGES = int(os.environ.get("A_IMAGES", "30000"))
B_IMAGES = int(os.environ.get("B_IMAGES", "30"))
KEY_A, KEY_B = "bench-fair-a", "bench-fair-b"


def start_server(work: Path, port: int) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "IMGCORE_FETCH_ALLOW": "127.0.0.1/32",
        "IMGAPI_LOG_FORMAT": "none",
        "IMGAPI_PUBLIC_URL": f"http://127.0.0.1:{port}",
        "IMGAPI_API_KEYS": f"{KEY_A},{KEY_B}",
    }
    proc = subprocess.Popen(
        [sys.executable, "-m", "imgapi", "serve", "--port", str(port)],
        cwd=work,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    wait_until_answers(proc, f"http://127.0.0.1:{port}/readyz", 60)
    return proc


def upload(base: str, csv_path: Path, key: str) -> str:
    with csv_path.open("rb") as file:
        response = httpx.post(
            f"{base}/upload",
            files={"file": (csv_path.name, file, "text/csv")},
            headers={"X-API-Key": key},
            timeout=600,
        )
    response.raise_for_status()
    request_id: str = response.json()["request_id"]
    return request_id


def status(base: str, request_id: str, key: str) -> dict[str, Any]:
    response = httpx.get(
        f"{base}/status/{request_id}?per_page=1", headers={"X-API-Key": key}, timeout=60
    )
    response.raise_for_status()
    body: dict[str, Any] = response.json()
    return body


def time_to_end(base: str, csv_path: Path, key: str) -> float:
    started = time.monotonic()
    request_id = upload(base, csv_path, key)
    while status(base, request_id, key)["status"] not in ("Completed", "Failed"):
        time.sleep(0.05)
    return time.monotonic() - started


def main() -> None:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    with origin() as origin_url, tempfile.TemporaryDirectory() as work:
        small = make_csv(origin_url, B_IMAGES, per_row=1)
        small_again = make_csv(origin_url, B_IMAGES, per_row=1)
        huge = make_csv(origin_url, A_IMAGES, per_row=1)
        server = start_server(Path(work), port)
        try:
            alone = time_to_end(base, small, KEY_B)
            a_request = upload(base, huge, KEY_A)
            while int(status(base, a_request, KEY_A)["done"]) < min(20, A_IMAGES):
                time.sleep(0.05)
            beside = time_to_end(base, small_again, KEY_B)
            a_now = status(base, a_request, KEY_A)
        finally:
            server.send_signal(signal.SIGTERM)
            server.wait(timeout=60)
    print(f"B ({B_IMAGES} images) alone:             {alone:6.2f} s")
    print(f"B beside A ({A_IMAGES} images):      {beside:6.2f} s")
    print(f"B's delay beyond its own time:   {beside - alone:6.2f} s   (target < 5 s)")
    print(f"A meanwhile: {a_now['status']}, {a_now['done']} of {a_now['total']} done")


if __name__ == "__main__":
    main()
