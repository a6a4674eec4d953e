"""Fixtures for the API tests: settings on a tmp directory, the app under a test client,
the real origin server and a webhook receiver."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from imgapi import Settings, create_app
from litestar import Litestar
from litestar.testing import AsyncTestClient
from support.server import WebhookReceiver, core_config


@pytest.fixture
def anyio_backend() -> str:
    """Async tests run on asyncio (anyio's pytest plugin)."""
    return "asyncio"


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    """Open API (no keys), imgcore on tmp_path, logging left to pytest."""
    return Settings(core=core_config(tmp_path), log_format="none", max_upload_bytes=1_000_000)


@pytest.fixture
def app(settings: Settings) -> Litestar:
    return create_app(settings)


@pytest.fixture
async def client(app: Litestar) -> AsyncIterator[AsyncTestClient[Litestar]]:
    """The app with its lifespan running (Engine open, executor on)."""
    async with AsyncTestClient(app, base_url="http://127.0.0.1:8000") as client:
        yield client


@pytest.fixture
def webhooks() -> Iterator[WebhookReceiver]:
    """A webhook receiver on 127.0.0.1."""
    with WebhookReceiver() as receiver:
        yield receiver
