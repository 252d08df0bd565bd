"""The fast lookup path (held PostgreSQL connection / synchronous SQLite reader) agrees with the plain one."""

from __future__ import annotations

import sqlite3

import asyncpg  # type: ignore[import-untyped]
from sqlalchemy.engine import make_url

from crmtel.domain import LeadStatus, LookupResult
from crmtel.store.db import Database, is_sqlite
from crmtel.store.lookup import LookupReader, lookup_in
from crmtel.store.managers import ManagerRepository
from crmtel.store.parties import NewClient, NewLead, PartyRepository

NUMBERS = ("+79161110001", "+79161110002", "+79161110003", "+79161110004", "+79990000000")


async def _seed(db: Database) -> None:
    anna = await ManagerRepository(db).save(login="anna", name="Anna", extensions=("101", "111"))
    boris = await ManagerRepository(db).save(login="boris", name="Boris", extensions=("102",), active=False)
    parties = PartyRepository(db)
    a = await parties.add_client(NewClient(name="A", phones=("+79161110001",), manager_id=anna.id))
    b = await parties.add_client(NewClient(name="B", phones=("+79161110002",), manager_id=boris.id))
    await parties.add_contact("Shared", ["+79161110003", "+79161110001"], [a.id, b.id])
    await parties.add_lead(NewLead(name="L", phones=("+79161110003", "+79161110004")))
    await parties.add_lead(NewLead(name="Done", phones=("+79161110004",), status=LeadStatus.CONVERTED))


async def _plain(db: Database, e164: str) -> LookupResult:
    async with db.session() as session:
        return await lookup_in(session, e164)


async def test_fast_path_returns_exactly_what_the_session_path_returns(db: Database) -> None:
    """Direct and via-contact clients, ties, leads, converted leads and unknown numbers: identical results."""
    await _seed(db)
    reader = LookupReader(db)
    for e164 in NUMBERS:
        assert await reader.lookup(e164) == await _plain(db, e164)
    # ... and it really was the fast path that answered.
    assert reader._sqlite is not None or reader._held is not None
    shared = await reader.lookup("+79161110003")
    assert [m.name for m in shared.matches] == ["A", "B", "L"]
    assert shared.tie
    best = (await reader.lookup("+79161110001")).best
    assert best is not None
    assert (best.via_contact, best.manager_extensions) == (None, ("101", "111"))


async def test_fast_path_sees_writes_made_after_it_opened(db: Database) -> None:
    """The held connection or reader is never a stale snapshot: a client added later is found."""
    parties = PartyRepository(db)
    assert (await parties.lookup("+79161110009")).matches == ()
    await parties.add_client(NewClient(name="Late", phones=("+79161110009",)))
    found = await parties.lookup("+79161110009")
    assert [m.name for m in found.matches] == ["Late"]


async def test_dispose_closes_the_reader_and_lookups_work_again(db: Database) -> None:
    """Database.dispose closes what the reader holds; the next lookup opens it anew."""
    await _seed(db)
    parties = PartyRepository(db)
    before = await parties.lookup("+79161110001")
    await db.dispose()
    assert await parties.lookup("+79161110001") == before


async def test_a_broken_fast_connection_falls_back_and_recovers(db: Database, database_url: str) -> None:
    """If the held connection dies (server restart, killed backend), the lookup still answers."""
    await _seed(db)
    reader = LookupReader(db)
    expected = await reader.lookup("+79161110002")
    if is_sqlite(database_url):
        broken = sqlite3.connect(":memory:")
        broken.close()
        reader._sqlite = broken  # a closed handle raises sqlite3.ProgrammingError on use
    else:
        dsn = make_url(database_url).set(drivername="postgresql").render_as_string(hide_password=False)
        admin = await asyncpg.connect(dsn)
        try:
            await admin.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE datname = current_database() AND pid <> pg_backend_pid()"
            )
        finally:
            await admin.close()
    assert await reader.lookup("+79161110002") == expected
    assert await reader.lookup("+79161110002") == expected
    await reader.aclose()
