"""The Work object an executor is handed: leases on the database's images, nothing more."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from uuid import UUID

import anyio
import anyio.abc
import pytest
from imgcore import Config, Engine
from imgcore._clock import utcnow
from imgcore._plugins import create_plugin_manager
from imgcore.plugin import Claim, Work, hookimpl

pytestmark = pytest.mark.anyio

CSV = (
    b"S. No.,Product Name,Input Image Urls\n"
    b'1,P1,"http://127.0.0.1:9/a.jpg,http://127.0.0.1:9/b.jpg"\n'
    b"2,P2,http://127.0.0.1:9/c.jpg\n"
)


class Idle:
    """An executor that takes no work by itself: the test drives its Work."""

    async def run(
        self, *, task_status: anyio.abc.TaskStatus[None] = anyio.TASK_STATUS_IGNORED
    ) -> None:
        task_status.started()
        await anyio.sleep_forever()

    async def submitted(self, request_id: UUID) -> None:
        pass


class Capture:
    """Registers the ``capture`` executor and keeps the Work the engine hands it."""

    work: Work | None = None

    @hookimpl
    def imgcore_executor(self, name: str, work: Work, config: Config) -> Idle | None:
        if name != "capture":
            return None
        self.work = work
        return Idle()


@pytest.fixture
async def submitted(tmp_path: Path) -> AsyncIterator[tuple[Work, UUID]]:
    """An engine's Work and a stored request of three images, none claimed."""
    capture = Capture()
    config = Config(
        database_url=f"sqlite+aiosqlite:///{tmp_path}/imgcore.sqlite3",
        storage_url=f"file://{tmp_path}/media",
        executor="capture",
        lease_seconds=30,
        fetch_concurrency=5,
        workers=3,
    )
    pm = create_plugin_manager(extra=[capture], load_entrypoints=False)
    async with Engine(config, plugin_manager=pm, owner="test-owner") as engine:
        request_id = await engine.submit_csv(CSV)
        assert capture.work is not None
        yield capture.work, request_id


async def test_the_engine_hands_its_executor_the_owner_lease_and_sizing_hints(
    submitted: tuple[Work, UUID],
) -> None:
    work, _ = submitted
    assert work.owner == "test-owner"
    assert work.lease == timedelta(seconds=30)
    assert (work.fetch_concurrency, work.compression_workers) == (5, 3)


async def test_claim_leases_at_most_limit_images(submitted: tuple[Work, UUID]) -> None:
    work, request_id = submitted
    claims = await work.claim(2)
    assert [claim.request_id for claim in claims] == [request_id] * 2
    assert len(await work.claim(5)) == 1  # the one left
    assert await work.claim(5) == []


async def test_an_image_leased_elsewhere_is_due_when_its_lease_ends(
    submitted: tuple[Work, UUID],
) -> None:
    work, _ = submitted
    [claim] = await work.claim(1)
    due = await work.claim_image(claim.id)
    assert not isinstance(due, Claim) and due is not None
    assert due - utcnow() > timedelta(seconds=25)
    assert await work.due_at(claim.id) == due


async def test_claim_image_leases_a_due_image_and_nothing_for_an_unknown_one(
    submitted: tuple[Work, UUID],
) -> None:
    work, request_id = submitted
    first = (await work.pending_ids(request_id))[0]
    claim = await work.claim_image(first)
    assert isinstance(claim, Claim) and claim.id == first
    assert await work.claim_image(10**9) is None


async def test_renew_counts_the_leases_still_held(submitted: tuple[Work, UUID]) -> None:
    work, _ = submitted
    claims = await work.claim(3)
    assert await work.renew([claim.id for claim in claims] + [10**9]) == 3


async def test_defer_gives_an_image_back_due_now(submitted: tuple[Work, UUID]) -> None:
    work, _ = submitted
    [claim] = await work.claim(1)
    assert await work.defer(claim, error_reason="job_cancelled", error="test")
    due = await work.due_at(claim.id)
    assert due is not None and due <= utcnow()
    assert isinstance(await work.claim_image(claim.id), Claim)


async def test_release_gives_back_every_image_this_owner_holds(
    submitted: tuple[Work, UUID],
) -> None:
    work, request_id = submitted
    ids = await work.pending_ids(request_id)
    assert len(await work.claim(3)) == 3
    assert await work.release() == 3
    assert await work.pending_ids(request_id) == ids
    assert await work.pending_ids(request_id, after=ids[0], limit=1) == ids[1:2]
    assert len(await work.claim(3)) == 3
