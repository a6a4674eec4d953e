"""``imgapi create-admin``: the password from stdin (never an argument), hashed with argon2."""

from __future__ import annotations

import io
import sqlite3
from pathlib import Path

import pytest
from argon2 import PasswordHasher
from imgapi.cli import main


@pytest.fixture
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("IMGCORE_DATABASE_URL", f"sqlite+aiosqlite:///{tmp_path}/imgcore.sqlite3")
    monkeypatch.setenv("IMGCORE_STORAGE_URL", f"file:{tmp_path}/media")
    monkeypatch.setenv("IMGAPI_LOG_FORMAT", "none")
    return tmp_path / "imgcore.sqlite3"


def run(monkeypatch: pytest.MonkeyPatch, stdin: str, *args: str) -> int:
    monkeypatch.setattr("sys.stdin", io.StringIO(stdin))
    return main(["create-admin", *args])


def stored(database: Path) -> list[tuple[str, str]]:
    with sqlite3.connect(database) as db:
        return db.execute("SELECT username, password_hash FROM admin_users").fetchall()


def test_create_admin_stores_an_argon2_hash_of_the_password_read_from_stdin(
    env: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run(monkeypatch, "a long password\n", "alice") == 0
    assert "admin user 'alice' created" in capsys.readouterr().out
    [(username, password_hash)] = stored(env)
    assert username == "alice" and password_hash.startswith("$argon2id$")
    assert PasswordHasher().verify(password_hash, "a long password")


def test_create_admin_again_sets_a_new_password(
    env: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    run(monkeypatch, "a long password\n", "alice")
    assert run(monkeypatch, "another password\n", "alice") == 0
    assert "updated" in capsys.readouterr().out
    [(_, password_hash)] = stored(env)
    assert PasswordHasher().verify(password_hash, "another password")


def test_create_admin_refuses_a_short_password(
    env: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run(monkeypatch, "short\n", "alice") == 1
    assert "at least 8 characters" in capsys.readouterr().err
    assert not env.exists() or stored(env) == []


def test_create_admin_takes_no_password_argument(
    env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with pytest.raises(SystemExit):
        run(monkeypatch, "", "alice", "--password", "a long password")


def test_revoke_sessions_of_an_unknown_user_fails_with_a_message(
    env: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    run(monkeypatch, "a long password\n", "alice")
    assert main(["revoke-sessions", "bob"]) == 1
    assert "no admin user 'bob'" in capsys.readouterr().err


def test_revoke_sessions_of_a_user_without_sessions_ends_none(
    env: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    run(monkeypatch, "a long password\n", "alice")
    assert main(["revoke-sessions", "alice"]) == 0
    assert "ended 0 session(s) of admin user 'alice'" in capsys.readouterr().out
