"""Every stored call has an owner, and its callback task goes to that owner: recorded Asterisk 22 calls served by
the fake AMI server to the real client, tracker and store (``crmtel.calls.owner``)."""

from __future__ import annotations

from pathlib import Path

from crmtel.calls.commands import replay_stream
from crmtel.config import CallsSettings, Settings
from crmtel.domain import CallRecord, Outcome
from crmtel.fakepbx.server import load_ami
from crmtel.store.calls import CallRepository
from crmtel.store.db import Database
from crmtel.store.managers import ManagerRepository
from crmtel.store.parties import NewClient, PartyRepository
from crmtel.store.tasks import TaskRepository
from tests.fixtures.traces import LIVE_TRACES_DIR


def _settings(db: Database, **calls: object) -> Settings:
    return Settings(database_url=db.url, calls=CallsSettings.model_validate(calls))


async def _only_call(db: Database) -> CallRecord:
    stored = await CallRepository(db).between()
    assert len(stored) == 1
    return stored[0].record


async def test_a_missed_call_from_a_new_number_that_rang_one_phone_is_that_managers_task(
    db: Database, traces_dir: Path
) -> None:
    """No default owner configured, an unknown caller gives up while 101 rings: anna (101) owns the call, its
    task and the new lead — not nobody ("Перезванивать некому")."""
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
    answered by 127, booked to fedor, no callback task."""
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
