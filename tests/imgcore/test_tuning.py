"""Process-wide tuning applied by the programs that own a process."""

from __future__ import annotations

import os
import subprocess
import sys

from imgcore._compression.tuning import IMAGE_MEMORY_CACHE


def test_malloc_arenas_and_the_mmap_threshold_can_be_set_on_glibc() -> None:
    # In a child: the cap is process-wide and must not leak into the test run.
    code = (
        "from imgcore._compression.tuning import limit_malloc_arenas; print(limit_malloc_arenas())"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    expected = "True" if sys.platform.startswith("linux") else "False"
    assert result.stdout.strip() == expected


def _blocks_in_a_fresh_process(env: dict[str, str]) -> tuple[int, int]:
    code = (
        "from PIL import Image; from imgcore._compression.tuning import cache_image_memory; "
        "before = Image.core.get_blocks_max(); print(before, cache_image_memory())"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env
    ).stdout.split()
    return int(out[0]), int(out[1])


def test_pillow_keeps_freed_image_memory_in_compression_processes() -> None:
    env = {k: v for k, v in os.environ.items() if k != "PILLOW_BLOCKS_MAX"}
    before, after = _blocks_in_a_fresh_process(env)
    assert before == 0  # Pillow's default: nothing kept
    assert after == IMAGE_MEMORY_CACHE // (16 * 1024 * 1024)


def test_pillow_blocks_max_in_the_environment_wins() -> None:
    assert _blocks_in_a_fresh_process({**os.environ, "PILLOW_BLOCKS_MAX": "3"}) == (3, 3)
