"""The public signing helpers receivers use (imgcore.webhooks)."""

from __future__ import annotations

from datetime import UTC, datetime

from imgcore.webhooks import sign, verify
from standardwebhooks import Webhook

SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
OTHER = "whsec_bm90IHRoZSBzYW1lIHNlY3JldCBhdCBhbGw="
BODY = b'{"type":"request.completed"}'
NOW = 1_900_000_000


def headers(secret: str = SECRET, at: int = NOW) -> dict[str, str]:
    return {
        "webhook-id": "msg_1",
        "webhook-timestamp": str(at),
        "webhook-signature": sign(secret, "msg_1", at, BODY),
    }


def test_sign_matches_the_standard_webhooks_reference() -> None:
    at = datetime(2030, 1, 2, 3, 4, 5, tzinfo=UTC)
    expected = Webhook(SECRET).sign("msg_1", at, BODY.decode())
    assert sign(SECRET, "msg_1", int(at.timestamp()), BODY) == expected


def test_verify_accepts_a_delivery_signed_with_the_secret() -> None:
    assert verify(SECRET, BODY, headers(), now=NOW)


def test_verify_accepts_any_one_of_several_secrets() -> None:
    assert verify([OTHER, SECRET], BODY, headers(), now=NOW)


def test_verify_refuses_a_tampered_body() -> None:
    assert not verify(SECRET, BODY.replace(b"completed", b"failed"), headers(), now=NOW)


def test_verify_refuses_another_secret() -> None:
    assert not verify(OTHER, BODY, headers(), now=NOW)


def test_verify_refuses_an_old_timestamp() -> None:
    assert not verify(SECRET, BODY, headers(), now=NOW + 301)


def test_verify_refuses_missing_headers() -> None:
    assert not verify(SECRET, BODY, {}, now=NOW)


def test_verify_reads_header_names_in_any_case() -> None:
    upper = {name.upper(): value for name, value in headers().items()}
    assert verify(SECRET, BODY, upper, now=NOW)
