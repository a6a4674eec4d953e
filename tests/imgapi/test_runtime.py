"""The app's lifespan: what it holds while it runs, and what it leaves behind."""

from __future__ import annotations

import gc

import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient

pytestmark = pytest.mark.anyio


async def test_start_up_objects_are_frozen_out_of_full_collections_while_running(
    app: Litestar,
) -> None:
    # A full collection walked every module, class and function again: 60-80 ms of the
    # event loop while images were processed.
    assert gc.get_freeze_count() == 0
    async with AsyncTestClient(app, base_url="http://127.0.0.1:8000") as client:
        assert (await client.get("/healthz")).status_code == 200
        frozen = gc.get_freeze_count()
        assert frozen > 10_000  # the imports alone are tens of thousands of objects
        assert frozen > len(gc.get_objects())  # most of what the collector tracks at all
    # Given back at shutdown, so that a process running apps one after another (tests, a
    # reload) does not keep the objects of every app it ran for good.
    assert gc.get_freeze_count() == 0
