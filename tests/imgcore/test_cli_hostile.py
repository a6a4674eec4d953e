"""Hostile CSVs through the ``imgcore`` command line, run as a real subprocess: exit 2, one
readable ``row N, column 'X'`` line per problem on stderr, and nothing stored."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from imgcore.cli import main
from support.hostile import HostileCsv, endless_csv, hostile_csvs

CASES = hostile_csvs()
GIB = 1 << 30
MAX_FILE = 20_000_000


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("cli-hostile")


def env_for(root: Path) -> dict[str, str]:
    return {
        **os.environ,
        "IMGCORE_DATABASE_URL": f"sqlite+aiosqlite:///{root}/imgcore.sqlite3",
        "IMGCORE_STORAGE_URL": f"file://{root}/media",
        "IMGCORE_CSV_MAX_FILE_BYTES": str(MAX_FILE),
        "COLUMNS": "200",  # stderr is a pipe: rich would wrap at 80 columns
    }


def imgcore(*args: str, root: Path) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "imgcore.cli", *args],
        cwd=root,
        env=env_for(root),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def run(*args: str, root: Path) -> tuple[int, str, str]:
    process = imgcore(*args, root=root)
    stdout, stderr = process.communicate(timeout=120)
    return process.returncode, stdout, stderr


def stored_rows(root: Path) -> tuple[int, int, int]:
    """Rows in requests, products and images (0s when the database was never created)."""
    database = root / "imgcore.sqlite3"
    if not database.exists():
        return (0, 0, 0)
    with sqlite3.connect(database) as db:
        return tuple(  # type: ignore[return-value]
            db.execute(f"SELECT count(*) FROM {table}").fetchone()[0]
            for table in ("requests", "products", "images")
        )


def files_under(path: Path) -> list[Path]:
    return [p for p in path.rglob("*") if p.is_file()] if path.exists() else []


def assert_reported(stderr: str, case: HostileCsv) -> None:
    assert "Traceback" not in stderr, stderr
    text = " ".join(stderr.split())  # rich wraps lines at the console width
    where = f"row {case.row}" if case.row is not None else "file"
    column = f", column {case.column!r}" if case.column is not None else ""
    assert f"{where}{column}: " in text, stderr
    assert f"({case.reason})" in text, stderr


@pytest.fixture
def cli_env(workdir: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The CLI's settings for in-process runs of ``imgcore.cli.main``."""
    for name, value in env_for(workdir).items():
        if name.startswith("IMGCORE_"):
            monkeypatch.setenv(name, value)
    return workdir


# The corpus runs through imgcore.cli.main in this process (a subprocess per case costs
# seconds of imports); the subprocess tests below check the real command's exit and output.


@pytest.mark.parametrize("case", CASES, ids=[case.id for case in CASES])
def test_submit_refuses_a_hostile_csv_with_row_and_column_and_stores_nothing(
    cli_env: Path, case: HostileCsv, capsys: pytest.CaptureFixture[str]
) -> None:
    source = cli_env / f"{case.id}.csv"
    source.write_bytes(case.body)
    try:
        code = main(["submit", str(source)])
    finally:
        source.unlink()
    out, err = capsys.readouterr()
    assert code == 2, err
    assert out == ""  # no request id
    assert_reported(err, case)
    assert stored_rows(cli_env) == (0, 0, 0)
    assert files_under(cli_env / "media") == []


@pytest.mark.parametrize("case", CASES, ids=[case.id for case in CASES])
def test_process_refuses_a_hostile_csv_before_writing_anything(
    cli_env: Path, case: HostileCsv, capsys: pytest.CaptureFixture[str]
) -> None:
    source = cli_env / f"{case.id}.csv"
    source.write_bytes(case.body)
    out_dir = cli_env / f"out-{case.id}"
    try:
        code = main(["process", str(source), "--out-dir", str(out_dir)])
    finally:
        source.unlink()
    _, err = capsys.readouterr()
    assert code == 2, err
    assert_reported(err, case)
    assert not out_dir.exists()


@pytest.mark.parametrize("command", ["submit", "process"])
def test_the_real_command_exits_2_with_the_report_on_stderr(tmp_path: Path, command: str) -> None:
    [case] = [c for c in CASES if c.id == "markup-in-cell"]
    source = tmp_path / "in.csv"
    source.write_bytes(case.body)
    args = ["--out-dir", "out"] if command == "process" else []
    code, stdout, stderr = run(command, str(source), *args, root=tmp_path)
    assert code == 2, stderr
    assert stdout == ""
    assert_reported(stderr, case)
    assert "'[/red]' is not an absolute http(s) URL" in stderr
    assert stored_rows(tmp_path) == (0, 0, 0)
    assert not (tmp_path / "out").exists()


def _feed(fifo: Path, chunks: Iterator[bytes], written: list[int]) -> None:
    # The reader exits after the limit: the pipe breaks and the rest is never made.
    try:
        with fifo.open("wb") as pipe:
            for chunk in chunks:
                pipe.write(chunk)
                written[0] += len(chunk)
    except BrokenPipeError:
        pass


@pytest.mark.parametrize("command", ["submit", "process"])
def test_a_1_gb_csv_is_refused_at_the_file_limit_while_it_streams(
    tmp_path: Path, command: str
) -> None:
    # A named pipe: the gigabyte is made as the CLI reads it, never held in memory or on disk.
    fifo = tmp_path / "huge.csv"
    os.mkfifo(fifo)
    written = [0]
    args = ["--out-dir", "out"] if command == "process" else []
    process = imgcore(command, str(fifo), *args, root=tmp_path)
    feeder = threading.Thread(target=_feed, args=(fifo, endless_csv(GIB), written), daemon=True)
    feeder.start()
    try:
        _, stderr = process.communicate(timeout=120)
    finally:
        if process.poll() is None:
            process.kill()
        feeder.join(timeout=30)
    assert process.returncode == 2, stderr
    assert f"the file is larger than {MAX_FILE} bytes (file_too_large)" in stderr
    assert MAX_FILE < written[0] < 4 * MAX_FILE
    assert stored_rows(tmp_path) == (0, 0, 0)
    assert files_under(tmp_path / "media") == []
    assert not (tmp_path / "out").exists()


def test_a_good_csv_is_stored_with_the_same_settings(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # The checks above would pass vacuously if these settings stored nothing at all.
    for name, value in env_for(tmp_path).items():
        if name.startswith("IMGCORE_"):
            monkeypatch.setenv(name, value)
    source = tmp_path / "good.csv"
    source.write_bytes(
        b'S. No.,Product Name,Input Image Urls\r\n1,Mug,"http://127.0.0.1:9/a.jpg"\r\n'
    )
    code = main(["submit", str(source)])
    out, err = capsys.readouterr()
    assert code == 0, err
    assert out.strip()
    assert stored_rows(tmp_path) == (1, 1, 1)
