"""The built-in webhook notifier, following the Standard Webhooks specification.

A plugin like any other: its URL rules are the network guard's (:mod:`imgcore._netguard`),
its signature is :func:`imgcore.webhooks.sign`.

Each delivery carries ``webhook-id`` (stable across retries, for de-duplication),
``webhook-timestamp`` and, when secrets are configured, ``webhook-signature``:
``v1,<base64 HMAC-SHA256 of "id.timestamp.body">`` once per secret (rotation).
"""

from __future__ import annotations

import random
import time
from typing import Any

import anyio
import httpx
import msgspec

from imgcore._http import guarded_client
from imgcore._netguard import AllowList
from imgcore._version import __version__
from imgcore.config import Config, ConfigError
from imgcore.contracts import DeliveryClaim, DeliveryOutcome, Notifier, Settlement
from imgcore.errors import BlockedAddressError, FetchError
from imgcore.hookspecs import hookimpl
from imgcore.webhooks import sign

__all__ = ["USER_AGENT", "WebhookNotifier", "sign"]

USER_AGENT = f"imgcore-webhook/{__version__}"


class WebhookNotifier:
    """POSTs a JSON summary to the request's ``webhook_url`` when it finishes.

    One delivery: a 2xx answer within ``webhook_timeout`` seconds. 410 Gone stops the
    retries; anything else (no answer, a timeout, another status, a redirect, which is never
    followed) is retried on ``webhook_retry_schedule``. Connections go through the same
    address guard as image downloads, checked at connect time.
    """

    name = "webhook"

    def __init__(self, config: Config) -> None:
        self.config = config
        for secret in config.webhook_secrets:
            try:
                sign(secret, "", 0, b"")
            except ValueError:
                raise ConfigError(
                    "IMGCORE_WEBHOOK_SECRETS: each secret must be whsec_<base64>"
                ) from None
        self._client: httpx.AsyncClient | None = None

    def target(self, settlement: Settlement) -> str | None:
        """The request's webhook URL, if it gave one."""
        return settlement.webhook_url

    def payload(self, settlement: Settlement) -> dict[str, Any]:
        """``{type, timestamp, data}`` with the request's id, status, counts and links."""
        api = self.config.api_url.rstrip("/")
        rid = str(settlement.request_id)
        data = {
            "request_id": rid,
            "status": settlement.status.value,
            "total": settlement.total,
            "done": settlement.done,
            "failed": settlement.failed,
            "status_url": f"{api}/status/{rid}",
            "output_csv_url": f"{api}/status/{rid}/output.csv",
        }
        return {
            "type": f"request.{settlement.status.value.lower().replace(' ', '_')}",
            "timestamp": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "request_id": rid,
            "status": settlement.status.value,
            "data": data,
        }

    def headers(self, message_id: str, timestamp: int, body: bytes) -> dict[str, str]:
        """The Standard Webhooks headers for one attempt (one signature per secret)."""
        headers = {
            "content-type": "application/json",
            "user-agent": USER_AGENT,
            "webhook-id": message_id,
            "webhook-timestamp": str(timestamp),
        }
        if self.config.webhook_secrets:
            headers["webhook-signature"] = " ".join(
                sign(secret, message_id, timestamp, body) for secret in self.config.webhook_secrets
            )
        return headers

    async def deliver(self, delivery: DeliveryClaim) -> DeliveryOutcome:
        """One POST: 2xx delivered, 410 stop, anything else (or no answer) retried later."""
        if delivery.target is None:
            return DeliveryOutcome(delivered=False, retry=False, error="no target")
        body = msgspec.json.encode(delivery.payload)
        # A fresh timestamp on each attempt: receivers reject old ones to stop replays.
        timestamp = int(time.time())
        if self._client is None:
            self._client = guarded_client(
                AllowList.parse(self.config.fetch_allow),
                timeout=self.config.webhook_timeout,
                pool="httpcore",  # reads the status of any answer, even a 204 with a body
            )
        try:
            # httpx's timeout bounds each read; this bounds the whole call, so a receiver
            # that trickles its answer cannot hold the delivery past its lease.
            with anyio.fail_after(self.config.webhook_timeout):
                async with self._client.stream(
                    "POST",
                    delivery.target,
                    content=body,
                    headers=self.headers(delivery.message_id, timestamp, body),
                ) as response:
                    # The body is never read: only the status matters, and it may be large.
                    code = response.status_code
                    location = response.headers.get("location", "")
        except TimeoutError:
            return DeliveryOutcome(
                delivered=False,
                retry=True,
                error=f"no answer within {self.config.webhook_timeout:g} s",
            )
        except BlockedAddressError as exc:
            return DeliveryOutcome(delivered=False, retry=False, error=str(exc))
        except FetchError as exc:
            # Unlike a download, a receiver whose name does not resolve today may be back
            # tomorrow: only the guard's refusals (the address, the URL itself) are final.
            retry = exc.reason != "invalid_url"
            return DeliveryOutcome(delivered=False, retry=retry, error=str(exc))
        except httpx.InvalidURL as exc:  # refused by httpx before the guard saw it
            return DeliveryOutcome(delivered=False, retry=False, error=f"invalid URL: {exc}")
        except httpx.HTTPError as exc:
            return DeliveryOutcome(
                delivered=False, retry=True, error=f"{type(exc).__name__}: {exc}"
            )
        if 200 <= code < 300:
            return DeliveryOutcome(delivered=True, status_code=code)
        if code == 410:
            return DeliveryOutcome(delivered=False, retry=False, status_code=code, error="410 Gone")
        if 300 <= code < 400:
            error = f"HTTP {code}: redirects are not followed (to {location[:200]!r})"
            return DeliveryOutcome(delivered=False, retry=True, status_code=code, error=error)
        return DeliveryOutcome(delivered=False, retry=True, status_code=code, error=f"HTTP {code}")

    def retry_delay(self, attempts: int) -> float | None:
        """The configured schedule, ±20% jitter; ``None`` once it is used up."""
        schedule = self.config.webhook_retry_schedule
        if attempts > len(schedule):
            return None
        return schedule[attempts - 1] * random.uniform(0.8, 1.2)

    async def aclose(self) -> None:
        """Close the HTTP client (a later delivery opens a new one)."""
        client, self._client = self._client, None
        if client is not None:
            await client.aclose()


@hookimpl
def imgcore_notifiers(config: Config) -> list[Notifier]:
    """The webhook notifier (it stays silent for requests without a webhook URL)."""
    return [WebhookNotifier(config)]
