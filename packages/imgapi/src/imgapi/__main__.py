"""``python -m imgapi`` runs the command line."""

from __future__ import annotations

import sys

from imgapi.cli import main

sys.exit(main())
