"""Web sessions in the record store: a login outlives the process, expires, and ends on logout."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from crmtel.push.sessions import DurableSessions, Sessions
from crmtel.store.db import Database
from crmtel.store.managers import ManagerRepository
from crmtel.store.sessions import SessionRepository


async def test_login_survives_a_restart_of_the_web_app(db: Database) -> None:
    """A session created by one process is honoured by the next one on the same database."""
    anna = await ManagerRepository(db).save(login="anna", name="Anna", extensions=("101",))
    first = DurableSessions(Sessions(3600), SessionRepository(db), 3600)
    token = await first.create(anna.id)
    second = DurableSessions(Sessions(3600), SessionRepository(db), 3600)
    assert await second.manager_id(token) == anna.id
    await second.drop(token)
    third = DurableSessions(Sessions(3600), SessionRepository(db), 3600)
    assert await third.manager_id(token) is None


async def test_expired_rows_are_not_loaded_and_are_cleaned_up(db: Database) -> None:
    """A row past its expiry opens nothing and is removed when the next session is saved."""
    anna = await ManagerRepository(db).save(login="anna", name="Anna")
    repo = SessionRepository(db)
    now = datetime.now(UTC)
    await repo.save("a" * 64, anna.id, now + timedelta(seconds=10), now)
    assert await repo.load("a" * 64, now) is not None
    later = now + timedelta(seconds=11)
    assert await repo.load("a" * 64, later) is None
    await repo.save("b" * 64, anna.id, later + timedelta(hours=1), later)
    assert await repo.load("a" * 64, now) is None
    found = await repo.load("b" * 64, later)
    assert found is not None
    assert found[0] == anna.id
    await repo.delete_manager(anna.id)
    assert await repo.load("b" * 64, later) is None
