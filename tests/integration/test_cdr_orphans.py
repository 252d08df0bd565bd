"""A resync's orphan pass closes only calls nobody follows: never one whose end is being written meanwhile."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest

from crmtel.calls.service import CallService
from crmtel.cdr.service import CdrService
from crmtel.config import CallsSettings
from crmtel.store.calls import CallRepository, StoredCall
from crmtel.store.db import Database
from crmtel.store.parties import PartyRepository
from crmtel.store.watermarks import WatermarkRepository
from tests.fixtures.traces import BASE_TIME, TimedMessage, load_expected, load_messages


class _HangupDuringFlush(CallService):
    """Tracking goes on while a flush commits: the call's Hangup is handled during the next flush's write."""

    def __init__(self, db: Database, pbx: str, hangup: list[TimedMessage]) -> None:
        super().__init__(db, CallsSettings(), PartyRepository(db))
        self.pbx = pbx
        self.hangup = hangup

    async def flush(self, *, keep_waiting: bool = False) -> None:
        await super().flush(keep_waiting=keep_waiting)
        hangup, self.hangup = self.hangup, []
        for item in hangup:
            await self.on_event(self.pbx, item.message, BASE_TIME + timedelta(seconds=item.t))


class _HeldLiveRead(CallRepository):
    """The store's live calls, handed back only once the test lets the read finish (a slow, loaded store)."""

    def __init__(self, db: Database) -> None:
        super().__init__(db)
        self.read = asyncio.Event()
        self.release = asyncio.Event()

    async def live(self, pbx: str) -> list[StoredCall]:
        rows = await super().live(pbx)
        self.read.set()
        await self.release.wait()
        return rows


async def test_a_call_whose_end_is_written_while_the_pass_reads_the_store_keeps_its_true_end(
    db: Database,
) -> None:
    """The pass reads the live calls; meanwhile the call hangs up and its end is written. It was followed all
    along: its row keeps the Hangup's time and its talk, not the resync's time (talk 0, ended before answered)."""
    pbx = "pbx1"
    expected = load_expected("direct-answered")
    messages = load_messages("direct-answered")
    answered = next(m for m in messages if m.message.event == "DialEnd").t
    calls = _HangupDuringFlush(db, pbx, [m for m in messages if m.t > answered])
    for item in messages:
        if item.t <= answered:
            await calls.on_event(pbx, item.message, BASE_TIME + timedelta(seconds=item.t))
    calls.calls = CallRepository(db)
    await CallService.flush(calls)
    assert len(await CallRepository(db).live(pbx)) == 1
    held = _HeldLiveRead(db)
    calls.calls = held
    cdr = CdrService(calls, WatermarkRepository(db), {}, {})
    at = BASE_TIME + timedelta(seconds=answered)  # the resync the pass was asked for

    served = asyncio.create_task(cdr.serve(pbx))
    try:
        cdr.resynced(pbx, at)
        # The pass's own flush saw the Hangup handled (the call left the tracker, its end pending); while the
        # pass reads the live calls, the end is written (as the writer beside tracking does).
        await asyncio.wait_for(held.read.wait(), 10)
        assert not calls.hangup
        await calls.flush()
        held.release.set()
        await asyncio.wait_for(cdr.idle(), 10)
    finally:
        served.cancel()
        await asyncio.gather(served, return_exceptions=True)
    (stored,) = await CallRepository(db).between()
    assert stored.record.ended_at is not None
    assert stored.record.answered_at is not None
    assert stored.record.ended_at > stored.record.answered_at
    assert stored.record.talk_seconds == pytest.approx(expected["talk_seconds"], abs=0.1)
