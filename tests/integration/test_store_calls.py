"""Call rows: one per (pbx, linkedid); an ended call is never reopened by a later live version."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

from crmtel.domain import CallRecord, Direction, MissedReason, Outcome
from crmtel.store.calls import CallRepository
from crmtel.store.db import Database

START = datetime(2026, 11, 23, 19, 27, tzinfo=UTC)
LIVE = CallRecord(
    pbx="pbx1",
    linkedid="1795462399.96",
    direction=Direction.INBOUND,
    caller_number="+79161110001",
    caller_name="Ivan Petrov",
    dialled="4951234567",
    started_at=START,
    rang=("101",),
)
ENDED = replace(
    LIVE,
    outcome=Outcome.MISSED,
    missed_reason=MissedReason.CALLER_HUNG_UP_RINGING,
    ended_at=START + timedelta(seconds=3),
    ring_seconds=3.0,
)


async def test_live_version_does_not_reopen_an_ended_call(db: Database) -> None:
    """Seeing a finished call's events again (replay, resync) leaves its stored end as it was."""
    calls = CallRepository(db)
    first = await calls.upsert(ENDED, None)
    await calls.upsert(LIVE, {"state": "ringing"})
    stored = await calls.between()
    assert [s.record for s in stored] == [ENDED]
    assert stored[0].id == first


async def test_ended_version_updates_a_live_call_once(db: Database) -> None:
    """A live row is completed by its ended version, in place: still one row."""
    calls = CallRepository(db)
    live_id = await calls.upsert(LIVE, {"state": "ringing"})
    ended_id = await calls.upsert(ENDED, None)
    assert live_id == ended_id
    assert [s.record.outcome for s in await calls.between()] == [Outcome.MISSED]
