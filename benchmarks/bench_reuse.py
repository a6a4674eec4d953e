"""Re-imports (issue #19) through the real server: what a second upload of the same CSV costs.

Starts ../shared/bench/origin.py with --unique-bytes (validators on: ETag, Last-Modified, 304)
and `imgapi serve` (SQLite, file storage in a temp dir), warms it with one small request,
then, in one run:

1. the 100 x 3 bench CSV, first upload → Completed, and cpu_limit.py's 2-process Pillow limit
   on the same images beside it;
2. the same CSV again: wall time against the first (target ≤ 1/20), and the origin's count of
   304s and image bytes sent during it (target: 300 and 0);
3. /__bump of 5 corpus files, the same CSV again: which images were processed (reused null)
   against the URLs whose bytes changed, and whether their outputs changed;
4. a CSV naming each URL twice against one naming each once (new URLs for both; target
   within 10 %);
5. submit and status p99 on a server whose database remembers 1,000,000 sources, against one
   whose source table is empty (target within 1.2x).

Prints figures; asserts nothing.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import re
import sqlite3
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
from _bench import cpu_limit, free_port, make_csv, origin
from bench_api import start_server, stop


@contextmanager
def server(work: Path) -> Iterator[str]:
    port = free_port()
    proc = start_server(work, port)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        stop(proc)


class Webhooks:
    """A webhook receiver on a loopback port: when each request's webhook arrived."""

    def __init__(self) -> None:
        arrived = self.arrived = {}

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                arrived[body["request_id"]] = time.perf_counter()
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}/hook"
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    def wait(self, request_id: str) -> float:
        while request_id not in self.arrived:
            time.sleep(0.001)
        return float(self.arrived[request_id])


WEBHOOKS = Webhooks()


def upload(http: httpx.Client, csv: bytes, webhook_url: str | None = None) -> str:
    data = {"webhook_url": webhook_url} if webhook_url else {}
    response = http.post("/upload", files={"file": ("bench.csv", csv, "text/csv")}, data=data)
    response.raise_for_status()
    return str(response.json()["request_id"])


def run(http: httpx.Client, csv: bytes) -> tuple[float, str, dict[str, Any]]:
    """Upload → the request's webhook (no polling: a poll costs the server CPU that a
    re-import's few milliseconds per image would share): (seconds, request id, status)."""
    started = time.perf_counter()
    request_id = upload(http, csv, WEBHOOKS.url)
    ended = WEBHOOKS.wait(request_id)
    body: dict[str, Any] = http.get(f"/status/{request_id}", params={"per_page": 1}).json()
    return ended - started, request_id, body


def images(http: httpx.Client, request_id: str) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    page = 1
    while True:
        body = http.get(f"/status/{request_id}", params={"page": page, "per_page": 1000}).json()
        found += [image for product in body["products"] for image in product["images"]]
        if not body["page"]["next"]:
            return found
        page += 1


def origin_stats(base: str) -> dict[str, Any]:
    stats: dict[str, Any] = httpx.get(f"{base}/__stats").json()
    return stats


def image_bytes(stats: dict[str, Any]) -> int:
    return sum(kind["bytes"] for name, kind in stats["by_kind"].items() if name != "control")


def twice(csv: bytes) -> bytes:
    """The same CSV with each URL named twice in its cell."""
    lines = csv.decode().splitlines()
    out = [lines[0]]
    for line in lines[1:]:
        head, _, cell = line.partition(',"')
        urls = cell.rstrip('"').split(",")
        out.append(f'{head},"{",".join(urls + urls)}"')
    return ("\n".join(out) + "\n").encode()


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * p))]


def fill_sources(database: Path, count: int) -> None:
    """Remember ``count`` sources (each with one rendition) in the server's SQLite file."""
    now = datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")
    conn = sqlite3.connect(database)
    batch = 50_000
    for start in range(0, count, batch):
        rows = []
        for i in range(start, min(count, start + batch)):
            url = f"https://cdn.example.com/catalogue/{i}.jpg"
            rows.append((i + 1, "", hashlib.sha256(url.encode()).hexdigest(), url, f'"{i:x}"', now))
        conn.executemany(
            "INSERT INTO sources (id, client, url_hash, url, etag, content_hash, checked_at) "
            "VALUES (?, ?, ?, ?, ?, '" + "c" * 64 + "', ?)",
            [(r[0], r[1], r[2], r[3], r[4], r[5]) for r in rows],
        )
        conn.executemany(
            "INSERT INTO renditions (source_id, recipe, content_hash, result, users, created_at) "
            "VALUES (?, '" + "r" * 64 + "', '" + "c" * 64 + "', '{}', 1, ?)",
            [(r[0], r[5]) for r in rows],
        )
        conn.commit()
    conn.close()


def submit_and_status(base: str, origin_url: str, count: int) -> tuple[list[float], list[float]]:
    """``count`` uploads of a 3-URL CSV and ``5 * count`` status reads of a 300-image
    request: the latencies of each, seconds."""
    urls = [f"{origin_url}/err/404?s{i}" for i in range(3)]
    small = f'S. No.,Product Name,Input Image Urls\n1,P,"{",".join(urls)}"\n'.encode()
    submits, statuses = [], []
    with httpx.Client(base_url=base, timeout=60) as http:
        big = make_csv(origin_url, 100, 3).read_bytes()
        _, request_id, _ = run(http, big)
        for _ in range(count):
            started = time.perf_counter()
            upload(http, small)
            submits.append(time.perf_counter() - started)
        for _ in range(5 * count):
            started = time.perf_counter()
            http.get(f"/status/{request_id}").raise_for_status()
            statuses.append(time.perf_counter() - started)
    return submits, statuses


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=100)
    parser.add_argument("--sources", type=int, default=1_000_000)
    parser.add_argument("--bumps", type=int, default=5)
    args = parser.parse_args()
    with origin(unique_bytes=True) as origin_url:
        csv_path = make_csv(origin_url, args.rows, 3)
        csv = csv_path.read_bytes()
        work = Path(tempfile.mkdtemp(prefix="imgcore-reuse-"))
        with server(work) as base, httpx.Client(base_url=base, timeout=300) as http:
            warm = make_csv(origin_url, 2, 3).read_bytes().replace(b"?r=", b"?r=warm")
            cold, _, _ = run(http, warm)
            print(f"first request after start (6 images): {cold:.2f} s")

            first, _, body = run(http, csv)
            n = body["total"]
            limit = cpu_limit(csv_path, cores=2)["measured"]
            print(f"first upload: {n} images in {first:.2f} s = {n / first:.1f} img/s")
            print(
                f"  2-process Pillow q50 limit, same images: {limit:.1f} img/s "
                f"(first upload at {n / first / limit:.2f} of it)"
            )

            before = origin_stats(origin_url)
            again, again_id, body = run(http, csv)
            after = origin_stats(origin_url)
            not_modified = after["by_status"].get("304", 0) - before["by_status"].get("304", 0)
            sent = image_bytes(after) - image_bytes(before)
            reasons = [image["reused"] for image in images(http, again_id)]
            print(
                f"re-upload unchanged: {again:.3f} s = {again / first:.4f} of the first "
                f"(target <= 0.05); 1/{first / again:.0f}"
            )
            print(
                f"  origin: {not_modified} answered 304, {sent} image bytes sent; "
                f"reused {body['reused']}/{body['total']}: "
                f"{ {r: reasons.count(r) for r in set(reasons)} }"
            )

            shown = {image["input_url"]: image["output_url"] for image in images(http, again_id)}
            files = sorted({re.sub(r"\?.*", "", url).split("/img/")[1] for url in shown})
            bumped = files[: args.bumps]
            for name in bumped:
                httpx.get(f"{origin_url}/__bump", params={"path": f"img/{name}"})
            changed = {url for url in shown if re.sub(r"\?.*", "", url).split("/img/")[1] in bumped}
            third, third_id, body = run(http, csv)
            now = images(http, third_id)
            processed = {image["input_url"] for image in now if image["reused"] is None}
            moved = {i["input_url"] for i in now if i["output_url"] != shown[i["input_url"]]}
            print(
                f"after /__bump of {len(bumped)} files: {len(changed)} URLs serve new bytes; "
                f"{len(processed)} processed again ({third:.2f} s); "
                f"exactly those: {processed == changed}; their outputs changed: "
                f"{moved == changed}"
            )

            once_csv = csv.replace(b"?r=", b"?r=once")
            twice_csv = twice(csv.replace(b"?r=", b"?r=twice"))
            once, _, body_once = run(http, once_csv)
            both, _, body_twice = run(http, twice_csv)
            print(
                f"each URL once: {body_once['total']} images in {once:.2f} s; each URL twice: "
                f"{body_twice['total']} images in {both:.2f} s = {both / once:.3f}x "
                f"(target <= 1.10)"
            )

        # The source table's cost: the same server, empty table against a full one.
        figures = {}
        for label, count in (("empty", 0), (f"{args.sources:,}", args.sources), ("empty again", 0)):
            work = Path(tempfile.mkdtemp(prefix="imgcore-sources-"))
            with server(work):
                pass  # migrates the new database
            if count:
                started = time.perf_counter()
                fill_sources(work / "imgcore.sqlite3", count)
                print(f"remembered {count:,} sources in {time.perf_counter() - started:.0f} s")
            with server(work) as base:
                submits, statuses = submit_and_status(base, origin_url, 200)
            figures[label] = (percentile(submits, 0.99), percentile(statuses, 0.99))
            print(
                f"sources {label}: submit p50 {statistics.median(submits) * 1000:.1f} ms "
                f"p99 {figures[label][0] * 1000:.1f} ms; status p50 "
                f"{statistics.median(statuses) * 1000:.1f} ms p99 "
                f"{figures[label][1] * 1000:.1f} ms"
            )
        empty = [min(a, b) for a, b in zip(figures["empty"], figures["empty again"], strict=True)]
        full = figures[f"{args.sources:,}"]
        print(
            f"{args.sources:,} sources / empty: submit p99 {full[0] / empty[0]:.2f}x, "
            f"status p99 {full[1] / empty[1]:.2f}x (target <= 1.2)"
        )


if __name__ == "__main__":
    sys.exit(main())
