"""Durable webhooks end to end: the Engine, SQLite in tmp, a real origin and receiver.

The delivery is recorded with the request's final status, then retried on the schedule
(shortened here) until the receiver takes it, across restarts of the service.
"""

from __future__ import annotations

import socket
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any
from uuid import UUID

import anyio
import pytest
from imgcore import Config, Engine
from imgcore._plugins import create_plugin_manager
from imgcore.config import Config as ConfigType
from imgcore.contracts import DeliveryClaim, Settlement
from imgcore.hookspecs import hookimpl
from imgcore.models import DeliveryInfo
from imgcore.plugin import DeliveryOutcome, Notifier
from imgcore.states import RequestStatus
from standardwebhooks import Webhook
from support.csvgen import make_csv, photo_urls
from support.origin import OriginServer
from support.server import core_config

if TYPE_CHECKING:
    from conftest import Receiver

pytestmark = pytest.mark.anyio

SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
FAST = (0.2,) * 20  # retry every ~0.2 s, twenty times


def config_for(tmp_path: Path, **changes: Any) -> Config:
    return core_config(
        tmp_path,
        webhook_secrets=(SECRET,),
        webhook_retry_schedule=FAST,
        compress_pool="thread",
    ).replace(**changes)


async def eventually(check: Callable[[], Awaitable[bool]], timeout: float = 15) -> None:
    with anyio.fail_after(timeout):
        while not await check():
            await anyio.sleep(0.02)


async def only_delivery(engine: Engine, request_id: UUID) -> DeliveryInfo:
    (delivery,) = await engine.deliveries(request_id)
    return delivery


async def submit(engine: Engine, origin: OriginServer, hook: str) -> UUID:
    return await engine.submit_csv(make_csv([photo_urls(origin, 2)]), webhook_url=hook)


async def settle(engine: Engine, request_id: UUID, status: str) -> DeliveryInfo:
    """Run the engine until the request's webhook delivery reaches ``status``."""

    async def reached() -> bool:
        deliveries = await engine.deliveries(request_id)
        return bool(deliveries) and deliveries[0].status == status

    async with engine.running():
        await eventually(reached)
    return await only_delivery(engine, request_id)


def verify_all(receiver: Receiver) -> None:
    for got in receiver.received:
        Webhook(SECRET).verify(got.body, got.headers)


async def test_a_failing_receiver_is_retried_until_it_accepts(
    tmp_path: Path, origin: OriginServer, receiver: Receiver
) -> None:
    receiver.answer(500, 503, 204)
    async with Engine(config_for(tmp_path)) as engine:
        request_id = await submit(engine, origin, receiver.url)
        delivery = await settle(engine, request_id, "delivered")
        assert await engine.dispatcher.run_once() == 0
    assert [got.status for got in receiver.received] == [500, 503, 204]
    assert {got.headers["webhook-id"] for got in receiver.received} == {delivery.message_id}
    verify_all(receiver)
    assert (delivery.attempts, delivery.last_status_code, delivery.next_attempt_at) == (
        3,
        204,
        None,
    )
    assert delivery.delivered_at is not None


async def test_gone_stops_delivery_after_one_attempt(
    tmp_path: Path, origin: OriginServer, receiver: Receiver
) -> None:
    receiver.answer(410)
    async with Engine(config_for(tmp_path)) as engine:
        request_id = await submit(engine, origin, receiver.url)
        delivery = await settle(engine, request_id, "failed")
        assert await engine.dispatcher.run_once() == 0
    assert len(receiver.received) == 1
    assert (delivery.attempts, delivery.last_status_code) == (1, 410)
    assert delivery.delivered_at is None


async def test_delivery_is_given_up_when_the_schedule_is_used_up(
    tmp_path: Path, origin: OriginServer, receiver: Receiver
) -> None:
    receiver.answer(500)
    async with Engine(config_for(tmp_path, webhook_retry_schedule=(0.1, 0.1))) as engine:
        request_id = await submit(engine, origin, receiver.url)
        delivery = await settle(engine, request_id, "failed")
    assert len(receiver.received) == 3  # the first attempt and two retries
    assert (delivery.attempts, delivery.last_status_code, delivery.last_error) == (
        3,
        500,
        "HTTP 500",
    )


async def test_a_receiver_down_then_failing_then_up_gets_exactly_one_delivery_across_restarts(
    tmp_path: Path, origin: OriginServer, receivers: Callable[..., Receiver]
) -> None:
    config = config_for(tmp_path)
    with socket.socket() as down:  # bound, never listening: connections are refused
        down.bind(("127.0.0.1", 0))
        port = down.getsockname()[1]
        hook = f"http://127.0.0.1:{port}/hook"

        # First life: the request finishes while the receiver is down.
        async with Engine(config) as engine:
            request_id = await submit(engine, origin, hook)

            async def refused() -> bool:
                deliveries = await engine.deliveries(request_id)
                return bool(deliveries) and deliveries[0].last_error is not None

            async with engine.running():
                await eventually(refused)
            assert (await engine.status(request_id)).status is RequestStatus.COMPLETED

    # Second life: the receiver is up but answers 500.
    receiver = receivers(port=port, statuses=(500,))
    async with Engine(config) as engine:

        async def answered() -> bool:
            return len(receiver.received) >= 1

        async with engine.running():
            await eventually(answered)

    # Third life: the receiver accepts.
    receiver.answer(204)
    async with Engine(config) as engine:
        delivery = await settle(engine, request_id, "delivered")
        assert await engine.dispatcher.run_once() == 0

    statuses = [got.status for got in receiver.received]
    assert statuses.count(204) == 1
    assert statuses[-1] == 204
    assert {got.headers["webhook-id"] for got in receiver.received} == {delivery.message_id}
    verify_all(receiver)
    assert delivery.attempts >= 1 + len(receiver.received)


async def test_stopping_mid_attempt_hands_the_delivery_back_at_once(
    tmp_path: Path, origin: OriginServer, receiver: Receiver
) -> None:
    receiver.answer(0, 204)  # the first call gets no answer; the next one is accepted
    config = config_for(tmp_path)
    async with Engine(config) as engine:
        request_id = await submit(engine, origin, receiver.url)

        async def in_flight() -> bool:
            return receiver.arrived.is_set()

        async with engine.running():
            await eventually(in_flight)
        stopped = await only_delivery(engine, request_id)
    assert (stopped.status, stopped.last_error) == ("pending", "interrupted by shutdown")

    # Without the hand-back the delivery would stay leased (60 s) and this would time out.
    async with Engine(config) as engine:
        delivery = await settle(engine, request_id, "delivered")
    assert delivery.attempts == 2


async def test_stopping_the_engine_closes_the_notifiers(tmp_path: Path) -> None:
    closed: list[str] = []

    class Recording:
        name = "recording"

        def target(self, settlement: Settlement) -> str | None:
            return None

        def payload(self, settlement: Settlement) -> dict[str, Any]:
            return {}

        async def deliver(self, delivery: DeliveryClaim) -> DeliveryOutcome:
            return DeliveryOutcome(delivered=True)

        def retry_delay(self, attempts: int) -> float | None:
            return None

        async def aclose(self) -> None:
            closed.append(self.name)

    class Plugin:
        @hookimpl
        def imgcore_notifiers(self, config: ConfigType) -> list[Notifier]:
            return [Recording()]

    pm = create_plugin_manager(extra=[Plugin()])
    async with Engine(config_for(tmp_path), plugin_manager=pm) as engine:
        async with engine.running():
            await anyio.sleep(0)
        assert closed == ["recording"]
