"""Callback tasks close themselves on a later answered call to or from the same number (recorded traces
through the fake AMI server and the real pipeline), name that call, and a later miss opens a new task."""

from __future__ import annotations

import random
from dataclasses import replace
from datetime import timedelta
from pathlib import Path

from crmtel.calls.commands import replay_stream
from crmtel.calls.service import CallService
from crmtel.cdr.merge import corrected
from crmtel.config import CallsSettings, ReportsSettings, Settings
from crmtel.domain import Direction, Outcome
from crmtel.fakepbx.server import Recorded, load_ami
from crmtel.fakepbx.simulator import Pattern, Rewriter
from crmtel.store.callbacks import CallbackRepository, TaskView
from crmtel.store.calls import CallRepository
from crmtel.store.db import Database
from crmtel.store.managers import ManagerRepository
from crmtel.store.parties import PartyRepository

EPOCH = 1_795_470_000.0


def _settings(db: Database, digits: int = 10) -> Settings:
    return Settings(
        database_url=db.url,
        calls=CallsSettings(default_owner="anna"),
        reports=ReportsSettings(callback_match_digits=digits),
    )


def _at(stream: list[Recorded], minutes: float, serial: int) -> list[Recorded]:
    """The recorded call placed again ``minutes`` after EPOCH (new Linkedids, same numbers)."""
    rewriter = Rewriter(random.Random(serial))
    calls = rewriter.rewrite(Pattern("again", tuple(stream)), start=0.0, epoch=EPOCH + minutes * 60)
    # Without the recorder's login event (its EventTV) the fake server dates the stream by its Uniqueids.
    return [item for item in calls if not any(k == "EventTV" for k, _ in item.headers)]


async def _tasks(db: Database) -> list[TaskView]:
    return await CallbackRepository(db).tasks(status=None)


async def _call_id(db: Database, direction: Direction) -> str:
    stored = [s.record for s in await CallRepository(db).between() if s.record.direction is direction]
    assert len(stored) == 1
    return f"{stored[0].pbx}:{stored[0].linkedid}"


async def test_answered_outbound_call_in_national_format_closes_the_task(
    db: Database, traces_dir: Path
) -> None:
    """Missed from +79161110001, then 101 dials 89161110001 and the client answers: the task is closed by it."""
    await ManagerRepository(db).save(login="anna", name="Anna", extensions=("101",))
    settings = _settings(db)
    missed = load_ami(traces_dir / "direct-caller-gives-up.ami")
    await replay_stream(settings, db, _at(missed, 0, 1), settle=0.05)
    (task,) = await _tasks(db)
    assert (task.phone, task.status, task.missed_count) == ("+79161110001", "open", 1)

    outbound = load_ami(traces_dir / "outbound-answered.ami")
    await replay_stream(settings, db, _at(outbound, 10, 2), settle=0.05)
    (task,) = await _tasks(db)
    assert task.status == "closed"
    assert task.closed_by_call == await _call_id(db, Direction.OUTBOUND)
    assert task.closed_at is not None
    assert task.closed_at > task.first_missed_at


async def test_answered_inbound_call_from_the_client_closes_the_task(db: Database, traces_dir: Path) -> None:
    """Missed, then the client gets through and 101 answers: the task is closed by that inbound call."""
    await ManagerRepository(db).save(login="anna", name="Anna", extensions=("101",))
    settings = _settings(db)
    await replay_stream(
        settings, db, _at(load_ami(traces_dir / "direct-caller-gives-up.ami"), 0, 1), settle=0.05
    )
    await replay_stream(settings, db, _at(load_ami(traces_dir / "direct-answered.ami"), 5, 2), settle=0.05)
    (task,) = await _tasks(db)
    assert task.status == "closed"
    closer = [s.record for s in await CallRepository(db).between() if s.record.answered_by]
    assert task.closed_by_call == f"{closer[0].pbx}:{closer[0].linkedid}"


async def test_second_miss_counts_then_answer_closes_and_a_new_miss_opens_a_new_task(
    db: Database, traces_dir: Path
) -> None:
    """Two misses raise missed_count on one task; the answered call closes it; the next miss opens another."""
    await ManagerRepository(db).save(login="anna", name="Anna", extensions=("101",))
    settings = _settings(db)
    missed = load_ami(traces_dir / "direct-caller-gives-up.ami")
    await replay_stream(settings, db, _at(missed, 0, 1), settle=0.05)
    await replay_stream(settings, db, _at(missed, 2, 2), settle=0.05)
    (task,) = await _tasks(db)
    assert (task.status, task.missed_count) == ("open", 2)
    await replay_stream(settings, db, _at(load_ami(traces_dir / "outbound-answered.ami"), 4, 3), settle=0.05)
    await replay_stream(settings, db, _at(missed, 6, 4), settle=0.05)
    tasks = sorted(await _tasks(db), key=lambda t: t.id)
    assert [(t.status, t.missed_count) for t in tasks] == [("closed", 2), ("open", 1)]
    assert tasks[1].first_missed_at > (tasks[0].closed_at or tasks[0].first_missed_at)


async def test_an_answered_call_before_the_miss_closes_nothing(db: Database, traces_dir: Path) -> None:
    """Only a LATER answered call closes a task: a call that ended before the miss leaves it open."""
    await ManagerRepository(db).save(login="anna", name="Anna", extensions=("101",))
    settings = _settings(db)
    await replay_stream(settings, db, _at(load_ami(traces_dir / "outbound-answered.ami"), 0, 1), settle=0.05)
    await replay_stream(
        settings, db, _at(load_ami(traces_dir / "direct-caller-gives-up.ami"), 3, 2), settle=0.05
    )
    (task,) = await _tasks(db)
    assert task.status == "open"


async def test_numbers_compare_on_the_configured_digits(db: Database, traces_dir: Path) -> None:
    """With callback_match_digits = 0 (exact), the national-format callback still closes (both are E.164)."""
    await ManagerRepository(db).save(login="anna", name="Anna", extensions=("101",))
    settings = _settings(db, digits=0)
    await replay_stream(
        settings, db, _at(load_ami(traces_dir / "direct-caller-gives-up.ami"), 0, 1), settle=0.05
    )
    await replay_stream(settings, db, _at(load_ami(traces_dir / "outbound-answered.ami"), 1, 2), settle=0.05)
    (task,) = await _tasks(db)
    assert task.status == "closed"


async def test_a_missed_call_the_cdr_finds_answered_closes_the_task_it_opened(
    db: Database, traces_dir: Path
) -> None:
    """The caller gave up — as crmtel saw it — and a task opened; the CDR later says 101 answered (a resync
    after a fault closed the call as missed): the backfill's correction closes that task, named by the call.
    The correction back (answered -> missed) opens a task again: tasks follow the call's true outcome."""
    await ManagerRepository(db).save(login="anna", name="Anna", extensions=("101",))
    settings = _settings(db)
    await replay_stream(
        settings, db, _at(load_ami(traces_dir / "direct-caller-gives-up.ami"), 0, 1), settle=0.05
    )
    (task,) = await _tasks(db)
    assert (task.status, task.missed_count) == ("open", 1)
    (stored,) = await CallRepository(db).between()
    seen = stored.record
    assert seen.outcome is Outcome.MISSED
    assert seen.ended_at is not None
    cdr = replace(
        seen,
        answered_by="101",
        answered_at=seen.started_at + timedelta(seconds=3),
        # The CDR's clock puts the end a moment before the one crmtel saw.
        ended_at=seen.ended_at - timedelta(seconds=1),
        # What a record built from CDR legs carries (a record read back from the store has no extras).
        extra={"party_number": "+79161110001"},
    )
    better = corrected(seen, cdr)
    assert better is not None
    assert better.outcome is Outcome.ANSWERED
    calls = CallService(
        db, settings.calls, PartyRepository(db), match_digits=settings.reports.callback_match_digits
    )
    await calls.record_ended(seen.pbx, better)
    await calls.flush()
    (task,) = await _tasks(db)
    assert task.status == "closed"
    assert task.closed_by_call == f"{seen.pbx}:{seen.linkedid}"

    await calls.record_ended(seen.pbx, seen)
    await calls.flush()
    tasks = sorted(await _tasks(db), key=lambda t: t.id)
    assert [(t.status, t.missed_count) for t in tasks] == [("closed", 1), ("open", 1)]


async def test_a_call_corrected_without_changing_its_outcome_touches_no_task(
    db: Database, traces_dir: Path
) -> None:
    """A CDR correction of the times alone (missed stays missed) neither counts the miss again nor opens a
    second task."""
    await ManagerRepository(db).save(login="anna", name="Anna", extensions=("101",))
    settings = _settings(db)
    await replay_stream(
        settings, db, _at(load_ami(traces_dir / "direct-caller-gives-up.ami"), 0, 1), settle=0.05
    )
    (stored,) = await CallRepository(db).between()
    seen = stored.record
    assert seen.ended_at is not None
    calls = CallService(db, settings.calls, PartyRepository(db))
    await calls.record_ended(seen.pbx, replace(seen, ended_at=seen.ended_at + timedelta(seconds=4)))
    await calls.flush()
    (task,) = await _tasks(db)
    assert (task.status, task.missed_count) == ("open", 1)
