"""compress() speed per size class next to a bare Pillow loop, and what optimize/progressive cost.

Single thread, bytes in memory, over every file of a class in ../shared/bench/corpus/img (or
$IMGCORE_BENCH_DIR/corpus/img). Times are this process's CPU seconds (the work is
single-threaded, and CPU time is far steadier than wall time on a shared machine); the
variants being compared run in turn inside each repetition and the best repetition counts.

    uv run python benchmarks/bench_compress.py
"""

from __future__ import annotations

import io
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path

from _bench import bench_dir
from imgcore._compress import CompressOptions, OutputFormat, compress, make_thumbnail
from PIL import Image

CLASSES = {"s03": 15, "s2": 8, "s8": 3, "s12": 3}  # size class → repetitions
DEFAULT = CompressOptions(keep_original=False)
OPTIMIZE = CompressOptions(optimize=True, keep_original=False)
PROGRESSIVE = CompressOptions(optimize=True, progressive=True, keep_original=False)
FORMATS: tuple[OutputFormat, ...] = ("JPEG", "WEBP", "AVIF")


def best_seconds(runs: dict[str, Callable[[], object]], reps: int) -> dict[str, float]:
    """The lowest CPU time of each run over ``reps`` rounds (after one warm-up round)."""
    best = dict.fromkeys(runs, float("inf"))
    for round_ in range(reps + 1):
        for name, run in runs.items():
            started = time.process_time()
            run()
            if round_:
                best[name] = min(best[name], time.process_time() - started)
    return best


def bare_pillow(files: list[bytes]) -> None:
    for data in files:
        Image.open(io.BytesIO(data)).save(io.BytesIO(), "JPEG", quality=50)


def bare_pillow_loaded(files: list[bytes]) -> None:
    # save() of a file not yet loaded copies the whole image first (Pillow 13); load() avoids it.
    for data in files:
        im = Image.open(io.BytesIO(data))
        im.load()
        im.save(io.BytesIO(), "JPEG", quality=50)


def ours(files: list[bytes], options: CompressOptions) -> int:
    return sum(compress(data, options).output_bytes for data in files)


def encode_only(images: list[Image.Image], **params: object) -> int:
    total = 0
    for im in images:
        out = io.BytesIO()
        im.save(out, "JPEG", quality=50, **params)
        total += out.tell()
    return total


def load_corpus() -> dict[str, list[bytes]]:
    corpus = bench_dir() / "corpus" / "img"
    if not corpus.is_dir():
        raise SystemExit(f"bench corpus not found at {corpus}: set IMGCORE_BENCH_DIR")
    sources = {}
    for size_class in CLASSES:
        paths = sorted(corpus.glob(f"{size_class}_*.jpg"))
        if not paths:
            raise SystemExit(f"no {size_class}_*.jpg files in {corpus}")
        sources[size_class] = [Path(p).read_bytes() for p in paths]
    return sources


def decoded(files: list[bytes]) -> list[Image.Image]:
    images: list[Image.Image] = [Image.open(io.BytesIO(data)) for data in files]
    for im in images:
        im.load()
    return images


def overhead(sources: dict[str, list[bytes]]) -> None:
    print("compress() vs bare Pillow, JPEG q50, one thread: images per CPU second")
    print("  pillow: Image.open(b).save(out, 'JPEG', quality=50); +load: load() before save")
    print("  ratio: our time / Pillow's time")
    print(
        f"{'class':6} {'files':>5} {'MP':>5} {'compress':>9} {'pillow':>9} {'ratio':>7}"
        f" {'+load':>9} {'ratio':>7}"
    )
    for size_class, reps in CLASSES.items():
        files = sources[size_class]
        first = Image.open(io.BytesIO(files[0]))
        megapixels = first.width * first.height / 1e6
        best = best_seconds(
            {
                "ours": partial(ours, files, DEFAULT),
                "bare": partial(bare_pillow, files),
                "loaded": partial(bare_pillow_loaded, files),
            },
            reps,
        )
        n = len(files)
        print(
            f"{size_class:6} {n:5} {megapixels:5.1f} {n / best['ours']:9.1f}"
            f" {n / best['bare']:9.1f} {best['ours'] / best['bare']:6.2f}x"
            f" {n / best['loaded']:9.1f} {best['ours'] / best['loaded']:6.2f}x"
        )


def optimize_cost(sources: dict[str, list[bytes]]) -> None:
    print("optimize / optimize+progressive vs default (JPEG q50)")
    print(
        f"{'class':6} {'opt saved':>10} {'opt enc':>8} {'opt+prog saved':>15} {'opt+prog enc':>13}"
        f" {'compress() opt':>15} {'opt+prog':>9}"
    )
    for size_class, reps in CLASSES.items():
        files, images = sources[size_class], decoded(sources[size_class])
        base_bytes = encode_only(images)
        opt_bytes = encode_only(images, optimize=True)
        prog_bytes = encode_only(images, optimize=True, progressive=True)
        enc = best_seconds(
            {
                "base": partial(encode_only, images),
                "opt": partial(encode_only, images, optimize=True),
                "prog": partial(encode_only, images, optimize=True, progressive=True),
            },
            reps,
        )
        full = best_seconds(
            {
                "base": partial(ours, files, DEFAULT),
                "opt": partial(ours, files, OPTIMIZE),
                "prog": partial(ours, files, PROGRESSIVE),
            },
            max(2, reps // 2),
        )
        print(
            f"{size_class:6} {100 * (1 - opt_bytes / base_bytes):9.1f}%"
            f" {enc['opt'] / enc['base']:7.2f}x"
            f" {100 * (1 - prog_bytes / base_bytes):14.1f}% {enc['prog'] / enc['base']:12.2f}x"
            f" {full['opt'] / full['base']:14.2f}x {full['prog'] / full['base']:8.2f}x"
        )
    print("  saved: bytes vs default; enc: encode-only time; compress(): time of the whole call")


def formats(files: list[bytes]) -> None:
    print("output formats on s03 (640x480, q50), one thread")
    options = {fmt: CompressOptions(format=fmt, keep_original=False) for fmt in FORMATS}
    best = best_seconds(
        {fmt: partial(ours, files, o) for fmt, o in options.items()},
        3,
    )
    for fmt, o in options.items():
        kib = ours(files, o) / len(files) / 1024
        print(f"  {fmt:5} {len(files) / best[fmt]:7.1f} images/s  {kib:6.1f} KiB per image")


def thumbnails(sources: dict[str, list[bytes]]) -> None:
    print("make_thumbnail(256 px, q70): images per CPU second (JPEG draft decoding)")
    for size_class, reps in CLASSES.items():
        files = sources[size_class]
        best = best_seconds({"thumb": partial(_thumbnails, files)}, max(2, reps // 2))
        print(f"  {size_class:4} {len(files) / best['thumb']:7.1f}")


def _thumbnails(files: list[bytes]) -> None:
    for data in files:
        make_thumbnail(data)


def main() -> None:
    started = time.perf_counter()
    sources = load_corpus()
    overhead(sources)
    print()
    optimize_cost(sources)
    print()
    formats(sources["s03"])
    print()
    thumbnails(sources)
    print(f"\ntotal {time.perf_counter() - started:.1f} s wall")


if __name__ == "__main__":
    main()
