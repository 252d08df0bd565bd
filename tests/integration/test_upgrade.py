"""Upgrading a database that holds rows from every released revision leaves every report as it should be.

For each released revision N: a blank database (SQLite, or PostgreSQL with CRMTEL_TEST_DATABASE_URL) is
migrated to N, given the rows crmtel stored at N (tests/fixtures/legacy_dataset.py), and upgraded to the head.
A second database gets the same rows as today's crmtel writes them. Reports, history, callback tasks and the
CRM search index must be the same in both, and the queue report must show the hand-counted figures.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import date
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from crmtel.crm.models import Kind, PartyQuery, Viewer
from crmtel.crm.search import parse_query
from crmtel.reports.models import Period
from crmtel.reports.queries import QueryOptions, ReportQueries
from crmtel.reports.queue_queries import QueueQueries
from crmtel.store.call_callbacks import recompute_in
from crmtel.store.callbacks import CallbackRepository
from crmtel.store.crm_lists import PartyLists
from crmtel.store.db import Database, upgrade
from crmtel.store.history import CallHistory
from crmtel.store.models import Base
from tests.fixtures import legacy_dataset as data
from tests.fixtures.databases import PostgresRun, pg_base_url

OCTOBER = Period(date(2026, 10, 1), date(2026, 11, 1), "UTC")
NOVEMBER = Period(date(2026, 11, 1), date(2026, 12, 1), "UTC")

BlankFactory = Callable[[str], Awaitable[str]]


@pytest.fixture
async def blank(tmp_path: Path) -> AsyncIterator[BlankFactory]:
    """Makes empty, unmigrated databases (PostgreSQL ones are dropped after the test)."""
    made: list[PostgresRun] = []
    base = pg_base_url()

    async def make(name: str) -> str:
        if base is None:
            return f"sqlite+aiosqlite:///{tmp_path / name}.db"
        run = PostgresRun(base)
        await asyncio.to_thread(run.create, migrate=False)
        made.append(run)
        return run.url

    yield make
    for run in made:
        await asyncio.to_thread(run.drop)


async def _stored_at(url: str, position: int, *, native: bool) -> Database:
    revision = "head" if native else data.RELEASED[position - 1]
    await upgrade(url, revision)
    db = Database(url)
    async with db.engine.begin() as conn:
        await conn.run_sync(lambda c: data.insert(c, position, native=native))
    if native:
        # Inserted as rows, not through the call store: their stored callbacks are computed as a daemon would.
        async with db.session() as session:
            await recompute_in(session, QueryOptions().match_digits)
    return db


def _diff(connection: sa.Connection) -> list[Any]:
    context = MigrationContext.configure(connection, opts={"compare_type": True})
    return list(compare_metadata(context, Base.metadata))


def _links(connection: sa.Connection) -> dict[str, list[tuple[Any, ...]]]:
    # What points at a call: a table rebuilt by a migration must not cascade or unlink them.
    queries = {
        "notes": "SELECT id, call_id FROM call_notes",
        "deals": "SELECT id, call_id FROM deals",
        "tasks": "SELECT id, call_id, closed_by_call_id FROM tasks",
        "offers": "SELECT call_id, seq, extension, answered FROM call_queue_offers",
    }
    return {name: sorted(tuple(r) for r in connection.execute(sa.text(q))) for name, q in queries.items()}


def _terms(connection: sa.Connection) -> list[tuple[Any, ...]]:
    rows = connection.execute(sa.text("SELECT kind, party_id, term, name_key FROM party_terms"))
    return sorted(tuple(r) for r in rows)


def _terms_without_party_time(connection: sa.Connection) -> list[tuple[Any, ...]]:
    """The search terms that lack their party's creation time (the newest-first key, from 0021 on)."""
    rows = connection.execute(
        sa.text(
            "SELECT t.kind, t.party_id, t.term FROM party_terms t"
            " LEFT JOIN clients c ON t.kind = 'c' AND c.id = t.party_id"
            " LEFT JOIN leads l ON t.kind = 'l' AND l.id = t.party_id"
            " WHERE t.created_at IS NULL OR t.created_at <> coalesce(c.created_at, l.created_at)"
        )
    )
    return sorted(tuple(r) for r in rows)


async def _reports(db: Database) -> dict[str, Any]:
    """Everything a user reads from the stored rows, without the moments the reports were made."""
    out: dict[str, Any] = {}
    for name, period in (("october", OCTOBER), ("november", NOVEMBER)):
        deals = await ReportQueries(db).calls_vs_deals(period)
        out[f"calls vs deals, {name}"] = (deals.rows, deals.previous_rows)
        queues = await QueueQueries(db).queues(period)
        out[f"queues, {name}"] = queues.queues
        out[f"heatmap, {name}"] = await QueueQueries(db).heatmap(period)
    out["history"] = await CallHistory(db).list(None, limit=100)
    out["tasks"] = await CallbackRepository(db).tasks(status=None)
    async with db.engine.connect() as conn:
        out["search terms"] = await conn.run_sync(_terms)
        out["rows pointing at calls"] = await conn.run_sync(_links)
    return out


@pytest.mark.parametrize("position", range(1, len(data.RELEASED) + 1))
async def test_upgrade_from_each_released_revision_reports_the_same(
    blank: BlankFactory, position: int
) -> None:
    """A database from revision N, upgraded, reports like one written by today's crmtel (queue visits rebuilt,
    callback tasks a later call answered closed, search terms filled) and has the models' schema."""
    upgraded = await _stored_at(await blank("upgraded"), position, native=False)
    reference = await _stored_at(await blank("reference"), position, native=True)
    try:
        await upgrade(str(upgraded.engine.url.render_as_string(hide_password=False)))
        async with upgraded.engine.connect() as conn:
            assert await conn.run_sync(_diff) == []
            assert await conn.run_sync(_terms_without_party_time) == []
        got, want = await _reports(upgraded), await _reports(reference)
        for key in want:
            assert got[key] == want[key], key

        # Not two empty reports: October's queues as counted by hand.
        october = got["queues, october"]
        assert october, "October's queue report is empty"
        counted = {
            q.queue: (
                q.offered,
                q.answered,
                q.abandoned,
                q.exited,
                round(q.wait_avg_s, 2) if q.wait_avg_s is not None else None,
                {m.extension: (m.offered, m.answered) for m in q.members},
            )
            for q in october
        }
        assert counted == data.queue_october(position)
        status = {t.id: (t.status, t.closed_by_call_id) for t in got["tasks"]}
        assert status[1] == ("closed", 7)  # the manager called the number back
        assert status[2] == ("closed", 4)  # the client got through
        assert status[3] == ("open", None)  # nobody called back
        if position >= data.CRM_AT:
            assert status[4] == ("open", None)  # planned, and the call before it was due was short
        terms = {t for _, _, t, _ in got["search terms"]}
        assert {"ромашка", "9161110003"} <= terms
        assert sum(r.deals_won for r in got["calls vs deals, october"][0]) == 1
        links = got["rows pointing at calls"]
        assert (links["notes"], links["deals"]) == ([(1, 1)], [(1, 1), (2, 4), (3, 9)])
    finally:
        await upgraded.dispose()
        await reference.dispose()


async def test_upgrade_keeps_the_rows_of_each_revision(blank: BlankFactory) -> None:
    """Rows only later revisions have (session, language, lease, watermark, click-to-call link, CRM fields)
    survive the upgrade from the last released revision unchanged."""
    db = await _stored_at(await blank("kept"), len(data.RELEASED), native=False)
    try:
        await upgrade(str(db.engine.url.render_as_string(hide_password=False)))
        async with db.engine.connect() as conn:
            one = (await conn.execute(sa.text("SELECT count(*) FROM web_sessions"))).scalar_one()
            locale = (await conn.execute(sa.text("SELECT locale FROM managers WHERE id = 2"))).scalar_one()
            lease = (await conn.execute(sa.text("SELECT node, epoch FROM pbx_leases"))).one()
            marks = (await conn.execute(sa.text("SELECT count(*) FROM cdr_watermarks"))).scalar_one()
            origin = (
                await conn.execute(sa.text("SELECT originate_id FROM calls WHERE id = 11"))
            ).scalar_one()
            inn = (await conn.execute(sa.text("SELECT inn FROM clients WHERE id = 1"))).scalar_one()
        assert (one, locale, tuple(lease), marks, origin, inn) == (
            1,
            "en",
            ("node-a", 3),
            1,
            "orig-1",
            "7701234567",
        )
    finally:
        await db.dispose()


async def test_no_watermark_is_made_up_for_an_old_database(blank: BlankFactory) -> None:
    """A database from before the CDR backfill gets no watermark: its first pass starts from then on instead of
    turning weeks of old CDR into callback tasks (crmtel/store/migrations/README.md)."""
    db = await _stored_at(await blank("marks"), data.WATERMARKS_AT - 1, native=False)
    try:
        await upgrade(str(db.engine.url.render_as_string(hide_password=False)))
        async with db.engine.connect() as conn:
            marks = (await conn.execute(sa.text("SELECT count(*) FROM cdr_watermarks"))).scalar_one()
        assert marks == 0
    finally:
        await db.dispose()


async def test_a_task_missed_again_after_a_call_back_stays_open(blank: BlankFactory) -> None:
    """An old task counting a miss after the answered call that would have closed it stays open: that later
    miss still wants its callback."""
    db = await _stored_at(await blank("again"), data.CALLBACKS_AT - 1, native=False)
    try:
        async with db.engine.begin() as conn:
            # The caller of call 6 gets through (day 5.5), then gives up once more (day 5.7).
            await conn.run_sync(data.miss_after_a_call_back)
        await upgrade(str(db.engine.url.render_as_string(hide_password=False)))
        tasks = {t.id: t for t in await CallbackRepository(db).tasks(status=None)}
        assert (tasks[3].status, tasks[3].missed_count, tasks[3].closed_by_call_id) == ("open", 2, None)
        assert tasks[1].status == "closed"
    finally:
        await db.dispose()


async def _found(db: Database, kind: Kind, typed: str) -> list[int]:
    page = await PartyLists(db).page(PartyQuery(kind, tokens=parse_query(typed)), Viewer(4, head=True))
    return [item.id for item in page.items]


async def test_names_stored_with_invisible_characters_are_found_after_the_upgrade(
    blank: BlankFactory,
) -> None:
    """A client, a contact person and a lead indexed before 0015 with zero-width space, soft hyphen, joiner and
    BOM inside their words (split terms, the character in the sort key) are found by the words as people type
    them once upgraded, and sort as their visible names."""
    db = await _stored_at(await blank("invisible"), len(data.RELEASED), native=False)
    try:
        stale = {"иванова", "сергей", "белов", "анна", "техносфера"}
        async with db.engine.connect() as conn:
            before = {t for _, _, t, _ in await conn.run_sync(_terms)}
        assert not stale & before  # the old index, as 0008..0014 left it
        assert {"ива", "носфера"} <= before
        assert await _found(db, Kind.CLIENT, "Иванова") == []

        await upgrade(str(db.engine.url.render_as_string(hide_password=False)))

        assert await _found(db, Kind.CLIENT, "Иванова Ольга") == [3]
        assert await _found(db, Kind.CLIENT, "сергей белов") == [3]  # the contact person
        assert await _found(db, Kind.LEAD, "Анна") == [2]
        assert await _found(db, Kind.LEAD, "техносф") == [2]
        async with db.engine.connect() as conn:
            after = await conn.run_sync(_terms)
            keys = (
                (await conn.execute(sa.text("SELECT name_key FROM clients WHERE id = 3"))).scalar_one(),
                (await conn.execute(sa.text("SELECT name_key FROM leads WHERE id = 2"))).scalar_one(),
            )
            name = (await conn.execute(sa.text("SELECT name FROM clients WHERE id = 3"))).scalar_one()
        assert {t for _, _, t, _ in after} >= stale
        assert not {"ива", "нова", "сер", "гей", "бе", "лов", "ан", "на", "тех", "носфера"} & {
            t for _, _, t, _ in after
        }
        assert keys == ("иванова ольга", "анна")
        assert name == data.CLIENT_INVISIBLE  # the stored text itself is left as it was
    finally:
        await db.dispose()
