"""Bitrix24 on the paths a call takes besides a plain queue: a transfer after the card was shown (live tier's
recording), and calls learnt from the CDR by ``crmtel backfill`` — each still exactly one finished Bitrix24 call."""

from __future__ import annotations

import argparse
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from crmtel.bitrix24.fake import User
from crmtel.calls.service import CallService
from crmtel.cdr.commands import backfill
from crmtel.config import AmiSettings, CallsSettings, Settings, WebSettings
from crmtel.connectors.service import ConnectorService
from crmtel.fakepbx.server import load_jsonl, recording_epoch
from crmtel.store.db import Database
from crmtel.store.outbox import OutboxRepository
from crmtel.store.parties import PartyRepository
from tests.fixtures.bitrix24 import (
    FAST,
    assert_one_activity_per_call,
    fake_portal,
    install,
    recordings,
    settings_for,
    settled,
    sink_for,
)
from tests.fixtures.cdr_data import legs_of_stream, write_master_csv
from tests.fixtures.fake_ami import wait_until
from tests.fixtures.traces import (
    BASE_TIME,
    LIVE_TRACES_DIR,
    SCENARIOS,
    TRACES_DIR,
    load_expected,
    load_messages,
)

MOSCOW = ZoneInfo("Europe/Moscow")
# The live tier's phones 125 (answers, then transfers), 126 (takes the transfer) and 127 (forwards to a mobile).
LIVE_USERS = [User(25, "Дина", "125"), User(26, "Егор", "126"), User(27, "Жанна", "127")]


async def test_a_call_transferred_after_its_card_was_shown_is_finished_by_who_took_it(
    db: Database, tmp_path: Path
) -> None:
    """Attended transfer 125 -> 126 (Asterisk 22's *2) and a phone forwarding to a mobile: the call registered
    while 125 rang is finished once, by 126, with the whole talk time; no call is left open in the portal."""
    scenarios = ("attended-transfer", "forwarded-to-mobile")
    for scenario in scenarios:  # where MixMonitor wrote them
        name = Path(load_expected(scenario, LIVE_TRACES_DIR)["recording_file"]).name
        (tmp_path / name).write_bytes(b"RIFF" + bytes(64))
    async with fake_portal() as fake:
        fake.users.update({u.id: u for u in LIVE_USERS})
        sink = await install(db, fake, settings_for(fake), tmp_path)
        async with ConnectorService([sink], OutboxRepository(db), FAST, node="a") as connectors:
            service = CallService(db, CallsSettings(), PartyRepository(db), tap=connectors.tap)
            for i, scenario in enumerate(scenarios):
                for item in load_messages(scenario, LIVE_TRACES_DIR):
                    at = BASE_TIME + timedelta(seconds=item.t + 60 * i)
                    await service.on_event("pbx1", item.message, at)
                await service.flush()
            await wait_until(lambda: settled(db), limit=30)
    transfer = load_expected("attended-transfer", LIVE_TRACES_DIR)
    forwarded = load_expected("forwarded-to-mobile", LIVE_TRACES_DIR)
    by_external = {a.external_call_id: a for a in fake.activities}
    assert len(fake.activities) == 2, fake.activities  # the consultation 125 -> 126 is internal: no call
    assert set(by_external) == {transfer["linkedid"], forwarded["linkedid"]}
    # Registered to 125, whose phone rang first and showed the card ...
    (registered,) = [r for r in fake.registrations.values() if r.external_call_id == transfer["linkedid"]]
    assert registered.user_id == 25
    assert registered.params["SHOW"] == 1
    # ... finished by 126, who took the transfer and ended the call.
    taken = by_external[transfer["linkedid"]]
    assert (taken.user_id, taken.status_code) == (26, "200")
    assert abs(taken.duration - transfer["talk_seconds"]) <= 1
    assert taken.records == [Path(transfer["recording_file"]).name]
    mobile = by_external[forwarded["linkedid"]]
    assert (mobile.user_id, mobile.status_code) == (27, "200")
    assert abs(mobile.duration - forwarded["talk_seconds"]) <= 1
    assert all(r.finished for r in fake.registrations.values()), "a registered call was left open"


def _master(tmp_path: Path) -> Path:
    legs = [leg for s in SCENARIOS for leg in legs_of_stream(load_jsonl(TRACES_DIR / f"{s}.jsonl"))]
    return write_master_csv(tmp_path / "Master.csv", legs, MOSCOW)


async def test_backfilled_calls_reach_bitrix24_once_also_those_the_live_path_sent(
    db: Database, database_url: str, tmp_path: Path
) -> None:
    """Four calls followed live and delivered, then `crmtel backfill` over the CDR of all nine: the five calls
    crmtel missed are staged and delivered, the four it saw are not sent again — one activity per call."""
    folder = recordings(tmp_path / "monitor")
    seen = SCENARIOS[:4]
    async with fake_portal() as fake:
        b24 = settings_for(fake)
        sink = await install(db, fake, b24, folder)
        async with ConnectorService([sink], OutboxRepository(db), FAST, node="a") as connectors:
            service = CallService(db, CallsSettings(), PartyRepository(db), tap=connectors.tap)
            for scenario in seen:  # at the times the PBX logged them (the CDR's), so both paths name one call
                epoch = recording_epoch(load_jsonl(TRACES_DIR / f"{scenario}.jsonl"))
                assert epoch is not None
                for item in load_messages(scenario):
                    at = datetime.fromtimestamp(epoch + item.t, UTC)
                    await service.on_event("pbx1", item.message, at)
                await service.flush()
            await wait_until(lambda: settled(db), limit=30)
        assert len(fake.activities) == len(
            [s for s in seen if load_expected(s)["caller_number"] != "anonymous"]
        )
        settings = Settings(
            database_url=database_url,
            ami=AmiSettings(name="pbx1", cdr_timezone="Europe/Moscow"),
            web=WebSettings(recordings_dir=folder),
            bitrix24=b24,
        )
        args = argparse.Namespace(
            pbx="pbx1",
            cdr=f"csv:{_master(tmp_path)}",
            since="2026-11-23 22:00",
            until="2026-11-23T23:00:00+03:00",
            dry_run=False,
        )
        assert await backfill(args, settings) == 0
        states = await OutboxRepository(db).states("bitrix24")
        assert "pending" in set(states), "the backfilled calls were not staged"
        # (each ConnectorService closes its sinks when it stops: a new one per run, as a restarted crmtel has)
        async with ConnectorService([sink_for(db, b24, folder)], OutboxRepository(db), FAST, node="a"):
            await wait_until(lambda: settled(db), limit=30)
        # Backfill again: nothing new is staged, nothing is sent twice.
        assert await backfill(args, settings) == 0
        async with ConnectorService([sink_for(db, b24, folder)], OutboxRepository(db), FAST, node="a"):
            await wait_until(lambda: settled(db), limit=30)
    by_external = {a.external_call_id: a for a in fake.activities}
    assert len(by_external) == len(fake.activities), "a call was finished twice"
    wanted = {
        load_expected(s)["linkedid"] for s in SCENARIOS if load_expected(s)["caller_number"] != "anonymous"
    }
    assert set(by_external) == wanted
    assert all(r.finished for r in fake.registrations.values()), "a registered call was left open"
    assert_one_activity_per_call(fake, SCENARIOS, unrecorded=set())
