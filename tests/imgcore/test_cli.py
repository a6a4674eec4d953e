"""The imgcore command line, run as a real subprocess."""

from __future__ import annotations

import csv
import io
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from support.origin import OriginServer

PHOTOS = ["s03_astronaut.jpg", "s03_chelsea.jpg", "s03_coffee.jpg"]


def imgcore(
    *args: str, cwd: Path, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "imgcore.cli", *args],
        cwd=cwd,
        env={**os.environ, **(env or {})},
        capture_output=True,
        text=True,
        timeout=60,
    )


def write_csv(path: Path, rows: list[list[str]]) -> Path:
    with path.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["S. No.", "Product Name", "Input Image Urls"])
        for serial, urls in enumerate(rows, start=1):
            writer.writerow([serial, f"SKU{serial}", ",".join(urls)])
    return path


def test_process_writes_images_and_the_output_csv(tmp_path: Path, origin: OriginServer) -> None:
    urls = [origin.url(f"/corpus/img/{name}") for name in PHOTOS]
    source = write_csv(tmp_path / "in.csv", [urls[:2], urls[2:]])
    result = imgcore(
        "process", str(source), "--out-dir", "out", "--allow", "127.0.0.1", cwd=tmp_path
    )
    assert result.returncode == 0, result.stderr
    assert "3 ok, 0 failed of 3 images" in result.stderr
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [
        "1-1.jpg",
        "1-2.jpg",
        "2-1.jpg",
        "output.csv",
    ]
    rows = list(csv.DictReader(io.StringIO((tmp_path / "out/output.csv").read_text())))
    assert rows[0]["Output Image Urls"] == "out/1-1.jpg,out/1-2.jpg"
    assert rows[1]["Output Image Urls"] == "out/2-1.jpg"


def test_process_quality_option_changes_the_size(tmp_path: Path, origin: OriginServer) -> None:
    source = write_csv(tmp_path / "in.csv", [[origin.url(f"/corpus/img/{PHOTOS[0]}")]])
    sizes = []
    for quality in ("20", "90"):
        out = f"q{quality}"
        result = imgcore(
            "process",
            str(source),
            "--out-dir",
            out,
            "--quality",
            quality,
            "--allow",
            "127.0.0.1",
            cwd=tmp_path,
        )
        assert result.returncode == 0, result.stderr
        sizes.append((tmp_path / out / "1-1.jpg").stat().st_size)
    assert sizes[0] < sizes[1]


def test_process_reports_failed_images_one_line_each_and_exits_non_zero(
    tmp_path: Path, origin: OriginServer
) -> None:
    good = origin.url(f"/corpus/img/{PHOTOS[0]}")
    source = write_csv(tmp_path / "in.csv", [[good, origin.url("/status/404")]])
    result = imgcore(
        "process", str(source), "--out-dir", "out", "--allow", "127.0.0.1", cwd=tmp_path
    )
    assert result.returncode == 1
    failed = [line for line in result.stderr.splitlines() if line.startswith("failed")]
    assert len(failed) == 1
    assert "row 2" in failed[0] and "404" in failed[0]
    assert "Traceback" not in result.stderr
    rows = list(csv.DictReader(io.StringIO((tmp_path / "out/output.csv").read_text())))
    assert rows[0]["Output Image Urls"] == "out/1-1.jpg,"
    assert rows[0]["Errors"].startswith("2: ")


def test_process_without_allow_blocks_loopback(tmp_path: Path, origin: OriginServer) -> None:
    source = write_csv(tmp_path / "in.csv", [[origin.url(f"/corpus/img/{PHOTOS[0]}")]])
    result = imgcore("process", str(source), "--out-dir", "out", cwd=tmp_path)
    assert result.returncode == 1
    assert "blocked" in result.stderr.lower()
    assert origin.total_hits() == 0


def test_an_invalid_csv_exits_2_with_row_and_column(tmp_path: Path) -> None:
    source = tmp_path / "bad.csv"
    source.write_text('S. No.,Product Name,Input Image Urls\n1,,"http://x.example/a.jpg"\n')
    result = imgcore("process", str(source), "--out-dir", "out", cwd=tmp_path)
    assert result.returncode == 2
    assert "row 2" in result.stderr and "Product Name" in result.stderr
    assert not (tmp_path / "out").exists()


def test_submit_wait_status_and_output(tmp_path: Path, origin: OriginServer) -> None:
    env = {
        "IMGCORE_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path}/db.sqlite3",
        "IMGCORE_STORAGE_URL": f"file://{tmp_path}/media",
        "IMGCORE_FETCH_ALLOW": "127.0.0.1",
        "IMGCORE_POLL_INTERVAL": "0.05",
    }
    source = write_csv(tmp_path / "in.csv", [[origin.url(f"/corpus/img/{PHOTOS[0]}")]])
    submitted = imgcore("submit", str(source), "--wait", cwd=tmp_path, env=env)
    assert submitted.returncode == 0, submitted.stderr
    request_id = submitted.stdout.strip()
    status = imgcore("status", request_id, cwd=tmp_path, env=env)
    assert json.loads(status.stdout)["status"] == "Completed"
    output = imgcore("output", request_id, cwd=tmp_path, env=env)
    assert "Output Image Urls" in output.stdout.splitlines()[0]
    missing = imgcore("status", "00000000-0000-0000-0000-000000000000", cwd=tmp_path, env=env)
    assert missing.returncode == 2 and "no request" in missing.stderr


def test_a_resubmit_says_how_many_images_were_reused(tmp_path: Path, origin: OriginServer) -> None:
    env = {
        "IMGCORE_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path}/db.sqlite3",
        "IMGCORE_STORAGE_URL": f"file://{tmp_path}/media",
        "IMGCORE_FETCH_ALLOW": "127.0.0.1",
        "IMGCORE_POLL_INTERVAL": "0.05",
    }
    urls = [origin.url(f"/versioned/img/{photo}") for photo in PHOTOS[:2]]
    source = write_csv(tmp_path / "in.csv", [urls])
    first = imgcore("submit", str(source), "--wait", cwd=tmp_path, env=env)
    again = imgcore("submit", str(source), "--wait", cwd=tmp_path, env=env)
    assert "Completed: 2 done, 0 failed" in first.stderr
    assert "Completed: 2 done (2 reused), 0 failed" in again.stderr
    assert origin.total_not_modified() == 2


def test_submit_with_a_preset_and_list_the_presets(tmp_path: Path, origin: OriginServer) -> None:
    (tmp_path / "presets.toml").write_text('[[presets.tiny.variants]]\nname = "t"\nwidth = 32\n')
    env = {
        "IMGCORE_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path}/db.sqlite3",
        "IMGCORE_STORAGE_URL": f"file://{tmp_path}/media",
        "IMGCORE_FETCH_ALLOW": "127.0.0.1",
        "IMGCORE_POLL_INTERVAL": "0.05",
        "IMGCORE_PRESETS_FILE": str(tmp_path / "presets.toml"),
    }
    presets = imgcore("presets", cwd=tmp_path, env=env)
    assert [p["name"] for p in json.loads(presets.stdout)] == ["default", "catalog", "tiny"]
    source = write_csv(tmp_path / "in.csv", [[origin.url(f"/corpus/img/{PHOTOS[0]}")]])
    submitted = imgcore("submit", str(source), "--preset", "tiny", "--wait", cwd=tmp_path, env=env)
    assert submitted.returncode == 0, submitted.stderr
    status = json.loads(imgcore("status", submitted.stdout.strip(), cwd=tmp_path, env=env).stdout)
    assert (status["status"], status["preset"]) == ("Completed", "tiny")
    unknown = imgcore("submit", str(source), "--preset", "huge", cwd=tmp_path, env=env)
    assert unknown.returncode == 2
    assert "no preset named 'huge'" in unknown.stderr


def test_db_upgrade_and_plugins(tmp_path: Path) -> None:
    env = {"IMGCORE_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path}/db.sqlite3"}
    assert imgcore("db", "current", cwd=tmp_path, env=env).stdout.strip() == "(empty)"
    upgraded = imgcore("db", "upgrade", cwd=tmp_path, env=env)
    assert upgraded.returncode == 0, upgraded.stderr
    assert imgcore("db", "current", cwd=tmp_path, env=env).stdout.strip() != "(empty)"
    plugins = imgcore("plugins", cwd=tmp_path)
    assert "file" in plugins.stdout and "imgcore_storage" in plugins.stdout


@pytest.mark.parametrize("args", [["process"], ["status"], ["nonsense"]])
def test_usage_errors_exit_2(tmp_path: Path, args: list[str]) -> None:
    assert imgcore(*args, cwd=tmp_path).returncode == 2
