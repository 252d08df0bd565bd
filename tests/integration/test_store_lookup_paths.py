"""The fast lookup path (held PostgreSQL connection / synchronous SQLite reader) agrees with the plain one."""

from __future__ import annotations

import asyncio
import sqlite3
import time
from contextlib import suppress

import asyncpg  # type: ignore[import-untyped]
import pytest
from sqlalchemy.engine import make_url

from crmtel.domain import LeadStatus, LookupResult
from crmtel.store.db import Database, is_sqlite
from crmtel.store.lookup import HELD_ANSWER_SECONDS, LookupReader, lookup_in
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


class FreezingProxy:
    """A TCP hop to PostgreSQL whose connections open at ``freeze`` stop passing anything on (a stalled path:
    the socket stays open, no answer ever comes); connections opened later pass as usual."""

    def __init__(self, host: str, port: int) -> None:
        self._upstream = (host, port)
        self._frozen: set[asyncio.StreamWriter] = set()
        self._open: set[asyncio.StreamWriter] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        self.server: asyncio.Server | None = None

    def freeze(self) -> None:
        self._frozen |= self._open

    async def _pipe(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, client: asyncio.StreamWriter
    ) -> None:
        with suppress(OSError):
            while data := await reader.read(65536):
                if client in self._frozen:
                    continue
                writer.write(data)
                await writer.drain()

    async def _handle(self, client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        server_r, server_w = await asyncio.open_connection(*self._upstream)
        self._open.add(client_w)
        pipes = [
            asyncio.create_task(self._pipe(client_r, server_w, client_w), name="test-proxy-up"),
            asyncio.create_task(self._pipe(server_r, client_w, client_w), name="test-proxy-down"),
        ]
        try:
            await asyncio.wait(pipes, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in pipes:
                task.cancel()
            await asyncio.gather(*pipes, return_exceptions=True)
            self._open.discard(client_w)
            client_w.close()
            server_w.close()

    async def start(self) -> int:
        self.server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        return int(self.server.sockets[0].getsockname()[1])

    async def close(self) -> None:
        if self.server is not None:
            self.server.close()
            for writer in self._open:
                writer.close()
            await self.server.wait_closed()


async def test_a_stalled_held_connection_costs_a_lookup_a_bounded_wait(database_url: str) -> None:
    """The held PostgreSQL connection stops answering (a stalled network path, no error ever comes): the lookup
    gives it up within a bound and answers from a pooled connection, instead of waiting for ever (before: it
    never answered, and the call whose party it read stayed unwritten until the stop named it)."""
    if is_sqlite(database_url):
        pytest.skip("the SQLite reader holds no connection that can stall")
    url = make_url(database_url)
    proxy = FreezingProxy(url.host or "127.0.0.1", url.port or 5432)
    db = Database(url.set(host="127.0.0.1", port=await proxy.start()).render_as_string(hide_password=False))
    try:
        await _seed(db)
        reader = LookupReader(db)
        expected = await reader.lookup("+79161110002")
        assert reader._held is not None
        proxy.freeze()
        await db.engine.dispose()  # the pool's idle connections stalled too: the fallback opens a new one
        started = time.monotonic()
        assert await asyncio.wait_for(reader.lookup("+79161110002"), 15) == expected
        assert time.monotonic() - started < HELD_ANSWER_SECONDS + 3
        # The next lookup holds a fresh connection again.
        assert await reader.lookup("+79161110002") == expected
        assert reader._held is not None
        await reader.aclose()
    finally:
        await db.dispose()
        await proxy.close()
