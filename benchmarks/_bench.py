"""Shared helpers for the benchmark scripts: the shared bench kit, a local origin, RSS."""

from __future__ import annotations

import contextlib
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path


def bench_dir() -> Path:
    """../shared/bench (or $IMGCORE_BENCH_DIR): origin, corpus, CSV maker, CPU limit."""
    path = Path(
        os.environ.get(
            "IMGCORE_BENCH_DIR", Path(__file__).resolve().parents[2] / "shared" / "bench"
        )
    )
    if not (path / "origin.py").exists():
        sys.exit(f"bench kit not found at {path}: set IMGCORE_BENCH_DIR")
    return path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def origin(latency_ms: int = 0, *, unique_bytes: bool = True) -> Iterator[str]:
    """Run ../shared/bench/origin.py on a free loopback port; yields its base URL.

    ``unique_bytes``: every URL gets bytes of its own (same pixels), so that throughput runs
    do the whole work for every URL even once identical content could be reused.
    """
    port = free_port()
    command = [sys.executable, "origin.py", "--port", str(port), "--latency-ms", str(latency_ms)]
    proc = subprocess.Popen(
        [*command, "--unique-bytes"] if unique_bytes else command,
        cwd=bench_dir(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
                break
            time.sleep(0.05)
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.terminate()
        proc.wait()


def make_csv(base_url: str, rows: int, per_row: int = 3, mix: str | None = None) -> Path:
    """A bench CSV from ../shared/bench/make_csv.py (unique URLs)."""
    out = Path(tempfile.mkdtemp(prefix="imgcore-bench-")) / f"bench{rows}x{per_row}.csv"
    cmd = [
        sys.executable,
        "make_csv.py",
        "--rows",
        str(rows),
        "--per-row",
        str(per_row),
        "--origin",
        base_url,
        "--out",
        str(out),
    ]
    if mix:
        cmd += ["--mix", mix]
    subprocess.run(cmd, cwd=bench_dir(), check=True, stdout=subprocess.DEVNULL)
    return out


def cpu_limit(csv_path: Path, cores: int = 2, *, reuse_memory: bool = False) -> dict[str, float]:
    """Bare Pillow decode+encode q50 on the CSV's images: per-core theory and measured 2-core.

    ``reuse_memory``: with Pillow keeping freed image memory as imgcore's compression
    workers do (``PILLOW_BLOCKS_MAX``, see ``cache_image_memory`` in
    imgcore._compression.tuning), for a limit on equal terms; the shared script itself runs
    Pillow's defaults.
    """
    from imgcore._compression.tuning import IMAGE_MEMORY_CACHE

    env = dict(os.environ)
    env.pop("PILLOW_BLOCKS_MAX", None)
    if reuse_memory:
        env["PILLOW_BLOCKS_MAX"] = str(IMAGE_MEMORY_CACHE // (16 * 1024 * 1024))
    out = Path(tempfile.mkdtemp()) / "limit.json"
    subprocess.run(
        [
            sys.executable,
            "cpu_limit.py",
            "--csv",
            str(csv_path),
            "--reps",
            "3",
            "--cores",
            str(cores),
            "--variants",
            "pil_q50",
            "--json-out",
            str(out),
        ],
        cwd=bench_dir(),
        check=True,
        stdout=subprocess.DEVNULL,
        env=env,
    )
    result = json.loads(out.read_text().splitlines()[-1])
    measured = result["pil_q50_measured_parallel"]["img_per_s"]
    return {"measured": float(measured)}


def peak_rss_mb_of_children() -> float:
    import resource

    return resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024


def wait_until_answers(proc: subprocess.Popen[bytes], url: str, seconds: float) -> None:
    """Poll ``url`` until it answers 200; kill ``proc`` and exit if it does not in time."""
    import httpx

    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            if httpx.get(url).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    proc.kill()
    raise SystemExit(f"the server did not answer {url} within {seconds:g} s")
