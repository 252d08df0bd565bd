"""Missed calls become callback tasks for the right manager; unknown callers become one lead each."""

from __future__ import annotations

import random
from pathlib import Path

from sqlalchemy import func, select

from crmtel.calls.commands import replay_stream
from crmtel.config import CallsSettings, Settings
from crmtel.domain import CallEnded, CallEvent, Outcome, PartyKind
from crmtel.fakepbx.server import Recorded, load_ami
from crmtel.fakepbx.simulator import Pattern, Rewriter
from crmtel.store.calls import CallRepository
from crmtel.store.db import Database
from crmtel.store.managers import ManagerRepository
from crmtel.store.models import LeadRow
from crmtel.store.parties import NewClient, PartyRepository
from crmtel.store.tasks import LEAD_SOURCE_PHONE, TaskRepository


def _settings(db: Database, **calls: object) -> Settings:
    return Settings(database_url=db.url, calls=CallsSettings.model_validate(calls))


def _again(stream: list[Recorded], serial: int) -> list[Recorded]:
    """The same call placed again later (new Linkedid and channels, same caller)."""
    rewriter = Rewriter(random.Random(serial))
    return rewriter.rewrite(Pattern("again", tuple(stream)), start=0.0, epoch=1_795_470_000.0 + serial)


async def _leads(db: Database) -> list[LeadRow]:
    async with db.session() as session:
        return list((await session.execute(select(LeadRow))).scalars())


async def _lead_count(db: Database) -> int:
    async with db.session() as session:
        return int((await session.execute(select(func.count()).select_from(LeadRow))).scalar_one())


async def test_repeated_missed_call_updates_one_task_and_unknown_caller_is_one_lead(
    db: Database, traces_dir: Path
) -> None:
    """Two missed calls from one unknown number: one lead (source phone call), one task, missed_count 2."""
    managers = ManagerRepository(db)
    anna = await managers.save(login="anna", name="Анна Смирнова", extensions=("101",))
    settings = _settings(db, default_owner="anna", callback_due_minutes=15)
    stream = load_ami(traces_dir / "direct-caller-gives-up.ami")

    await replay_stream(settings, db, stream, settle=0.05)
    tasks = await TaskRepository(db).open_tasks()
    assert [(t.phone, t.missed_count, t.manager_id) for t in tasks] == [("+79161110001", 1, anna.id)]
    leads = await _leads(db)
    assert [(lead.name, lead.source) for lead in leads] == [("Ivan Petrov", LEAD_SOURCE_PHONE)]
    stored = await CallRepository(db).between()
    assert stored[0].record.party_kind is PartyKind.LEAD
    assert stored[0].record.party_id == leads[0].id
    ended_at = stored[0].record.ended_at
    assert ended_at is not None
    assert (tasks[0].due_at.replace(tzinfo=None) - ended_at.replace(tzinfo=None)).total_seconds() == 15 * 60

    # A new missed call from the same number: the open task counts it.
    await replay_stream(settings, db, _again(stream, 1), settle=0.05)
    tasks = await TaskRepository(db).open_tasks()
    assert [(t.phone, t.missed_count, t.party_kind) for t in tasks] == [("+79161110001", 2, PartyKind.LEAD)]
    assert await _lead_count(db) == 1
    assert len(await CallRepository(db).between()) == 2


async def test_replaying_an_ended_missed_call_counts_nothing_new(db: Database, traces_dir: Path) -> None:
    """The very same events again (a replay, a resync): the open task still counts one missed call."""
    await ManagerRepository(db).save(login="anna", name="Анна Смирнова", extensions=("101",))
    settings = _settings(db, default_owner="anna", callback_due_minutes=15)
    stream = load_ami(traces_dir / "direct-caller-gives-up.ami")
    await replay_stream(settings, db, stream, settle=0.05)
    await replay_stream(settings, db, stream, settle=0.05)
    assert [t.missed_count for t in await TaskRepository(db).open_tasks()] == [1]
    assert len(await CallRepository(db).between()) == 1
    assert await _lead_count(db) == 1


async def test_missed_call_of_a_client_goes_to_the_personal_manager_without_a_lead(
    db: Database, traces_dir: Path
) -> None:
    """A known client's missed call is a task for the client's personal manager; no lead is created."""
    managers = ManagerRepository(db)
    await managers.save(login="anna", name="Anna", extensions=("101",))
    vera = await managers.save(login="vera", name="Vera", extensions=("103",))
    client = await PartyRepository(db).add_client(
        NewClient(name="ИП Петров", phones=("+79161110001",), manager_id=vera.id)
    )
    await replay_stream(
        _settings(db, default_owner="anna"), db, load_ami(traces_dir / "direct-caller-gives-up.ami")
    )
    tasks = await TaskRepository(db).open_tasks()
    assert [(t.manager_id, t.party_kind, t.party_id) for t in tasks] == [
        (vera.id, PartyKind.CLIENT, client.id)
    ]
    assert await _lead_count(db) == 0
    record = (await CallRepository(db).between())[0].record
    assert (record.party_kind, record.party_id, record.party_name) == (
        PartyKind.CLIENT,
        client.id,
        "ИП Петров",
    )


async def test_abandoned_queue_call_of_an_unknown_caller_goes_to_the_queue_owner(
    db: Database, traces_dir: Path
) -> None:
    """With no responsible manager, the queue's owner gets the callback task."""
    managers = ManagerRepository(db)
    boris = await managers.save(login="boris", name="Boris", extensions=("102",))
    await managers.save(login="anna", name="Anna", extensions=("101",))
    settings = _settings(db, queue_owners={"retail": "boris"}, default_owner="anna")
    await replay_stream(settings, db, load_ami(traces_dir / "queue-abandoned.ami"), settle=0.05)
    tasks = await TaskRepository(db).open_tasks()
    assert [(t.phone, t.manager_id) for t in tasks] == [("+79037654321", boris.id)]


async def test_answered_calls_make_no_task_and_carry_the_answering_manager(
    db: Database, traces_dir: Path
) -> None:
    """An answered call opens no task; the row names the manager whose extension answered."""
    boris = await ManagerRepository(db).save(login="boris", name="Boris", extensions=("102",))
    await replay_stream(_settings(db), db, load_ami(traces_dir / "anonymous-caller.ami"), settle=0.05)
    assert await TaskRepository(db).open_tasks() == []
    record = (await CallRepository(db).between())[0].record
    assert record.outcome is Outcome.ANSWERED
    assert record.manager_id == boris.id
    # A hidden number can become neither a lead nor a callback.
    assert await _lead_count(db) == 0


class _Collect:
    def __init__(self) -> None:
        self.events: list[CallEvent] = []

    async def publish(self, event: CallEvent) -> None:
        self.events.append(event)


class _Broken:
    async def publish(self, event: CallEvent) -> None:
        raise RuntimeError("push is down")


async def test_live_events_reach_the_notifier_and_a_broken_notifier_changes_nothing(
    db: Database, traces_dir: Path
) -> None:
    """The notifier sees the queue join, ringing, the final record; when it fails, records are still stored."""
    stream = load_ami(traces_dir / "queue-ringall-answered.ami")
    seen = _Collect()
    await replay_stream(_settings(db), db, stream, notifier=seen, settle=0.05)
    kinds = [type(e).__name__ for e in seen.events]
    # The caller joins the retail queue before any phone rings (the heads' board hears of it).
    assert kinds[:2] == ["CallQueued", "CallRinging"]
    assert isinstance(seen.events[-1], CallEnded)
    assert seen.events[-1].record.answered_by == "103"
    await replay_stream(_settings(db), db, _again(stream, 2), notifier=_Broken(), settle=0.05)
    assert len(await CallRepository(db).between()) == 2


async def test_outbound_call_is_matched_to_the_client_it_dialled(db: Database, traces_dir: Path) -> None:
    """A manager's call to ``8916…`` (national format) is stored against the client owning +7916…."""
    client = await PartyRepository(db).add_client(NewClient(name="ИП Петров", phones=("+79161110001",)))
    await replay_stream(_settings(db), db, load_ami(traces_dir / "outbound-answered.ami"), settle=0.05)
    record = (await CallRepository(db).between())[0].record
    assert (record.party_kind, record.party_id, record.party_name) == (
        PartyKind.CLIENT,
        client.id,
        "ИП Петров",
    )
    assert await TaskRepository(db).open_tasks() == []
