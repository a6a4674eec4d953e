"""The in-process executor keeps working when a lease is lost under load."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

import anyio
import pytest
from imgcore import Config, Engine
from imgcore._executors.local import LocalExecutor
from imgcore._plugins import create_plugin_manager
from imgcore.plugin import Claim, Work, hookimpl
from imgcore.states import RequestStatus
from support.csvgen import make_csv
from support.origin import OriginServer

pytestmark = pytest.mark.anyio

PHOTO = "img/s03_coffee.jpg"


class RenewalsThatLag:
    """The engine's real Work, but renewals never land: as when the event loop is starved
    long enough for a lease to expire while its image is still being processed."""

    def __init__(self, work: Work) -> None:
        self._work = work
        self.claimed: list[int] = []

    def __getattr__(self, name: str) -> Any:
        return getattr(self._work, name)

    async def claim(self, limit: int) -> list[Claim]:
        claims = await self._work.claim(limit)
        self.claimed += [claim.id for claim in claims]
        return claims

    async def claim_image(self, image_id: int) -> Claim | datetime | None:
        return await self._work.claim_image(image_id)

    async def renew(self, ids: Sequence[int]) -> int:
        return 0


class Lagging:
    work: RenewalsThatLag | None = None

    @hookimpl
    def imgcore_executor(self, name: str, work: Work, config: Config) -> LocalExecutor | None:
        if name != "lagging":
            return None
        self.work = RenewalsThatLag(work)
        return LocalExecutor(self.work, config)


async def test_an_image_claimed_again_while_in_flight_does_not_stop_the_executor(
    tmp_path: Path, origin: OriginServer
) -> None:
    lagging = Lagging()
    config = Config(
        database_url=f"sqlite+aiosqlite:///{tmp_path}/imgcore.sqlite3",
        storage_url=f"file://{tmp_path}/media",
        executor="lagging",
        lease_seconds=1,
        fetch_allow=("127.0.0.1",),
        compress_pool="thread",
    )
    pm = create_plugin_manager(extra=[lagging], load_entrypoints=False)
    async with Engine(config, plugin_manager=pm) as engine, engine.running():
        # Longer than the lease and than the executor's 5 s poll while busy: the image is
        # claimed a second time while its first attempt still downloads.
        slow = await engine.submit_csv(make_csv([[origin.url(f"/slow/6/{PHOTO}")]]))
        with anyio.fail_after(30):
            assert (await engine.wait(slow, interval=0.1)).status is RequestStatus.COMPLETED
        assert lagging.work is not None
        assert len(lagging.work.claimed) == 2, "the image was claimed again while in flight"
        # The executor is still running: a later request is processed too.
        later = await engine.submit_csv(make_csv([[origin.url(f"/corpus/{PHOTO}")]]))
        with anyio.fail_after(20):
            assert (await engine.wait(later, interval=0.1)).status is RequestStatus.COMPLETED
