"""What the documentation's examples find around them: files, and the same environment."""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

import pytest
from support.origin import OriginServer

ROOT = Path(__file__).resolve().parents[2]
PHOTOS = sorted(p.name for p in (ROOT / "tests/data/corpus/img").glob("s03_*.jpg"))


def write_example_files(directory: Path, origin: OriginServer) -> None:
    """``products.csv`` (2 products, 3 images), ``examples/products.csv`` and ``photo.jpg``.

    ``examples/products.csv`` is the repository's sample with every URL swapped for one on the
    local origin: the sample points at public images, and tests reach loopback only.
    """

    def url(n: int) -> str:
        return str(origin.url("/corpus/img/" + PHOTOS[n % len(PHOTOS)]))

    (directory / "products.csv").write_text(
        f'S. No.,Product Name,Input Image Urls\n1,SKU1,"{url(0)},{url(1)}"\n2,SKU2,"{url(2)}"\n'
    )
    sample = (ROOT / "examples/products.csv").read_text()
    external = sorted(set(re.findall(r"https?://[^,\"\s]+", sample)), key=sample.index)
    for n, address in enumerate(external):
        sample = sample.replace(address, url(n))
    (directory / "examples").mkdir(exist_ok=True)
    (directory / "examples/products.csv").write_text(sample)
    shutil.copy(ROOT / "tests/data/corpus/img/s03_coffee.jpg", directory / "photo.jpg")


@pytest.fixture
def example_dir(tmp_path: Path, origin: OriginServer) -> Path:
    """A directory holding the files the examples name (see ``write_example_files``)."""
    write_example_files(tmp_path, origin)
    return tmp_path


@pytest.fixture
def example_env(example_dir: Path) -> dict[str, str]:
    """The environment every example runs in: SQLite and file storage in ``example_dir``,
    downloads allowed to reach the local origin."""
    directory = example_dir
    return {
        **os.environ,
        "IMGCORE_DATABASE_URL": f"sqlite+aiosqlite:///{directory}/imgcore.sqlite3",
        "IMGCORE_STORAGE_URL": f"file://{directory}/media",
        "IMGCORE_FETCH_ALLOW": "127.0.0.1/32",
        "IMGCORE_POLL_INTERVAL": "0.05",
    }
