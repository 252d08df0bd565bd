"""Every stored call has an owner, and its callback task goes to that owner: recorded Asterisk 22 calls served by
the fake AMI server to the real client, tracker and store (``crmtel.calls.owner``)."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest

from crmtel.calls.commands import replay_stream
from crmtel.cli import main
from crmtel.config import CallsSettings, Settings
from crmtel.demo.people import seed_people
from crmtel.domain import CallRecord, Outcome
from crmtel.fakepbx.server import load_ami
from crmtel.reports.models import UNASSIGNED, Period
from crmtel.reports.queries import ReportQueries
from crmtel.store.calls import CallRepository
from crmtel.store.db import Database
from crmtel.store.managers import ManagerRepository
from crmtel.store.parties import NewClient, PartyRepository
from crmtel.store.tasks import TaskRepository
from tests.fixtures.traces import LIVE_TRACES_DIR, SCENARIOS
from tests.integration.test_web_app import running_app


@pytest.fixture(autouse=True)
def _restore_logging() -> Iterator[None]:
    """The CLI configures logging onto pytest's captured stderr; later tests must not write to it."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


def _settings(db: Database, **calls: object) -> Settings:
    return Settings(database_url=db.url, calls=CallsSettings.model_validate(calls))


async def _only_call(db: Database) -> CallRecord:
    stored = await CallRepository(db).between()
    assert len(stored) == 1
    return stored[0].record


async def test_a_missed_call_from_a_new_number_that_rang_one_phone_is_that_managers_task(
    db: Database, traces_dir: Path
) -> None:
    """No default owner configured, an unknown caller gives up while 101 rings: anna (101) owns the call and its
    callback task — not nobody ("Перезванивать некому")."""
    anna = await ManagerRepository(db).save(login="anna", name="Анна Смирнова", extensions=("101",))
    await replay_stream(_settings(db), db, load_ami(traces_dir / "direct-caller-gives-up.ami"), settle=0.05)
    record = await _only_call(db)
    assert (record.outcome, record.manager_id) == (Outcome.MISSED, anna.id)
    tasks = await TaskRepository(db).open_tasks()
    assert [(t.phone, t.manager_id) for t in tasks] == [("+79161110001", anna.id)]


async def test_a_managers_own_unanswered_outbound_call_is_theirs(db: Database) -> None:
    """Boris (122) dials out and nobody answers: the call is booked to boris, no callback task."""
    boris = await ManagerRepository(db).save(login="boris", name="Boris Orlov", extensions=("122",))
    await ManagerRepository(db).save(login="anna", name="Anna", extensions=("121",))
    stream = load_ami(LIVE_TRACES_DIR / "outbound-unanswered.ami")
    await replay_stream(_settings(db, default_owner="anna"), db, stream, settle=0.05)
    record = await _only_call(db)
    assert (record.answered_by, record.outcome, record.manager_id) == (None, Outcome.MISSED, boris.id)
    assert await TaskRepository(db).open_tasks() == []


async def test_a_call_forwarded_to_the_managers_mobile_is_answered_by_that_manager(db: Database) -> None:
    """Fedor's desk phone 127 forwards his client's call to his mobile through the trunk, where he answers:
    answered by 127 on the mobile's number, booked to fedor, no callback task."""
    managers = ManagerRepository(db)
    fedor = await managers.save(login="fedor", name="Fedor Volkov", extensions=("127",))
    await managers.save(login="anna", name="Anna", extensions=("121",))
    await PartyRepository(db).add_client(
        NewClient(name="Мобильный клиент", phones=("+79161110027",), manager_id=fedor.id)
    )
    stream = load_ami(LIVE_TRACES_DIR / "forwarded-to-mobile.ami")
    await replay_stream(_settings(db, default_owner="anna"), db, stream, settle=0.05)
    record = await _only_call(db)
    assert (record.answered_by, record.outcome, record.manager_id) == ("127", Outcome.ANSWERED, fedor.id)
    assert record.answered_on == "+79997770127"  # stored: the number the call was answered on
    assert await TaskRepository(db).open_tasks() == []


async def test_an_attended_transfer_is_booked_to_the_manager_who_took_over(db: Database) -> None:
    """Dina (125) answers and hands the caller over to Egor (126) with an attended transfer: egor's call."""
    managers = ManagerRepository(db)
    await managers.save(login="dina", name="Dina Popova", extensions=("125",))
    egor = await managers.save(login="egor", name="Egor Sokolov", extensions=("126",))
    stream = load_ami(LIVE_TRACES_DIR / "attended-transfer.ami")
    await replay_stream(_settings(db), db, stream, settle=0.05)
    record = await _only_call(db)
    assert (record.answered_by, record.manager_id) == ("126", egor.id)


async def test_a_managers_own_unanswered_outbound_call_is_listed_and_opened_for_them_with_its_owner(
    db: Database,
) -> None:
    """Through the web API: boris sees his own unanswered outbound call in his list and opens it (not a 404), both
    naming him as ``manager``; vera, whose phones never touched it, gets the 404 of a call that does not exist."""
    async with running_app(db) as rig:
        await ManagerRepository(db).save(login="boris", name="Boris Orlov", extensions=("102", "122"))
        stream = load_ami(LIVE_TRACES_DIR / "outbound-unanswered.ami")
        await replay_stream(_settings(db), db, stream, settle=0.05)
        async with rig.browser("boris") as boris:
            async with boris.get("/api/calls") as r:
                listed = (await r.json())["calls"]
            assert [(c["direction"], c["outcome"], c["manager"]) for c in listed] == [
                ("outbound", "missed", "boris")
            ]
            async with boris.get(f"/api/calls/{listed[0]['call_id']}") as r:
                assert r.status == 200
                assert (await r.json())["call"]["manager"] == "boris"
        async with rig.browser("vera") as vera, vera.get(f"/api/calls/{listed[0]['call_id']}") as r:
            assert r.status == 404


async def test_calls_list_and_tasks_list_name_the_owner_as_manager(
    db: Database, traces_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``crmtel calls list --format json`` and ``crmtel tasks list --format json`` show each call's and task's
    owner by login: boris's unanswered outbound call, and the missed call that rang only anna's phone."""
    managers = ManagerRepository(db)
    await managers.save(login="anna", name="Анна Смирнова", extensions=("101",))
    await managers.save(login="boris", name="Boris Orlov", extensions=("122",))
    await replay_stream(_settings(db), db, load_ami(LIVE_TRACES_DIR / "outbound-unanswered.ami"), settle=0.05)
    await replay_stream(_settings(db), db, load_ami(traces_dir / "direct-caller-gives-up.ami"), settle=0.05)
    capsys.readouterr()
    # The CLI runs its own event loop: in a thread, as from a shell.
    assert await asyncio.to_thread(main, ["--database-url", db.url, "calls", "list", "--format", "json"]) == 0
    calls = json.loads(capsys.readouterr().out)
    assert sorted((c["direction"], c["outcome"], c["manager"]) for c in calls) == [
        ("inbound", "missed", "anna"),
        ("outbound", "missed", "boris"),
    ]
    assert await asyncio.to_thread(main, ["--database-url", db.url, "tasks", "list", "--format", "json"]) == 0
    tasks = json.loads(capsys.readouterr().out)
    assert [(t["phone"], t["manager"]) for t in tasks] == [("+79161110001", "anna")]
    # The table names the owner too, in its last column.
    assert await asyncio.to_thread(main, ["--database-url", db.url, "calls", "list"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split()[-1] == "manager"
    assert sorted(line.split()[-1] for line in lines[1:]) == ["anna", "boris"]


async def test_the_demo_calls_leave_no_callback_task_without_an_owner(db: Database, traces_dir: Path) -> None:
    """The demo's people and every call the demo's simulator plays (the recorded traces), with no owner configured:
    every open callback task has a manager (9 of 13 had none before)."""
    await seed_people(ManagerRepository(db), PartyRepository(db))
    for scenario in SCENARIOS:
        await replay_stream(_settings(db), db, load_ami(traces_dir / f"{scenario}.ami"), settle=0.05)
    tasks = await TaskRepository(db).open_tasks()
    assert tasks
    assert [t.phone for t in tasks if t.manager_id is None] == []
    stored = [s.record for s in await CallRepository(db).between()]
    assert len(stored) == len(SCENARIOS)
    assert [r.linkedid for r in stored if r.manager_id is None] == []


async def test_the_report_counts_an_unanswered_outbound_call_in_the_placers_row(db: Database) -> None:
    """Calls vs deals for the day: boris's unanswered outbound call is one outbound call in boris's row, and there
    is no "(unassigned)" row."""
    boris = await ManagerRepository(db).save(login="boris", name="Boris Orlov", extensions=("122",))
    stream = load_ami(LIVE_TRACES_DIR / "outbound-unanswered.ami")
    await replay_stream(_settings(db), db, stream, settle=0.05)
    day = (await _only_call(db)).started_at.date()
    report = await ReportQueries(db).calls_vs_deals(Period(day, day + timedelta(days=1), "UTC"))
    rows = {row.name: row for row in report.rows}
    assert UNASSIGNED not in rows
    assert (rows["Boris Orlov"].manager_id, rows["Boris Orlov"].outbound) == (boris.id, 1)
