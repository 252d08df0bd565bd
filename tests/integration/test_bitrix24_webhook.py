"""Bitrix24's legacy incoming-webhook mode against the strict fake: telephony refused as WRONG_AUTH_TYPE is
reported (log, /healthz, `config check`) and failed once per call, never retried; lookups still work."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import aiohttp
from pydantic import SecretStr
from structlog.testing import capture_logs

from crmtel.app import start
from crmtel.bitrix24.client import Bitrix24Client
from crmtel.bitrix24.routing import Bitrix24Source
from crmtel.bitrix24.service import Bitrix24Sink
from crmtel.bitrix24.tokens import TokenStore
from crmtel.calls.service import CallService
from crmtel.config import (
    Bitrix24Settings,
    CallsSettings,
    OutboxSettings,
    Settings,
)
from crmtel.configcheck.checks import check_settings
from crmtel.configcheck.origins import Origins
from crmtel.connectors.models import Attempt, Kind, OutboxEvent
from crmtel.connectors.service import ConnectorService, OutboxTap
from crmtel.domain import CallEnded, Direction
from crmtel.health.service import Health
from crmtel.store.db import Database
from crmtel.store.outbox import OutboxRepository, SealedTokens
from crmtel.store.parties import PartyRepository
from tests.fixtures.bitrix24 import FAST, answered_call, drive, fake_portal, recordings
from tests.fixtures.daemon import app_settings
from tests.fixtures.fake_ami import wait_until
from tests.fixtures.traces import SCENARIOS, load_expected


def _webhook_settings(hook: str) -> Bitrix24Settings:
    return Bitrix24Settings(webhook_url=SecretStr(hook), rate_per_second=25.0)


async def test_telephony_through_a_webhook_is_reported_and_failed_once_per_call_never_retried(
    db: Database, tmp_path: Path
) -> None:
    """Three calls: each one register, refused WRONG_AUTH_TYPE (403), failed at once (no backoff round), the
    problem named in /healthz and in the log (without the webhook's secret code); user.get went through."""
    folder = recordings(tmp_path / "monitor")
    scenarios = [s for s in SCENARIOS if load_expected(s)["caller_number"] != "anonymous"][:3]
    async with fake_portal() as fake:
        hook = fake.make_webhook()
        settings = _webhook_settings(hook)
        assert settings.enabled
        assert settings.webhook_mode
        assert not settings.offline_events
        client = Bitrix24Client(settings, TokenStore(SealedTokens(db), ""))
        sink = Bitrix24Sink(settings, client, db, folder)
        with capture_logs() as logs:
            async with ConnectorService([sink], OutboxRepository(db), FAST, node="a") as connectors:
                service = CallService(db, CallsSettings(), PartyRepository(db), tap=connectors.tap)
                await drive(service, scenarios)
                worker = connectors.workers[0]

                async def failed_all() -> bool:
                    return worker.failed >= len(scenarios)

                await wait_until(failed_all, limit=60)
                # Ten backoff rounds of FAST (0.05 … 0.3 s) would have passed: nothing is tried again.
                await asyncio.sleep(1.0)
                await connectors.workers[0].refresh_backlog()
                (backlog,) = connectors.backlogs()
        assert fake.requests.count("telephony.externalcall.register") == len(scenarios)
        assert worker.retried == 0
        assert fake.registrations == {}
        assert fake.activities == []
        assert "user.get" in fake.requests  # what a webhook may call still works
        assert backlog.problem is not None
        assert "WRONG_AUTH_TYPE" in backlog.problem
        assert "telephony.externalcall.register" in backlog.problem
        health = Health("ok", {}, outbox=(backlog,)).as_json()
        assert "WRONG_AUTH_TYPE" in str(health["outbox"])
        assert health["status"] == "ok"  # informational: crmtel itself is healthy
        errors = [e for e in logs if e["event"] == "bitrix24.wrong_auth_type"]
        assert len(errors) == 1, "reported once, not once per call"
        code = hook.rstrip("/").rsplit("/", 1)[-1]
        assert all(code not in str(e) for e in logs)
        assert code not in backlog.problem
        states = await OutboxRepository(db).states("bitrix24")
        assert states.get("failed") == len(scenarios)


async def test_lookups_work_through_a_webhook_and_config_check_names_the_problem(db: Database) -> None:
    """The responsible manager is found with searchCrmEntities through the webhook; `config check` reports the
    webhook mode as a problem with the fix; the webhook's address is not shown by `config show`."""
    async with fake_portal() as fake:
        fake.entities["79161110001"] = ("CONTACT", 5, 12)
        settings = _webhook_settings(fake.make_webhook())
        client = Bitrix24Client(settings, TokenStore(SealedTokens(db), ""))
        sink = Bitrix24Sink(settings, client, db, Path("/nonexistent"))
        extension, _ = await Bitrix24Source(client, sink.users).responsible("+79161110001")
        await client.aclose()
    assert extension == "102"
    full = Settings(bitrix24=settings)
    problems = check_settings(full, Origins())
    (problem,) = [p for p in problems if "WRONG_AUTH_TYPE" in p.what]
    assert "client_id" in problem.valid
    shown = full.model_dump_json()
    assert settings.webhook_url.get_secret_value() not in shown


async def test_a_running_crmtel_in_webhook_mode_shows_the_refusal_in_healthz(database_url: str) -> None:
    """`crmtel run` with webhook_url: a call's end is refused WRONG_AUTH_TYPE once and /healthz names it."""
    async with fake_portal() as fake:
        settings = app_settings(
            database_url,
            outbox=OutboxSettings(poll_seconds=0.1, backlog_seconds=0.1),
            bitrix24=_webhook_settings(fake.make_webhook()),
        )
        record = answered_call(
            "1796.1",
            Direction.INBOUND,
            "79161110001",
            "4950000001",
            answered_by="101",
            ring_seconds=3,
            talk_seconds=17,
        )
        async with start(settings) as running, aiohttp.ClientSession() as http:
            db = Database(database_url)
            try:
                async with db.session() as session:
                    await OutboxTap([_Named()]).write_in(
                        session, [CallEnded("pbx1:1796.1", record, record.started_at)]
                    )
            finally:
                await db.dispose()

            async def reported() -> bool:
                async with http.get(running.web_url + "healthz") as response:
                    outbox = (await response.json()).get("outbox", {})
                b24 = outbox.get("bitrix24", {})
                return "WRONG_AUTH_TYPE" in str(b24.get("problem", "")) and b24.get("failed") == 1

            await wait_until(reported, limit=30)
            async with http.get(running.web_url + "healthz") as response:
                health = await response.json()
    assert health["outbox"]["bitrix24"]["failed"] == 1
    assert fake.requests.count("telephony.externalcall.register") == 1
    assert fake.activities == []


class _Named:
    """Stands for the Bitrix24 sink when staging (only its name and kinds matter)."""

    name = "bitrix24"
    kinds = frozenset({Kind.RINGING, Kind.RING_STOPPED, Kind.ENDED, Kind.RECORDING})
    rate_per_second = 1.0
    rate_burst = 1

    async def deliver(self, event: OutboxEvent, memo: Mapping[str, Any]) -> Attempt:
        raise AssertionError("never delivers")

    async def aclose(self) -> None:
        return None
