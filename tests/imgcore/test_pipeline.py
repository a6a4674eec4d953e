"""The compression pool the executor uses."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import anyio
import pytest
from imgcore._compress import CompressOptions, ImageError
from imgcore._compression.pool import Compressor

pytestmark = pytest.mark.anyio


@pytest.mark.parametrize("mode", ["process", "thread"])
async def test_both_pools_compress_a_photo(mode: str, corpus_dir: Path) -> None:
    photo = (corpus_dir / "img" / "s03_coffee.jpg").read_bytes()
    compressor = Compressor(CompressOptions(), workers=2, mode=mode)
    try:
        results = []
        async with anyio.create_task_group() as tg:
            for _ in range(4):
                tg.start_soon(lambda: _append(results, compressor, photo))
    finally:
        compressor.close()
    assert len(results) == 4
    assert {r.output_bytes for r in results} == {results[0].output_bytes}
    assert results[0].output_bytes < len(photo)


async def _append(results: list[object], compressor: Compressor, data: bytes) -> None:
    results.append(await compressor(data))


async def test_a_dead_worker_fails_only_its_image_and_the_pool_recovers(
    corpus_dir: Path,
) -> None:
    big = (corpus_dir / "img" / "s2_00.jpg").read_bytes()
    compressor = Compressor(CompressOptions(), workers=1, mode="process")
    try:
        await compressor(big)  # the pool is up
        pool = compressor._pool
        assert pool is not None
        pids = list(pool._processes)  # the worker to kill

        async def kill_soon() -> None:
            await anyio.sleep(0.01)
            for pid in pids:
                os.kill(pid, signal.SIGKILL)

        errors: list[ImageError] = []

        async def compress_until_it_fails() -> None:
            for _ in range(50):
                try:
                    await compressor(big)
                except ImageError as exc:
                    errors.append(exc)
                    return

        async with anyio.create_task_group() as tg:
            tg.start_soon(kill_soon)
            tg.start_soon(compress_until_it_fails)
        assert [e.reason for e in errors] == ["worker_crashed"]
        result = await compressor(big)
        assert result.output_bytes > 0
    finally:
        compressor.close()


def test_an_unknown_mode_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown compress mode"):
        Compressor(CompressOptions(), workers=1, mode="gpu")


async def test_compression_workers_run_at_a_lower_priority(corpus_dir: Path) -> None:
    import psutil
    from imgcore._compression.tuning import WORKER_NICENESS

    compressor = Compressor(CompressOptions(), workers=1, mode="process")
    try:
        await compressor((corpus_dir / "img" / "s03_coffee.jpg").read_bytes())
        assert compressor._pool is not None
        (pid,) = list(compressor._pool._processes)
        own = psutil.Process().nice()
        assert psutil.Process(pid).nice() == min(own + WORKER_NICENESS, 19)
    finally:
        compressor.close()
