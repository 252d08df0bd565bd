"""The call store: one row per (pbx, linkedid), upserts, merges of transferred calls, live calls."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import select

from crmtel.ami.protocol import Message
from crmtel.calls.service import CallService
from crmtel.config import CallsSettings
from crmtel.domain import CallRecord, Direction, MissedReason, Outcome
from crmtel.store.calls import CallRepository
from crmtel.store.db import Database
from crmtel.store.models import TaskRow
from crmtel.store.parties import PartyRepository
from crmtel.store.tasks import MissedCall, TaskRepository

T0 = datetime(2026, 11, 23, 19, 0, tzinfo=UTC)


def _record(linkedid: str, **changes: object) -> CallRecord:
    values: dict[str, object] = {
        "pbx": "pbx1",
        "linkedid": linkedid,
        "direction": Direction.INBOUND,
        "caller_number": "+79161110001",
        "caller_name": "Иван Петров",
        "dialled": "4951234567",
        "started_at": T0,
    }
    values.update(changes)
    return CallRecord(**values)  # type: ignore[arg-type]


async def test_upsert_keeps_one_row_per_call_and_the_latest_values(db: Database) -> None:
    """Writing a call again updates its row (same id); the live state goes once the call ended."""
    calls = CallRepository(db)
    first = await calls.upsert(_record("1.1", rang=("101",)), {"v": 1})
    final = _record(
        "1.1",
        rang=("101", "102"),
        outcome=Outcome.MISSED,
        missed_reason=MissedReason.NO_ANSWER,
        ended_at=T0 + timedelta(seconds=9),
        ring_seconds=9.0,
    )
    again = await calls.upsert(final, None)
    assert first == again
    stored = await calls.get("pbx1", "1.1")
    assert stored is not None
    assert stored.live_state is None
    assert stored.record.rang == ("101", "102")
    assert stored.record.missed_reason is MissedReason.NO_ANSWER
    assert stored.record.caller_name == "Иван Петров"
    assert stored.record.started_at == T0
    assert await calls.count() == {("pbx1", "1.1"): 1}


async def test_upsert_many_with_repeats_of_one_call_keeps_the_last(db: Database) -> None:
    """A batch that holds two versions of one call writes one row with the later version."""
    calls = CallRepository(db)
    await calls.upsert_many(
        [(_record("2.1"), {"n": 1}), (_record("2.2"), {}), (_record("2.1", queue="retail"), {})]
    )
    assert await calls.count() == {("pbx1", "2.1"): 1, ("pbx1", "2.2"): 1}
    stored = await calls.get("pbx1", "2.1")
    assert stored is not None
    assert stored.record.queue == "retail"


async def test_live_returns_only_unfinished_calls_with_state(db: Database) -> None:
    """Restart recovery reads the calls still live, with their tracker state."""
    calls = CallRepository(db)
    await calls.upsert(_record("3.1"), {"legs": ["a"]})
    await calls.upsert(_record("3.2", ended_at=T0, outcome=Outcome.ANSWERED), None)
    live = await calls.live("pbx1")
    assert [(s.record.linkedid, s.live_state) for s in live] == [("3.1", {"legs": ["a"]})]


async def test_merge_folds_the_old_row_and_its_tasks_into_the_new_call(db: Database) -> None:
    """After a transfer merged two calls, the old row is gone and what pointed at it points at the new one."""
    calls = CallRepository(db)
    old_id = await calls.upsert(_record("4.1"), {})
    new_id = await calls.upsert(_record("4.2"), {})
    task = await TaskRepository(db).record_missed(
        MissedCall("+79161110001", old_id, None, None, None, "Call back", T0, T0)
    )
    await calls.merge("pbx1", "4.1", "4.2")
    assert await calls.count() == {("pbx1", "4.2"): 1}
    async with db.session() as session:
        row = (await session.execute(select(TaskRow).where(TaskRow.id == task.id))).scalar_one()
        assert row.call_id == new_id


async def test_merge_into_an_unseen_call_renames_the_row(db: Database) -> None:
    """When only the old call was stored, merging renames it to the surviving linkedid."""
    calls = CallRepository(db)
    await calls.upsert(_record("5.1"), {})
    await calls.merge("pbx1", "5.1", "5.9")
    assert await calls.count() == {("pbx1", "5.9"): 1}


async def test_calls_between_filters_on_start_time(db: Database) -> None:
    """Listing by period uses the start time, start inclusive and end exclusive."""
    calls = CallRepository(db)
    await calls.upsert(_record("6.1", started_at=T0), None)
    await calls.upsert(_record("6.2", started_at=T0 + timedelta(hours=2)), None)
    got = await calls.between(T0, T0 + timedelta(hours=2))
    assert [s.record.linkedid for s in got] == ["6.1"]


def _chan(event: str, name: str, uid: str, lid: str, num: str, state: str = "6") -> Message:
    return Message(
        (
            ("Event", event),
            ("Privilege", "call,all"),
            ("Channel", name),
            ("ChannelState", state),
            ("CallerIDNum", num),
            ("CallerIDName", "<unknown>"),
            ("Context", "from-trunk" if "trunk" in name else "from-phones"),
            ("Exten", "4951234567"),
            ("Uniqueid", uid),
            ("Linkedid", lid),
        )
    )


async def test_linkedid_merge_folds_the_old_call_into_the_surviving_one(db: Database) -> None:
    """When every channel of a call moves to another Linkedid (a transfer), one row survives."""
    service = CallService(db, CallsSettings(create_leads_for_unknown=False), PartyRepository(db))
    at = T0
    for message in (
        _chan("Newchannel", "PJSIP/trunk-00000001", "100.1", "100.1", "79161110001", "4"),
        _chan("Newchannel", "PJSIP/102-00000003", "200.1", "200.1", "102", "6"),
    ):
        at += timedelta(seconds=1)
        await service.on_event("pbx1", message, at)
    await service.flush()
    calls = CallRepository(db)
    assert set(await calls.count()) == {("pbx1", "100.1"), ("pbx1", "200.1")}
    await service.on_event(
        "pbx1", _chan("Newstate", "PJSIP/trunk-00000001", "100.1", "200.1", "79161110001"), at
    )
    await service.flush()
    assert await calls.count() == {("pbx1", "200.1"): 1}
    for message in (
        _chan("Hangup", "PJSIP/trunk-00000001", "100.1", "200.1", "79161110001"),
        _chan("Hangup", "PJSIP/102-00000003", "200.1", "200.1", "102"),
    ):
        at += timedelta(seconds=1)
        await service.on_event("pbx1", message, at)
    await service.flush()
    assert await calls.count() == {("pbx1", "200.1"): 1}
    stored = await calls.get("pbx1", "200.1")
    assert stored is not None
    assert stored.record.ended_at is not None
