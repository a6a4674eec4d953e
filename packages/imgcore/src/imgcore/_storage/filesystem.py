"""The built-in storage backend: files under a root directory."""

from __future__ import annotations

import os
import uuid
from pathlib import Path, PurePosixPath
from urllib.parse import quote, unquote, urlsplit

import anyio

from imgcore.contracts import check_key, safe_key
from imgcore.errors import StorageError

__all__ = ["FileStorage"]


def _write_atomically(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` so readers see the old file or the whole new one.

    On Linux the data goes to an unnamed file (O_TMPFILE) that vanishes if the process dies
    mid-write; it gets a name only an instant before the rename. Elsewhere, a named
    temporary file that is removed on any error.
    """
    tmp = path.with_name(f".tmp-{uuid.uuid4().hex}")
    flags = getattr(os, "O_TMPFILE", 0)
    try:
        fd = os.open(path.parent, flags | os.O_WRONLY, 0o644) if flags else -1
    except OSError:
        fd = -1  # a filesystem without O_TMPFILE support
    if fd < 0:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        named = True
    else:
        named = False
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
            if not named:
                # A dir_fd makes CPython call linkat(AT_SYMLINK_FOLLOW), which links the open
                # file itself rather than the /proc symlink.
                dir_fd = os.open(path.parent, os.O_RDONLY | os.O_DIRECTORY)
                try:
                    os.link(
                        f"/proc/self/fd/{f.fileno()}",
                        tmp.name,
                        dst_dir_fd=dir_fd,
                        follow_symlinks=True,
                    )
                finally:
                    os.close(dir_fd)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


class FileStorage:
    """Objects as files under ``root``; URLs are ``base_url/key``.

    Writes go to a temporary file in the target directory and are renamed into place, so a
    crash never leaves a half-written image under a real key.
    """

    def __init__(self, root: str | os.PathLike[str], base_url: str) -> None:
        self.root = Path(root).resolve()
        self.base_url = base_url.rstrip("/")
        # Directories already checked for writes: resolving a path costs a system call per
        # part, and every image of a request is written to the same directory.
        self._checked_dirs: dict[PurePosixPath, Path] = {}

    @classmethod
    def from_url(cls, url: str, base_url: str) -> FileStorage:
        """``file:media`` (relative to the working directory) or ``file:///var/media``."""
        parts = urlsplit(url)
        if parts.scheme != "file":
            raise StorageError(f"not a file: URL: {url!r}", transient=False)
        path = unquote(parts.path) or "."
        return cls(path, base_url)

    def path_for(self, key: str) -> Path:
        """The file that holds ``key`` (inside the root, always)."""
        path = (self.root / safe_key(key)).resolve()
        if not path.is_relative_to(self.root):
            raise StorageError(f"storage key escapes the root: {key!r}", transient=False)
        return path

    async def put(self, key: str, data: bytes, *, content_type: str) -> None:
        """Write atomically: temporary file, fsync, rename."""
        await anyio.to_thread.run_sync(self._write, self._path_to_write(key), data)

    def _path_to_write(self, key: str) -> Path:
        # As path_for, with the directory's check remembered. The file name itself needs none:
        # the rename replaces whatever is there, a symbolic link included, and never follows it.
        relative = safe_key(key)
        directory = self._checked_dirs.get(relative.parent)
        if directory is None:
            directory = self.path_for(str(relative.parent)) if relative.parent.parts else self.root
            if len(self._checked_dirs) >= 4096:
                self._checked_dirs.clear()
            self._checked_dirs[relative.parent] = directory
        return directory / relative.name

    @staticmethod
    def _write(path: Path, data: bytes) -> None:
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            _write_atomically(path, data)
        except OSError as exc:
            raise StorageError(f"cannot write {path.name}: {exc.strerror or exc}") from exc

    async def get(self, key: str) -> bytes:
        """The file's bytes; ``KeyError`` when it does not exist."""
        path = self.path_for(key)
        try:
            return await anyio.Path(path).read_bytes()
        except FileNotFoundError:
            raise KeyError(key) from None
        except OSError as exc:
            raise StorageError(f"cannot read {path.name}: {exc.strerror or exc}") from exc

    async def delete(self, key: str) -> None:
        """Remove the file if it exists."""
        await anyio.to_thread.run_sync(self._delete, self.path_for(key))

    @staticmethod
    def _delete(path: Path) -> None:
        # Every failure as a StorageError, which callers expect: a bare OSError (the root
        # gone or not a directory) made the pipeline's clean-up of a failing image raise,
        # so the image was never ended while the storage stayed broken.
        try:
            path.unlink(missing_ok=True)
        except OSError as exc:
            raise StorageError(f"cannot delete {path.name}: {exc.strerror or exc}") from exc

    def url_for(self, key: str) -> str:
        """``base_url/key`` with each part percent-encoded."""
        check_key(key)
        return f"{self.base_url}/{quote(key)}"

    async def aclose(self) -> None:
        """Nothing to release."""
