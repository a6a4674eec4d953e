"""Every Python example in the docs and the README runs, so the docs cannot drift from the code.

Each fenced ``python`` block runs in a fresh interpreter, in a directory holding the files the
examples name (``products.csv`` pointing at a local origin, ``photo.jpg``), with the embedded
defaults pointed at that directory and downloads allowed to reach loopback.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from support.origin import OriginServer

ROOT = Path(__file__).resolve().parents[2]
PAGES = sorted([ROOT / "README.md", *(ROOT / "docs").glob("*.md")])
FENCE = re.compile(r"^```python\n(.*?)^```", re.M | re.S)


def examples() -> list[tuple[str, str]]:
    found = []
    for page in PAGES:
        for number, match in enumerate(FENCE.finditer(page.read_text()), start=1):
            found.append((f"{page.relative_to(ROOT)}#{number}", match.group(1)))
    return found


def test_the_docs_have_python_examples() -> None:
    assert len(examples()) >= 3


@pytest.mark.parametrize(("where", "code"), examples(), ids=[w for w, _ in examples()])
def test_example_runs(where: str, code: str, tmp_path: Path, origin: OriginServer) -> None:
    photos = ["s03_astronaut.jpg", "s03_chelsea.jpg", "s03_coffee.jpg"]
    (tmp_path / "products.csv").write_text(
        "S. No.,Product Name,Input Image Urls\n"
        f'1,SKU1,"{origin.url("/corpus/img/" + photos[0])},{origin.url("/corpus/img/" + photos[1])}"\n'
        f'2,SKU2,"{origin.url("/corpus/img/" + photos[2])}"\n'
    )
    shutil.copy(ROOT / "tests/data/corpus/img/s03_coffee.jpg", tmp_path / "photo.jpg")
    env = {
        **os.environ,
        "IMGCORE_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path}/imgcore.sqlite3",
        "IMGCORE_STORAGE_URL": f"file://{tmp_path}/media",
        "IMGCORE_FETCH_ALLOW": "127.0.0.1/32",
        "IMGCORE_POLL_INTERVAL": "0.05",
    }
    result = subprocess.run(
        [sys.executable, "-c", code],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, f"{where} failed:\n{result.stderr[-3000:]}"
