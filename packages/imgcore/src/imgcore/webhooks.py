"""Signing and verifying webhook deliveries (Standard Webhooks ``v1``), for receivers.

imgcore signs each delivery with :func:`sign`; a receiver written in Python can check it
with :func:`verify` instead of a Standard Webhooks library.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
from collections.abc import Iterable, Mapping

__all__ = ["sign", "verify"]

TOLERANCE = 300
"""Seconds a delivery's ``webhook-timestamp`` may differ from the receiver's clock."""


def _secret_bytes(secret: str) -> bytes:
    encoded = secret.removeprefix("whsec_")
    # Accept unpadded base64, as the Standard Webhooks reference libraries do.
    key = base64.b64decode(encoded + "=" * (-len(encoded) % 4), validate=True)
    if not key:
        raise ValueError("empty secret")
    return key


def sign(secret: str, message_id: str, timestamp: int, body: bytes) -> str:
    """The Standard Webhooks ``v1`` signature of one delivery: ``v1,<base64 HMAC-SHA256>``.

    The HMAC key is the base64-decoded part of ``whsec_<base64>``; the signed content is
    ``f"{message_id}.{timestamp}."`` followed by the exact body bytes. ValueError on a
    malformed secret.
    """
    signed = f"{message_id}.{timestamp}.".encode() + body
    digest = hmac.new(_secret_bytes(secret), signed, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


def verify(
    secrets: str | Iterable[str],
    body: bytes,
    headers: Mapping[str, str],
    *,
    now: float | None = None,
    tolerance: int = TOLERANCE,
) -> bool:
    """Whether ``body`` with these ``webhook-*`` headers was signed with one of ``secrets``.

    ``body`` must be the raw bytes received. False also when a header is missing or the
    timestamp is more than ``tolerance`` seconds from ``now`` (a replayed delivery).
    """
    lower = {name.lower(): value for name, value in headers.items()}
    message_id = lower.get("webhook-id")
    stamp = lower.get("webhook-timestamp", "")
    offered = lower.get("webhook-signature", "").split()
    if not message_id or not stamp.isdigit() or not offered:
        return False
    timestamp = int(stamp)
    if abs((time.time() if now is None else now) - timestamp) > tolerance:
        return False
    for secret in [secrets] if isinstance(secrets, str) else secrets:
        expected = sign(secret, message_id, timestamp, body)
        if any(hmac.compare_digest(expected, candidate) for candidate in offered):
            return True
    return False
