"""Asterisk killed mid-call (kill -9: no Hangup, no CDR), over real TCP: fake AMI server -> client -> tracker ->
database. The call ends when the connection dropped, not when crmtel logged in to the restarted PBX."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from crmtel.ami.client import AmiClient
from crmtel.calls.service import CallService
from crmtel.config import CallsSettings
from crmtel.domain import CallRecord
from crmtel.fakepbx.server import FakeAmiServer, load_ami
from crmtel.store.calls import CallRepository
from crmtel.store.db import Database
from crmtel.store.parties import PartyRepository
from tests.fixtures.daemon import first_hangup
from tests.fixtures.fake_ami import running, settings_for, wait_for, wait_until

T0 = datetime(2026, 12, 6, 10, 0, 0, tzinfo=UTC)


@dataclass
class ManualClock:
    """One clock for the PBX and crmtel (events carry no Timestamp): time moves only when the test says."""

    now: datetime = T0

    def __call__(self) -> datetime:
        return self.now

    def epoch(self) -> float:
        return self.now.timestamp()


async def _stored(calls: CallRepository) -> CallRecord | None:
    stored = await calls.between()
    return stored[0].record if len(stored) == 1 else None


async def _talking(calls: CallRepository) -> bool:
    record = await _stored(calls)
    return record is not None and record.answered_by is not None


async def _ended(calls: CallRepository) -> bool:
    record = await _stored(calls)
    return record is not None and record.ended_at is not None


async def _crash_mid_talk(
    db: Database, traces_dir: Path, *, restart: bool, booting: bool = False
) -> CallRecord:
    """``direct-answered`` up to its talk; 5 s later the PBX is killed, or only the connection is cut; the
    PBX comes back (or is reached again) 55 s after that (``booting``: crmtel logs in before it has fully
    booted, its FullyBooted comes later). The stored record once the call is over."""
    stream = load_ami(traces_dir / "direct-answered.ami")
    clock = ManualClock()
    server = FakeAmiServer(stream, pause_after=first_hangup(stream), timestamps=False, wall=clock.epoch)
    await server.start()
    service = CallService(db, CallsSettings(), PartyRepository(db))
    client = AmiClient(settings_for(server), service, clock=clock)
    calls = CallRepository(db)
    try:
        async with running(client):
            await wait_until(lambda: _talking(calls))
            await wait_for(
                lambda: server.cursor == server.pause_after and client.idle and not service.pending
            )
            clock.now = T0 + timedelta(seconds=5)
            if restart:
                await server.crash()
            else:
                server.drop_all()
            await wait_for(lambda: service.state_of("pbx1").lost_at is not None and client.idle)
            clock.now = T0 + timedelta(seconds=60)
            if restart:
                server.booting = booting
                await server.restart()
                if booting:
                    await wait_for(lambda: server.logins == 2)
                    await server.finish_boot()
            else:
                await wait_for(lambda: client.connected.is_set())
                server.resume()
            await wait_until(lambda: _ended(calls))
    finally:
        await server.close()
    record = await _stored(calls)
    assert record is not None
    return record


async def test_call_up_when_the_pbx_is_killed_ends_when_the_connection_dropped(
    db: Database, traces_dir: Path
) -> None:
    """Killed 5 s into the talk, back 55 s later: the call ended at the drop (talk 5 s, not 60 s)."""
    record = await _crash_mid_talk(db, traces_dir, restart=True)
    assert record.answered_by == "101"
    assert record.ended_at == T0 + timedelta(seconds=5)
    assert record.talk_seconds == pytest.approx(5.0, abs=0.01)


async def test_call_up_when_only_the_connection_drops_goes_on_until_its_hangup(
    db: Database, traces_dir: Path
) -> None:
    """The PBX stayed up: the call is still listed after the reconnect and ends with its own Hangup."""
    record = await _crash_mid_talk(db, traces_dir, restart=False)
    assert record.answered_by == "101"
    assert record.ended_at == T0 + timedelta(seconds=60)


async def test_a_killed_pbx_still_booting_at_the_login_still_ends_the_call_at_the_drop(
    db: Database, traces_dir: Path
) -> None:
    """crmtel logs in to the restarted PBX before it has fully booted: the listing waits for its FullyBooted
    (the Uptime that says it restarted), so the call still ends at the drop."""
    record = await _crash_mid_talk(db, traces_dir, restart=True, booting=True)
    assert record.ended_at == T0 + timedelta(seconds=5)
