"""A CRM or webhook receiver answering hundreds of megabytes: crmtel reads a bounded beginning and stops."""

from __future__ import annotations

import base64
import contextlib
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import pytest
from aiohttp import web

from crmtel.bitrix24.client import B24Error, Bitrix24Client
from crmtel.bitrix24.tokens import TokenStore
from crmtel.config import Bitrix24Settings, WebhookSettings
from crmtel.connectors.models import Kind, OutboxEvent, Verdict
from crmtel.store.db import Database
from crmtel.store.outbox import SealedTokens
from crmtel.webhooks.service import WebhookSink

HUGE_MIB = 256


class Flood:
    """Answers every POST with ``HUGE_MIB`` MiB (a 500 page, or a JSON string that never ends)."""

    def __init__(self) -> None:
        self.sent = 0
        self.runner: web.AppRunner | None = None
        self.url = ""

    async def _answer(self, request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(status=500 if request.path == "/hook" else 200)
        response.content_type = "application/json"
        await response.prepare(request)
        chunk = b"x" * (1 << 20)
        with contextlib.suppress(ConnectionError):
            await response.write(b'{"result": "')
            for _ in range(HUGE_MIB):
                await response.write(chunk)
                self.sent += len(chunk)
        return response

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[Flood]:
        app = web.Application()
        app.router.add_post("/{tail:.*}", self._answer)
        self.runner = web.AppRunner(app)
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self.url = f"http://127.0.0.1:{port}"
        try:
            yield self
        finally:
            await self.runner.cleanup()


def _event() -> OutboxEvent:
    return OutboxEvent(1, "hook", "pbx1:1.1:ended", "pbx1", "1.1", Kind.ENDED, {}, 0, datetime.now(UTC))


async def test_a_webhook_receivers_huge_answer_is_not_read_whole() -> None:
    """A 256 MiB 500 page: the delivery is retried with the page's beginning, and the rest is never read."""
    secret = "whsec_" + base64.b64encode(b"crmtel-test-secret-0123").decode()
    async with Flood().running() as flood:
        sink = WebhookSink(WebhookSettings(url=flood.url + "/hook", secret=secret), 1)
        try:
            attempt = await sink.deliver(_event(), {})
        finally:
            await sink.aclose()
    assert attempt.verdict is Verdict.RETRY
    assert attempt.answer.startswith("HTTP 500: {")
    assert len(attempt.answer) <= 2010
    assert flood.sent < 32 << 20


async def test_a_portals_huge_answer_is_an_unexpected_answer_not_a_full_read(db: Database) -> None:
    """A 256 MiB REST answer from the portal is refused as unexpected after a few megabytes."""
    async with Flood().running() as flood:
        settings = Bitrix24Settings(webhook_url=flood.url + "/rest/1/code/")
        client = Bitrix24Client(settings, TokenStore(SealedTokens(db), "s"))
        try:
            with pytest.raises(B24Error) as caught:
                await client.call("user.get", {})
        finally:
            await client.aclose()
    assert caught.value.code == "ERROR_UNEXPECTED_ANSWER"
    assert flood.sent < 32 << 20
