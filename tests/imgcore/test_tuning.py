"""Process-wide tuning applied by the programs that own a process."""

from __future__ import annotations

import subprocess
import sys


def test_malloc_arenas_can_be_capped_on_glibc() -> None:
    # In a child: the cap is process-wide and must not leak into the test run.
    code = "from imgcore.tuning import limit_malloc_arenas; print(limit_malloc_arenas())"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    expected = "True" if sys.platform.startswith("linux") else "False"
    assert result.stdout.strip() == expected
