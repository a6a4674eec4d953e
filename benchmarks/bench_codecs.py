"""Every installed codec on the bench mix at quality 50: images per CPU-second, output bytes.

The mix is the bench's default (``s03:4,s2:3,s8:2,s12:1``: 40/30/20/10 % of 0.3/2/8/12 MP
photographs from ../shared/bench/corpus/img, or $IMGCORE_BENCH_DIR/corpus/img). Each codec is
built by its spec's factory and called in this process, as a compression worker calls it;
times are this process's CPU seconds (every thread, so a codec's own threads count), the best
of ``--reps`` rounds after a warm-up. Bytes are the mix's total output over Pillow's at the
same settings. Two settings: the source's size, and a downscale to at most 1024 px (where
shrink-on-load matters). Prints; asserts nothing.

    uv run python benchmarks/bench_codecs.py [--reps 3]
"""

from __future__ import annotations

import argparse
import json
import time

from _bench import bench_dir
from imgcore._codecs import installed_codecs
from imgcore._plugins import create_plugin_manager
from imgcore.contracts import Codec, CompressOptions

MIX = {"s03": 4, "s2": 3, "s8": 2, "s12": 1}
SETTINGS = {
    "q50": CompressOptions(quality=50, keep_original=False),
    "q50 max 1024": CompressOptions(
        quality=50, max_width=1024, max_height=1024, keep_original=False
    ),
}


def mix_files() -> list[bytes]:
    """The mix's ten images: MIX[class] files of each class, cycling through the class."""
    corpus = bench_dir() / "corpus"
    classes = json.loads((corpus / "manifest.json").read_text())["classes"]
    return [
        (corpus / classes[name][i % len(classes[name])]).read_bytes()
        for name, count in MIX.items()
        for i in range(count)
    ]


def measure(
    codec: Codec, files: list[bytes], options: CompressOptions, reps: int
) -> tuple[float, int]:
    """(best CPU seconds for the whole mix, output bytes)."""
    best, size = float("inf"), 0
    for round_ in range(reps + 1):
        started = time.process_time()
        size = sum(codec.compress(data, options).output_bytes for data in files)
        if round_:
            best = min(best, time.process_time() - started)
    return best, size


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=3)
    args = parser.parse_args()
    files = mix_files()
    codecs = [c.spec for c in installed_codecs(create_plugin_manager())]
    input_bytes = sum(map(len, files))
    print(f"mix: {len(files)} images, {input_bytes / 1e6:.1f} MB; best of {args.reps} rounds")
    for label, options in SETTINGS.items():
        results = {spec.name: measure(spec.factory(), files, options, args.reps) for spec in codecs}
        pillow_bytes = results["pillow"][1]
        print(f"\n{label}")
        print(
            f"{'codec':<8} {'img/CPU-s':>10} {'vs pillow':>10} {'out MB':>8} {'bytes/pillow':>13}"
        )
        for name, (seconds, size) in results.items():
            rate = len(files) / seconds
            speed = results["pillow"][0] / seconds
            print(
                f"{name:<8} {rate:>10.2f} {speed:>9.2f}x {size / 1e6:>8.2f} "
                f"{size / pillow_bytes:>12.3f}x"
            )


if __name__ == "__main__":
    main()
