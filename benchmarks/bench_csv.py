"""Input CSV parsing speed and memory: 1,000,000 rows of 3 URLs, streamed through iter_products.

The parse runs in a fresh interpreter so that its peak RSS excludes generating the file.
Also times write_output_csv over the same number of rows, and prints the CPU seconds per MB
of input for valid rows, quoted rows and blank rows (``,,``), parsed in this process.

    uv run python benchmarks/bench_csv.py [--rows N] [--sample-mb MB]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

RSS_TARGET_MB = 150
ORIGIN = "http://127.0.0.1:8002"
FILES = ("s03_astronaut.jpg", "s2_00.jpg", "s8_00.jpg", "s12_00.jpg")

# Runs in the child: parse the file, report timings and this process's peak RSS.
CHILD = """
import json, resource, sys, time
from imgcore._csvio import CsvLimits, iter_products

path, rows = sys.argv[1], int(sys.argv[2])
base_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
limits = CsvLimits(max_rows=rows, max_file_bytes=10**10)
started = time.perf_counter()
count = urls = 0
with open(path, "rb") as f:
    for product in iter_products(f, limits):
        count += 1
        urls += len(product.urls)
seconds = time.perf_counter() - started
peak_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps({"rows": count, "urls": urls, "seconds": seconds,
                  "base_kb": base_kb, "peak_kb": peak_kb}))
"""


def write_csv(path: Path, rows: int) -> int:
    """The original Django app's format, URLs as bench/make_csv.py writes them."""
    with path.open("w", encoding="utf-8", newline="") as out:
        out.write("Serial Number,Product Name,Input Image Urls\n")
        for serial in range(1, rows + 1):
            urls = ",".join(
                f"{ORIGIN}/img/{FILES[(serial + n) % len(FILES)]}?r={serial}-{n}"
                for n in range(1, 4)
            )
            out.write(f'{serial},Product-{serial},"{urls}"\n')
    return path.stat().st_size


def bench_parse(path: Path, rows: int) -> dict[str, float]:
    result = subprocess.run(
        [sys.executable, "-c", CHILD, str(path), str(rows)],
        check=True,
        capture_output=True,
        text=True,
    )
    figures: dict[str, float] = json.loads(result.stdout)
    return figures


def bench_write(rows: int) -> tuple[float, int]:
    from imgcore._csvio import CsvHeader, OutputRow, write_output_csv

    header = CsvHeader(
        columns=("Serial Number", "Product Name", "Input Image Urls"),
        serial_index=0,
        name_index=1,
        urls_index=2,
    )
    inputs = tuple(f"{ORIGIN}/img/{name}?r=1-{n}" for n, name in enumerate(FILES[:3]))
    outputs = (
        "https://media.example.com/out/1-1.jpg",
        None,
        "https://media.example.com/out/1-3.jpg",
    )
    row = OutputRow(
        serial=1,
        name="Product-1",
        input_urls=inputs,
        output_urls=outputs,
        errors=("2: HTTP 404 Not Found",),
    )
    started = time.perf_counter()
    size = sum(len(chunk) for chunk in write_output_csv(header, (row for _ in range(rows))))
    return time.perf_counter() - started, size


def _urls(serial: int) -> str:
    return ",".join(
        f"{ORIGIN}/img/{FILES[(serial + n) % len(FILES)]}?r={serial}-{n}" for n in (1, 2)
    )


def valid_line(serial: int) -> bytes:
    return f'{serial},Product-{serial},"{_urls(serial)}"\n'.encode()


def quoted_line(serial: int) -> bytes:
    """A valid row with every cell quoted, doubled quotes in the name."""
    return f'"{serial}","Product ""{serial}""","{_urls(serial)}"\n'.encode()


def sample(line: Callable[[int], bytes], megabytes: float) -> bytes:
    """A CSV of about ``megabytes`` MB: the header, then ``line(1)``, ``line(2)``…"""
    parts = [b"Serial Number,Product Name,Input Image Urls\n"]
    size, serial = len(parts[0]), 0
    while size < megabytes * 1e6:
        serial += 1
        parts.append(line(serial))
        size += len(parts[-1])
    return b"".join(parts)


def cpu_per_mb(data: bytes) -> tuple[float, int, str]:
    """CPU seconds per MB the parser read, the bytes it read, and its verdict."""
    from imgcore._csvio import CsvLimits, CsvParser, CsvValidationError

    parser = CsvParser(CsvLimits(max_file_bytes=10**10))
    verdict = "accepted"
    started = time.process_time()
    try:
        for start in range(0, len(data), 256 * 1024):
            parser.feed(data[start : start + 256 * 1024])
        parser.finish()
    except CsvValidationError as exc:
        verdict = f"refused: {exc.issues[-1].reason}"
    seconds = time.process_time() - started
    return seconds / (parser.bytes_read / 1e6), parser.bytes_read, verdict


def bench_cpu(megabytes: float) -> None:
    kinds: dict[str, Callable[[int], bytes]] = {
        "valid rows": valid_line,
        "quoted rows": quoted_line,
        "blank rows (,,)": lambda _: b",,\n",
    }
    for kind, line in kinds.items():
        per_mb, read, verdict = cpu_per_mb(sample(line, megabytes))
        print(
            f"  {kind:16} {per_mb:.3f} s CPU/MB over {read / 1e6:.1f} MB read,"
            f" {per_mb * read / 1e6:.2f} s in all ({verdict})"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--sample-mb", type=float, default=20, help="size of each CPU/MB file")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="bench_csv_") as tmp:
        path = Path(tmp) / "products.csv"
        started = time.perf_counter()
        size = write_csv(path, args.rows)
        elapsed = time.perf_counter() - started
        print(f"generated {args.rows:,} rows, {size / 1e6:.1f} MB in {elapsed:.1f} s")
        figures = bench_parse(path, args.rows)

    if figures["rows"] != args.rows:
        sys.exit(f"parsed {figures['rows']} rows, expected {args.rows}")
    seconds = figures["seconds"]
    peak_mb = figures["peak_kb"] / 1024
    print(f"parse: {figures['rows']:,} rows, {figures['urls']:,} URLs in {seconds:.2f} s")
    print(f"  {figures['rows'] / seconds:,.0f} rows/s, {size / 1e6 / seconds:.1f} MB/s")
    print(
        f"  peak RSS {peak_mb:.1f} MB (interpreter + imports alone: "
        f"{figures['base_kb'] / 1024:.1f} MB); target < {RSS_TARGET_MB} MB: "
        f"{'OK' if peak_mb < RSS_TARGET_MB else 'OVER'}"
    )

    write_seconds, written = bench_write(args.rows)
    print(
        f"write: {args.rows:,} rows, {written / 1e6:.1f} MB in {write_seconds:.2f} s, "
        f"{args.rows / write_seconds:,.0f} rows/s"
    )

    print(f"CPU per MB of input, files of {args.sample_mb:g} MB, default limits:")
    bench_cpu(args.sample_mb)


if __name__ == "__main__":
    main()
