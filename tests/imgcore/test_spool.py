"""The spool that hands bodies to compression processes through shared memory."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from imgcore._compress import CompressOptions, sniff_format
from imgcore._compression.pool import Compressor
from imgcore._compression.spool import KEEP_BYTES, Spool, run_spooled

pytestmark = pytest.mark.anyio


def test_a_body_is_read_back_whole_and_its_slot_is_used_again(tmp_path: Path) -> None:
    spool = Spool.open(tmp_path)
    assert spool is not None
    try:
        first = spool.write(b"a" * 1000)
        assert run_spooled(len, first, 1000) == 1000
        spool.release(first)
        second = spool.write(b"short")
        assert second == first  # the slot, not a new file
        assert run_spooled(bytes, second, 5) == b"short"  # what was left after it is ignored
        assert oct(second.stat().st_mode & 0o777) == "0o600"
        assert oct(spool.directory.stat().st_mode & 0o777) == "0o700"
    finally:
        spool.close()
    assert not spool.directory.exists()


def test_a_slot_that_held_a_large_body_is_emptied_when_given_back(tmp_path: Path) -> None:
    spool = Spool.open(tmp_path)
    assert spool is not None
    try:
        slot = spool.write(b"x" * (KEEP_BYTES + 1))
        spool.release(slot)
        assert slot.stat().st_size == 0
    finally:
        spool.close()


def test_a_body_cut_short_is_an_error_not_a_smaller_image(tmp_path: Path) -> None:
    spool = Spool.open(tmp_path)
    assert spool is not None
    try:
        slot = spool.write(b"12345")
        with pytest.raises(OSError, match="shorter"):
            run_spooled(bytes, slot, 10)
    finally:
        spool.close()


def test_no_spool_where_the_directory_is_missing(tmp_path: Path) -> None:
    assert Spool.open(tmp_path / "missing") is None


def test_spools_of_dead_processes_are_swept_and_live_ones_kept(tmp_path: Path) -> None:
    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        text=True,
        capture_output=True,
        check=True,
    )
    dead_pid = int(dead.stdout)
    stale = tmp_path / f"imgcore-spool-{dead_pid}-abc"
    stale.mkdir()
    (stale / "0.body").write_bytes(b"left behind")
    live = tmp_path / f"imgcore-spool-{os.getpid()}-def"
    live.mkdir()
    spool = Spool.open(tmp_path)
    assert spool is not None
    spool.close()
    assert not stale.exists()
    assert live.exists()


async def test_the_process_pool_compresses_through_the_spool_and_leaves_nothing(
    corpus_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("imgcore._compression.spool.SHARED_MEMORY", tmp_path)
    photo = (corpus_dir / "img" / "s03_coffee.jpg").read_bytes()
    compressor = Compressor(CompressOptions(), workers=1, mode="process")
    try:
        image = await compressor(photo)
        assert compressor._spool is not None
        assert compressor._spool.directory.parent == tmp_path
    finally:
        compressor.close()
    assert sniff_format(image.data) == "JPEG"
    assert list(tmp_path.iterdir()) == []
