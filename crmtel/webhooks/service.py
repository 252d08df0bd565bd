"""One webhook subscription as an outbox sink: POST a signed JSON message per call event."""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from typing import Any

import aiohttp

from crmtel.config import WebhookSettings
from crmtel.connectors.answers import text_answer
from crmtel.connectors.models import Attempt, Kind, OutboxEvent, Verdict
from crmtel.webhooks.signing import sign

# Answers worth another try later; any other 4xx is a refusal a person must look at.
_RETRY_STATUSES = frozenset({408, 409, 425, 429})


def message(event: OutboxEvent) -> dict[str, Any]:
    """The JSON body of one event: ``type``, ``timestamp`` and ``data`` (the call and the effect)."""
    return {
        "type": f"call.{event.kind.value}",
        "timestamp": event.created_at.isoformat(),
        "data": {"pbx": event.pbx, "linkedid": event.linkedid, **event.payload},
    }


def retry_after(value: str | None) -> float | None:
    """Seconds from a ``Retry-After`` header (seconds form only; anything else is ignored)."""
    if value is None:
        return None
    try:
        seconds = float(value)
    except ValueError:
        return None
    return min(max(seconds, 0.0), 86_400.0)


class WebhookSink:
    """Delivers the subscribed events to one URL, signed; the outbox key is the ``webhook-id``."""

    def __init__(self, settings: WebhookSettings, index: int) -> None:
        self.settings = settings
        self._name = settings.name or f"webhook{index}"
        self._kinds = frozenset(Kind(k) for k in settings.events) if settings.events else frozenset(Kind)
        self._session: aiohttp.ClientSession | None = None

    @property
    def name(self) -> str:
        """The subscription's name (its outbox rows are kept under it)."""
        return self._name

    @property
    def kinds(self) -> frozenset[Kind]:
        """The events subscribed to."""
        return self._kinds

    @property
    def rate_per_second(self) -> float:
        """The receiver's rate limit."""
        return self.settings.rate_per_second

    @property
    def rate_burst(self) -> int:
        """None beyond the rate."""
        return 1

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None:
            self._session = aiohttp.ClientSession(
                timeout=aiohttp.ClientTimeout(total=self.settings.timeout_seconds)
            )
        return self._session

    async def aclose(self) -> None:
        """Close the HTTP client."""
        if self._session is not None:
            await self._session.close()

    async def deliver(self, event: OutboxEvent, memo: Mapping[str, Any]) -> Attempt:
        """POST the event; 2xx delivered, 408/409/425/429/5xx and network trouble retried, other 4xx failed."""
        body = json.dumps(message(event), ensure_ascii=False, separators=(",", ":")).encode()
        stamp = int(time.time())
        headers = {
            "content-type": "application/json",
            "webhook-id": event.key,
            "webhook-timestamp": str(stamp),
            "webhook-signature": sign(self.settings.secret.get_secret_value(), event.key, stamp, body),
        }
        try:
            async with self._client().post(str(self.settings.url), data=body, headers=headers) as response:
                text = await text_answer(response, 2000)
                status = response.status
                wait = retry_after(response.headers.get("Retry-After"))
        except (aiohttp.ClientError, TimeoutError) as err:
            return Attempt(Verdict.RETRY, f"no answer: {err.__class__.__name__}: {err}", retry_after=None)
        answer = f"HTTP {status}: {text}"
        if 200 <= status < 300:
            return Attempt(Verdict.DELIVERED, answer, status)
        if status >= 500 or status in _RETRY_STATUSES:
            return Attempt(Verdict.RETRY, answer, status, retry_after=wait)
        return Attempt(Verdict.FAILED, answer, status)
