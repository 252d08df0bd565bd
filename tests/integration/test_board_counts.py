"""The board's today counts come from the store by the reports' definitions, and reach heads on refresh."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta

from crmtel.board.models import TodayCounts
from crmtel.board.service import BoardService, StoreCounts
from crmtel.domain import Direction, Outcome
from crmtel.push.hub import Connection, Hub
from crmtel.reports.models import Period
from crmtel.store.calls import CallRepository
from crmtel.store.db import Database
from tests.fixtures import queue_dataset as qd
from tests.fixtures.report_dataset import msk

MONDAY = Period(date(2026, 11, 2), date(2026, 11, 3), qd.TZ)


class _NoNames:
    async def name_of(self, extension: str) -> str | None:
        return None


async def test_today_counts_answered_missed_and_called_back(db: Database) -> None:
    """Monday: q.5, q.6, q.9 answered; q.4, q.8 missed; an answered call back to q.4's number counts once."""
    await qd.load(db)
    counts, queues = await StoreCounts(db).today(MONDAY)
    assert counts == TodayCounts(answered=3, missed=2, called_back=0)
    assert queues == {"retail", "wholesale"}
    q4 = next(c for c in qd.CALLS if c.linkedid == "q.4")
    back = replace(
        q4,
        linkedid="cb.1",
        direction=Direction.OUTBOUND,
        dialled=q4.caller_number,
        caller_number="102",
        started_at=msk(2, 12),
        outcome=Outcome.ANSWERED,
        missed_reason=None,
        answered_by="102",
        answered_at=msk(2, 12, 0, 5),
        ended_at=msk(2, 12, 1),
        talk_seconds=55.0,
        queue_visits=(),
    )
    await CallRepository(db).upsert_many([(back, None)])
    counts, _ = await StoreCounts(db).today(MONDAY)
    assert counts == TodayCounts(answered=4, missed=2, called_back=1)


async def test_refresh_sends_heads_the_counts_and_a_new_day_starts_from_zero(db: Database) -> None:
    """The counts reach a head's connection (never a plain manager's); the next local day shows zeros again."""
    await qd.load(db)
    now = [datetime(2026, 11, 2, 15, 0, tzinfo=UTC)]
    hub = Hub()
    head = hub.connect(1, (), everyone=True)
    manager = hub.connect(2, ("102",))
    async with BoardService(hub, _NoNames(), StoreCounts(db), timezone=qd.TZ, clock=lambda: now[0]) as board:
        await _until(head, '"answered":3')
        assert board.message()["today"] == {"answered": 3, "missed": 2, "called_back": 0}
        assert hub.to_everyone(board.message()) == 1  # the head only: a plain manager never gets the board
        assert not manager.closed
        now[0] += timedelta(days=2)  # Wednesday: nothing stored
        await board.refresh()
        await _until(head, '"answered":0')
        assert board.message()["queues"] == []


async def _until(conn: Connection, text: str) -> None:
    async with asyncio.timeout(5):
        while True:
            frames = await conn.next_frames()
            assert frames is not None
            if any(text in f for f in frames):
                return


async def test_counts_on_start_and_stored_calls_wake_the_refresh_at_once(db: Database) -> None:
    """The board reads today's counts when it starts; calls_stored() re-reads them now, not at the 30 s tick."""
    await qd.load(db)
    hub = Hub()
    monday = datetime(2026, 11, 2, 15, 0, tzinfo=UTC)
    head = hub.connect(1, (), everyone=True)
    async with BoardService(hub, _NoNames(), StoreCounts(db), timezone=qd.TZ, clock=lambda: monday) as board:
        await _until(head, '"answered":3')
        await CallRepository(db).upsert_many([(replace(qd.CALLS[5], linkedid="more.1"), None)])
        board.calls_stored(1)
        await _until(head, '"answered":4')
