"""What loading the installed plugins costs a process that does not use them."""

from __future__ import annotations

import subprocess
import sys

PROBE = """
import sys
from imgcore.plugin import create_plugin_manager

pm = create_plugin_manager(environ={})
assert {"s3", "saq", "vips"} <= {pm.get_name(p) for p in pm.get_plugins()}
print(" ".join(sorted(m for m in ("obstore", "saq", "redis", "pyvips") if m in sys.modules)))
"""


def test_loading_the_plugins_loads_none_of_their_libraries_until_used() -> None:
    # Every imgcore process (the API, each worker) loads every plugin to ask its hooks.
    found = subprocess.run(
        [sys.executable, "-c", PROBE], capture_output=True, text=True, check=True
    ).stdout.split()
    assert found == []
