"""Every Python example in the docs and the README runs, so the docs cannot drift from the code.

Each fenced ``python`` block runs in a fresh interpreter, in a directory holding the files the
examples name (``products.csv`` pointing at a local origin, ``photo.jpg``: see conftest.py),
with the embedded defaults pointed at that directory and downloads allowed to reach loopback.
The shell examples run in test_console.py.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

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
def test_example_runs(
    where: str, code: str, example_dir: Path, example_env: dict[str, str]
) -> None:
    result = subprocess.run(
        [sys.executable, "-c", code],
        cwd=example_dir,
        env=example_env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, f"{where} failed:\n{result.stderr[-3000:]}"
