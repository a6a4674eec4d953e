"""Developer sessions: tests, lint, typecheck, docs, bench.

Every session runs inside the one uv workspace environment (``uv run --frozen``), so the
versions are those of the committed ``uv.lock``.
"""

from __future__ import annotations

import glob

import nox

nox.options.default_venv_backend = "none"
nox.options.sessions = ["lint", "typecheck", "tests", "docs"]


def uv_run(session: nox.Session, *args: str) -> None:
    session.run("uv", "run", "--frozen", *args, external=True)


@nox.session
def tests(session: nox.Session) -> None:
    """The whole test suite (services it needs are started by .ci/run or skipped visibly)."""
    uv_run(session, "pytest", *session.posargs)


@nox.session
def lint(session: nox.Session) -> None:
    """ruff check, ruff format --check, and the import contracts (lint-imports)."""
    uv_run(session, "ruff", "check", ".")
    uv_run(session, "ruff", "format", "--check", ".")
    uv_run(session, "lint-imports")


@nox.session
def typecheck(session: nox.Session) -> None:
    """mypy --strict on every package."""
    uv_run(session, "mypy")


@nox.session
def docs(session: nox.Session) -> None:
    """Build the documentation site strictly: a broken link or reference fails."""
    session.env["NO_MKDOCS_2_WARNING"] = "1"
    uv_run(session, "mkdocs", "build", "--strict", *session.posargs)


@nox.session
def bench(session: nox.Session) -> None:
    """Every benchmark in benchmarks/, printing figures (not a test: nothing asserts on time)."""
    scripts = session.posargs or sorted(glob.glob("benchmarks/bench_*.py"))
    for script in scripts:
        session.log(f"== {script}")
        uv_run(session, "python", script)


@nox.session
def soak(session: nox.Session) -> None:
    """The real server under steady load for minutes, watching its memory (not by default).

    ``uv run nox -s soak -- --seconds 60``: arguments go to benchmarks/soak.py.
    """
    uv_run(session, "python", "benchmarks/soak.py", *session.posargs)
