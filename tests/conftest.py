"""Fixtures shared by the whole suite: real images and real local HTTP origins."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from support.origin import OriginServer

DATA = Path(__file__).parent / "data"


@pytest.fixture(scope="session")
def corpus_dir() -> Path:
    """Real photographs and edge-case images (a subset of ../shared/bench/corpus)."""
    return DATA / "corpus"


@pytest.fixture
def anyio_backend() -> str:
    """Async tests run on asyncio (anyio's pytest plugin)."""
    return "asyncio"


@pytest.fixture(scope="session")
def _origin_server() -> Iterator[OriginServer]:
    with OriginServer(host="127.0.0.1") as server:
        yield server


@pytest.fixture(scope="session")
def _other_origin_server() -> Iterator[OriginServer]:
    with OriginServer(host="127.0.0.2") as server:
        yield server


@pytest.fixture
def origin(_origin_server: OriginServer) -> OriginServer:
    """A real HTTP origin on 127.0.0.1 (see support.origin), counters reset for each test."""
    _origin_server.reset()
    return _origin_server


@pytest.fixture
def other_origin(_other_origin_server: OriginServer) -> OriginServer:
    """A second origin on 127.0.0.2, for redirects to a host outside the allow-list."""
    _other_origin_server.reset()
    return _other_origin_server
