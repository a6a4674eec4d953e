"""The webhook notifier: one attempt at a time against a real receiver on 127.0.0.1."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import msgspec
import pytest
from imgcore._notify.webhook import USER_AGENT, WebhookNotifier, sign
from imgcore.config import Config, ConfigError
from imgcore.contracts import DeliveryClaim, Settlement
from imgcore.plugin import Notifier
from imgcore.states import RequestStatus
from standardwebhooks import Webhook
from standardwebhooks.webhooks import WebhookVerificationError

if TYPE_CHECKING:
    from conftest import Receiver

pytestmark = pytest.mark.anyio

SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
OTHER_SECRET = "whsec_bm90IHRoZSBzYW1lIHNlY3JldCBhdCBhbGw="


def notifier(**changes: Any) -> WebhookNotifier:
    config = Config(
        fetch_allow=("127.0.0.1/32",),
        api_url="https://images.example",
        webhook_secrets=(SECRET,),
        webhook_timeout=2,
    )
    return WebhookNotifier(config.replace(**changes))


def settlement(webhook_url: str | None = "http://127.0.0.1:9/hook") -> Settlement:
    return Settlement(
        request_id=uuid.UUID("6f1c1d7e-8a52-4d7c-9d5c-0a8e3b2f4c11"),
        status=RequestStatus.COMPLETED,
        webhook_url=webhook_url,
        total=5,
        done=4,
        failed=1,
    )


def claim(target: str, attempts: int = 1, **payload: Any) -> DeliveryClaim:
    return DeliveryClaim(
        id=1,
        request_id=uuid.uuid4(),
        message_id=f"msg_{uuid.uuid4().hex}",
        notifier="webhook",
        event="request.completed",
        target=target,
        payload=payload or {"type": "request.completed", "data": {"done": 1}},
        attempts=attempts,
        created_at=datetime.now(UTC),
    )


def test_the_webhook_notifier_implements_the_notifier_protocol() -> None:
    assert isinstance(notifier(), Notifier)


def test_the_payload_names_the_request_its_status_counts_and_links() -> None:
    payload = notifier().payload(settlement())
    rid = "6f1c1d7e-8a52-4d7c-9d5c-0a8e3b2f4c11"
    assert payload["type"] == "request.completed"
    assert (payload["request_id"], payload["status"]) == (rid, "Completed")
    assert payload["data"] == {
        "request_id": rid,
        "status": "Completed",
        "total": 5,
        "done": 4,
        "failed": 1,
        "status_url": f"https://images.example/status/{rid}",
        "output_csv_url": f"https://images.example/status/{rid}/output.csv",
    }


def test_a_request_without_a_webhook_url_is_not_notified() -> None:
    assert notifier().target(settlement(webhook_url=None)) is None


def test_sign_matches_the_standard_webhooks_reference() -> None:
    body = b'{"type":"request.completed"}'
    at = datetime(2030, 1, 2, 3, 4, 5, tzinfo=UTC)
    expected = Webhook(SECRET).sign("msg_1", at, body.decode())
    assert sign(SECRET, "msg_1", int(at.timestamp()), body) == expected


@pytest.mark.parametrize("secret", ["whsec_", "whsec_not base64!", "whsec_@@@@"])
def test_a_malformed_secret_is_a_config_error(secret: str) -> None:
    with pytest.raises(ConfigError, match="IMGCORE_WEBHOOK_SECRETS"):
        notifier(webhook_secrets=(secret,))


async def test_a_delivery_is_signed_so_the_receiver_can_verify_it(receiver: Receiver) -> None:
    hook = claim(receiver.url)
    outcome = await notifier().deliver(hook)
    assert (outcome.delivered, outcome.status_code) == (True, 204)
    (got,) = receiver.received
    assert Webhook(SECRET).verify(got.body, got.headers) == hook.payload
    assert got.headers["webhook-id"] == hook.message_id
    assert got.headers["content-type"] == "application/json"
    assert got.headers["user-agent"] == USER_AGENT


async def test_a_tampered_body_fails_verification(receiver: Receiver) -> None:
    await notifier().deliver(claim(receiver.url))
    (got,) = receiver.received
    with pytest.raises(WebhookVerificationError):
        Webhook(SECRET).verify(got.body.replace(b"1", b"2"), got.headers)


async def test_with_two_secrets_either_one_verifies(receiver: Receiver) -> None:
    await notifier(webhook_secrets=(SECRET, OTHER_SECRET)).deliver(claim(receiver.url))
    (got,) = receiver.received
    assert len(got.headers["webhook-signature"].split(" ")) == 2
    for secret in (SECRET, OTHER_SECRET):
        Webhook(secret).verify(got.body, got.headers)
    with pytest.raises(WebhookVerificationError):
        Webhook("whsec_" + "QUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFB").verify(got.body, got.headers)


async def test_without_secrets_no_signature_is_sent(receiver: Receiver) -> None:
    await notifier(webhook_secrets=()).deliver(claim(receiver.url))
    (got,) = receiver.received
    assert "webhook-signature" not in got.headers
    assert msgspec.json.decode(got.body)["type"] == "request.completed"


async def test_gone_stops_the_retries(receiver: Receiver) -> None:
    receiver.answer(410)
    outcome = await notifier().deliver(claim(receiver.url))
    assert (outcome.delivered, outcome.retry, outcome.status_code) == (False, False, 410)


@pytest.mark.parametrize("status", [500, 503, 429, 404])
async def test_other_failures_are_retried(receiver: Receiver, status: int) -> None:
    receiver.answer(status)
    outcome = await notifier().deliver(claim(receiver.url))
    assert (outcome.delivered, outcome.retry, outcome.status_code) == (False, True, status)


async def test_a_redirect_is_not_followed(receivers: Callable[..., Receiver]) -> None:
    elsewhere = receivers()
    redirecting = receivers(statuses=(307,))
    redirecting.redirect_to = elsewhere.url
    outcome = await notifier().deliver(claim(redirecting.url))
    assert (outcome.delivered, outcome.retry, outcome.status_code) == (False, True, 307)
    assert "not followed" in (outcome.error or "")
    assert elsewhere.received == []


async def test_a_receiver_that_does_not_answer_in_time_is_retried(receiver: Receiver) -> None:
    receiver.answer(0)  # stall
    outcome = await notifier(webhook_timeout=0.3).deliver(claim(receiver.url))
    assert (outcome.delivered, outcome.retry) == (False, True)
    assert "no answer within 0.3 s" in (outcome.error or "")


async def test_an_address_outside_the_allow_list_is_not_called(receiver: Receiver) -> None:
    # 127.0.0.2 is loopback, but only 127.0.0.1 is allowed: the guard refuses to connect.
    outcome = await notifier().deliver(claim(receiver.url.replace("127.0.0.1", "127.0.0.2")))
    assert (outcome.delivered, outcome.retry) == (False, False)
    assert receiver.received == []


async def test_an_unreachable_receiver_is_retried(receiver: Receiver) -> None:
    url = receiver.url
    receiver.close()
    outcome = await notifier().deliver(claim(url))
    assert (outcome.delivered, outcome.retry, outcome.status_code) == (False, True, None)
    assert outcome.error


async def test_the_notifier_delivers_again_after_aclose(receiver: Receiver) -> None:
    hooks = notifier()
    await hooks.deliver(claim(receiver.url))
    await hooks.aclose()
    await hooks.aclose()
    outcome = await hooks.deliver(claim(receiver.url))
    assert outcome.delivered
    assert len(receiver.received) == 2


def test_retries_follow_the_schedule_with_jitter_then_give_up() -> None:
    hooks = notifier(webhook_retry_schedule=(5, 300, 1800))
    for attempts, base in [(1, 5), (2, 300), (3, 1800)]:
        delays = {hooks.retry_delay(attempts) for _ in range(50)}
        assert all(d is not None and base * 0.8 <= d <= base * 1.2 for d in delays)
        assert len(delays) > 1  # jittered, so retries from many requests spread out
    assert hooks.retry_delay(4) is None


def test_the_default_schedule_starts_at_5_seconds_and_backs_off() -> None:
    schedule = Config().webhook_retry_schedule
    assert schedule[:4] == (5, 300, 1800, 7200)
    assert list(schedule) == sorted(schedule)


@pytest.mark.parametrize("host", ["2130706433", "0x7f.1", "0x7f000001", "127.1", "0177.0.0.1"])
async def test_a_legacy_ipv4_spelling_is_refused_at_delivery_even_when_allowed(
    receiver: Receiver, host: str
) -> None:
    # Each spelling means 127.0.0.1 to the system resolver, and 127.0.0.0/8 is allowed:
    # the guard refuses the spelling itself, as it does for image URLs (issue #16, finding 7).
    hooks = notifier(fetch_allow=("127.0.0.0/8",))
    outcome = await hooks.deliver(claim(receiver.url.replace("127.0.0.1", host)))
    await hooks.aclose()
    assert (outcome.delivered, outcome.retry) == (False, False)
    assert outcome.error
    assert receiver.received == []
