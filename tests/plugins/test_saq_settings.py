"""The SAQ executor's settings and job parameters (no queue server needed)."""

from __future__ import annotations

import math
import socket
from pathlib import Path

import pytest
from imgcore import Config, Engine
from imgcore.config import ConfigError
from imgcore.states import RequestStatus
from imgcore_saq import SaqExecutor, SaqSettings
from imgcore_saq.queues import open_queue
from imgcore_saq.settings import default_timeout
from saq.queue.postgres import PostgresQueue
from support.saq import make_csv

pytestmark = pytest.mark.anyio


def sqlite_config(tmp_path: Path, **changes: object) -> Config:
    return Config(
        database_url=f"sqlite+aiosqlite:///{tmp_path}/imgcore.sqlite3",
        storage_url=f"file://{tmp_path}/media",
        executor="saq",
    ).replace(**changes)


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_settings_are_read_from_the_environment() -> None:
    settings = SaqSettings.from_env(
        {
            "IMGCORE_QUEUE_URL": "redis://127.0.0.1:6379/2",
            "IMGCORE_SAQ_QUEUE": "shop",
            "IMGCORE_SAQ_CONCURRENCY": "8",
            "IMGCORE_SAQ_CONSUME": "false",
        }
    )
    assert (settings.queue_url, settings.queue, settings.concurrency, settings.consume) == (
        "redis://127.0.0.1:6379/2",
        "shop",
        8,
        False,
    )


def test_the_queue_url_is_required() -> None:
    with pytest.raises(ConfigError, match="IMGCORE_QUEUE_URL"):
        SaqSettings.from_env({})


def test_a_queue_url_of_another_kind_is_refused() -> None:
    with pytest.raises(ConfigError, match="IMGCORE_QUEUE_URL must start with redis"):
        SaqSettings.from_env({"IMGCORE_QUEUE_URL": "amqp://127.0.0.1/"})


def test_an_invalid_saq_variable_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="invalid saq setting"):
        SaqSettings.from_env({"IMGCORE_QUEUE_URL": "redis://x", "IMGCORE_SAQ_RETRIES": "0"})


def test_a_postgres_queue_url_may_carry_a_sqlalchemy_driver() -> None:
    queue = open_queue("postgresql+asyncpg://postgres@127.0.0.1:5432/test", "q")
    assert isinstance(queue, PostgresQueue)
    assert queue.pool.conninfo == "postgresql://postgres@127.0.0.1:5432/test"


def test_the_default_job_timeout_covers_every_download_attempt_and_its_backoff() -> None:
    config = Config(fetch_max_attempts=4, fetch_total_timeout=60)
    assert default_timeout(config) >= 4 * 60 + 3 * config.fetch_options().backoff_max
    longer = Config(fetch_max_attempts=4, fetch_total_timeout=120)
    assert default_timeout(longer) == default_timeout(config) + 4 * 60


async def test_an_images_job_has_a_fixed_key_heartbeat_and_several_retries(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("IMGCORE_QUEUE_URL", "redis://127.0.0.1:6379/0")
    monkeypatch.setenv("IMGCORE_SAQ_QUEUE", "shop")
    async with Engine(sqlite_config(tmp_path, lease_seconds=7.5)) as engine:
        assert isinstance(engine.executor, SaqExecutor)
        job = engine.executor.new_job(42)
    assert (job.key, job.kwargs) == ("shop:img-42", {"image_id": 42})
    assert job.heartbeat == math.ceil(7.5), "a job outlives its heartbeat as long as its lease"
    assert job.timeout == default_timeout(engine.config)
    assert job.retries > 1
    assert job.retry_backoff


async def test_the_saq_executor_without_a_queue_url_fails_at_start(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("IMGCORE_QUEUE_URL", raising=False)
    with pytest.raises(ConfigError, match="IMGCORE_QUEUE_URL"):
        Engine(sqlite_config(tmp_path))


async def test_a_queue_outage_at_submit_leaves_the_request_stored(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("IMGCORE_QUEUE_URL", f"redis://127.0.0.1:{closed_port()}/0")
    async with Engine(sqlite_config(tmp_path)) as engine:
        request_id = await engine.submit_csv(make_csv(["https://img.example/a.jpg"]))
        info = await engine.status(request_id)
    assert (info.status, info.total) == (RequestStatus.PENDING, 1)
    assert "could not be enqueued" in caplog.text


def test_every_setting_is_documented_in_the_deployment_guide() -> None:
    guide = (Path(__file__).resolve().parents[2] / "docs" / "deployment.md").read_text()
    names = [
        "IMGCORE_QUEUE_URL" if field == "queue_url" else f"IMGCORE_SAQ_{field.upper()}"
        for field in SaqSettings.__struct_fields__
    ]
    assert [name for name in names if f"| `{name}` |" not in guide] == []
