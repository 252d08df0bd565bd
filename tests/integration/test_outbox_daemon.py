"""The outbox inside a running crmtel: a trace over the fake AMI reaches a signed webhook; /healthz and
/metrics show the backlog and the deliveries."""

from __future__ import annotations

import asyncio
import base64
import time
from pathlib import Path

import aiohttp
from pydantic import SecretStr

from crmtel.app import start
from crmtel.config import LogSettings, OutboxSettings, RoutingSettings, Settings, WebhookSettings, WebSettings
from crmtel.fakepbx.server import FakeAmiServer, load_ami
from tests.fixtures.fake_ami import settings_for
from tests.fixtures.traces import load_expected
from tests.fixtures.webhook_receiver import WebhookReceiver

HOOK_SECRET = "whsec_" + base64.b64encode(b"daemon-webhook-secret-01").decode()


async def test_a_running_crmtel_delivers_a_call_to_a_webhook_and_reports_its_outbox(
    database_url: str, traces_dir: Path
) -> None:
    """The answered call arrives signed (ringing … recording); /healthz lists the outbox, /metrics counts."""
    receiver = WebhookReceiver(HOOK_SECRET)
    await receiver.start()
    server = FakeAmiServer(load_ami(traces_dir / "direct-answered.ami"), secret="s")
    await server.start()
    linkedid = load_expected("direct-answered")["linkedid"]
    try:
        settings = Settings(
            database_url=database_url,
            ami=settings_for(server, secret=SecretStr("s")),
            routing=RoutingSettings(agi_host="127.0.0.1", agi_port=0),
            web=WebSettings(host="127.0.0.1", port=0),
            log=LogSettings(level="warning"),
            outbox=OutboxSettings(poll_seconds=0.05, backlog_seconds=0.1),
            webhooks=(WebhookSettings(url=receiver.url, secret=SecretStr(HOOK_SECRET), name="hook"),),
        )
        async with start(settings) as running, aiohttp.ClientSession() as http:
            deadline = time.monotonic() + 15
            while "call.recording" not in receiver.types_of(linkedid):
                assert time.monotonic() < deadline, receiver.types_of(linkedid)
                await asyncio.sleep(0.05)
            while True:
                async with http.get(running.web_url + "healthz") as response:
                    text = await response.text()
                    health = await response.json()
                if health.get("outbox", {}).get("hook", {}).get("pending") == 0:
                    break
                assert time.monotonic() < deadline, health
                await asyncio.sleep(0.05)
            async with http.get(running.web_url + "metrics") as response:
                metrics = await response.text()
    finally:
        await server.close()
        await receiver.stop()
    assert receiver.types_of(linkedid) == ["call.ringing", "call.answered", "call.ended", "call.recording"]
    assert receiver.bad_signatures == 0
    assert health["outbox"]["hook"] == {"pending": 0, "failed": 0, "oldest_pending_s": 0.0}
    assert HOOK_SECRET not in text
    assert 'crmtel_outbox_deliveries_total{connector="hook",result="delivered"} 4.0' in metrics
