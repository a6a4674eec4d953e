"""The built-in filesystem storage backend."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from imgcore._storage.filesystem import FileStorage
from imgcore.contracts import check_key
from imgcore.errors import StorageError
from support.stored import stored_keys

pytestmark = pytest.mark.anyio


@pytest.fixture
def storage(tmp_path: Path) -> FileStorage:
    return FileStorage(tmp_path / "media", "http://127.0.0.1:8000/media/")


async def test_put_then_get_returns_the_bytes(storage: FileStorage) -> None:
    await storage.put("requests/r1/1.jpg", b"\xff\xd8data", content_type="image/jpeg")
    assert await storage.get("requests/r1/1.jpg") == b"\xff\xd8data"


async def test_put_replaces_an_existing_key(storage: FileStorage) -> None:
    await storage.put("a/b.jpg", b"one", content_type="image/jpeg")
    await storage.put("a/b.jpg", b"two", content_type="image/jpeg")
    assert await storage.get("a/b.jpg") == b"two"
    assert stored_keys(storage) == ["a/b.jpg"]


async def test_put_leaves_no_temporary_file(storage: FileStorage) -> None:
    await storage.put("a/b.jpg", b"x" * 10_000, content_type="image/jpeg")
    assert [p.name for p in (storage.root / "a").iterdir()] == ["b.jpg"]


async def test_get_of_a_missing_key_raises_key_error(storage: FileStorage) -> None:
    with pytest.raises(KeyError):
        await storage.get("nothing/here.jpg")


async def test_delete_removes_and_tolerates_missing(storage: FileStorage) -> None:
    await storage.put("a/b.jpg", b"x", content_type="image/jpeg")
    await storage.delete("a/b.jpg")
    await storage.delete("a/b.jpg")
    assert stored_keys(storage) == []


@pytest.mark.parametrize(
    "key",
    [
        "../escape.jpg",
        "a/../../escape.jpg",
        "/etc/passwd",
        "a//b.jpg",
        "a/./b.jpg",
        "a\\..\\b.jpg",
        "",
        ".hidden",
        "a/.tmp-x",
        "a\x00b",
    ],
)
async def test_keys_that_could_escape_the_root_are_refused(storage: FileStorage, key: str) -> None:
    with pytest.raises(StorageError):
        await storage.put(key, b"x", content_type="image/jpeg")
    with pytest.raises(StorageError):
        storage.url_for(key)


async def test_a_symlink_out_of_the_root_is_refused(storage: FileStorage, tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    storage.root.mkdir(parents=True)
    (storage.root / "link").symlink_to(outside)
    with pytest.raises(StorageError):
        await storage.put("link/x.jpg", b"x", content_type="image/jpeg")
    assert list(outside.iterdir()) == []


async def test_a_symlink_at_the_key_is_replaced_not_followed(
    storage: FileStorage, tmp_path: Path
) -> None:
    outside = tmp_path / "outside.jpg"
    outside.write_bytes(b"old")
    (storage.root / "r").mkdir(parents=True)
    (storage.root / "r" / "x.jpg").symlink_to(outside)
    await storage.put("r/y.jpg", b"first", content_type="image/jpeg")  # the directory is known
    await storage.put("r/x.jpg", b"new", content_type="image/jpeg")
    assert outside.read_bytes() == b"old"
    assert not (storage.root / "r" / "x.jpg").is_symlink()
    assert await storage.get("r/x.jpg") == b"new"


def test_url_for_joins_the_base_url_and_encodes(storage: FileStorage) -> None:
    assert (
        storage.url_for("requests/r 1/1.jpg") == "http://127.0.0.1:8000/media/requests/r%201/1.jpg"
    )


def test_from_url_accepts_relative_and_absolute_paths(tmp_path: Path) -> None:
    assert FileStorage.from_url(f"file://{tmp_path}/m", "http://x").root == tmp_path / "m"
    assert FileStorage.from_url("file:media", "http://x").root == Path("media").resolve()


def test_from_url_rejects_other_schemes() -> None:
    with pytest.raises(StorageError):
        FileStorage.from_url("s3://bucket", "http://x")


async def test_written_files_are_readable_by_a_web_server(storage: FileStorage) -> None:
    await storage.put("a/b.jpg", b"x", content_type="image/jpeg")
    assert storage.path_for("a/b.jpg").stat().st_mode & 0o777 == 0o644


def test_a_process_killed_mid_write_leaves_no_file(tmp_path: Path) -> None:
    import signal
    import subprocess
    import sys
    import time

    root = tmp_path / "media"
    script = (
        "import anyio, sys\n"
        "from imgcore._storage.filesystem import FileStorage\n"
        "s = FileStorage(sys.argv[1], 'http://x')\n"
        "print('go', flush=True)\n"
        "anyio.run(lambda: s.put('big/file.bin', b'x' * 1_000_000_000, content_type='x'))\n"
    )
    proc = subprocess.Popen([sys.executable, "-c", script, str(root)], stdout=subprocess.PIPE)
    assert proc.stdout is not None
    assert proc.stdout.readline() == b"go\n"
    deadline = time.monotonic() + 30
    while not (root / "big").exists() and time.monotonic() < deadline:
        time.sleep(0.01)
    time.sleep(0.3)  # well inside writing a gigabyte
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert (root / "big").is_dir()
    assert list((root / "big").iterdir()) == []


@given(st.text(alphabet="ab./\\\x00", max_size=12))
def test_check_key_is_the_part_by_part_rule(key: str) -> None:
    parts = key.split("/")
    valid = (
        bool(key)
        and "\\" not in key
        and "\x00" not in key
        and not any(part in ("", ".", "..") or part.startswith(".") for part in parts)
    )
    try:
        check_key(key)
    except StorageError:
        assert not valid
    else:
        assert valid
