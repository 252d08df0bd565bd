"""The demo's seeded past: every manager has calls and deals this month and last; recordings exist as WAVs."""

from __future__ import annotations

import wave
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from crmtel.config import ReportsSettings
from crmtel.demo import DEMO_LOGINS, seed
from crmtel.demo.people import last_month
from crmtel.domain import Direction, Outcome
from crmtel.recordings import locate
from crmtel.reports.models import Period, ReportFilter
from crmtel.reports.queries import QueryOptions, ReportQueries
from crmtel.reports.web import default_period
from crmtel.store.calls import CallRepository
from crmtel.store.db import Database
from crmtel.store.history import CallHistory
from crmtel.store.managers import ManagerRepository
from crmtel.store.parties import PartyRepository
from crmtel.store.tasks import TaskRepository

TZ = "Europe/Moscow"


@pytest.fixture
async def seeded(db: Database, tmp_path: Path) -> Path:
    """A database and recordings folder as `crmtel demo` leaves them at its first start."""
    rec = tmp_path / "recordings"
    assert await seed(db, ManagerRepository(db), PartyRepository(db, "RU"), recordings_dir=rec, timezone=TZ)
    assert not await seed(
        db, ManagerRepository(db), PartyRepository(db, "RU"), recordings_dir=rec, timezone=TZ
    )
    return rec


async def test_every_demo_manager_has_calls_and_won_deals_this_month_and_last(
    db: Database, seeded: Path
) -> None:
    """The report a head opens first (this month) and the previous month are non-zero for every manager."""
    queries = ReportQueries(db, QueryOptions.from_settings(ReportsSettings()))
    this_month = default_period(datetime.now(UTC).date(), TZ)
    start = last_month(this_month.start)
    for period in (this_month, Period(start, this_month.start, TZ)):
        report = await queries.calls_vs_deals(period, ReportFilter())
        rows = {r.login: r for r in report.rows}
        for person in DEMO_LOGINS:
            if person.extension is None:
                continue
            row = rows[person.login]
            assert row.calls > 0, (period, person.login)
            assert row.answered > 0, (period, person.login)
            assert row.deals_won > 0, (period, person.login)
            assert row.talk_seconds / row.answered >= 15, (period, person.login)


async def test_history_has_missed_outbound_callbacks_and_real_recordings(db: Database, seeded: Path) -> None:
    """Missed and outbound calls, open callback tasks, and a WAV file exactly for the calls that name one."""
    calls = [s.record for s in await CallRepository(db).between()]
    assert {c.direction for c in calls} == {Direction.INBOUND, Direction.OUTBOUND}
    missed = [c for c in calls if c.outcome is Outcome.MISSED]
    answered = [c for c in calls if c.outcome is Outcome.ANSWERED]
    assert missed
    assert all(15 <= c.talk_seconds <= 300 for c in answered)
    assert max(c.talk_seconds for c in answered) >= 120
    assert await TaskRepository(db).open_tasks()
    with_file = [c for c in answered if c.recording_file]
    assert 0 < len(with_file) < len(answered)
    for call in with_file[:5]:
        path = locate(seeded, call.recording_file or "", call.started_at)
        assert path is not None
        with wave.open(str(path)) as wav:
            assert wav.getnframes() > 0
    assert all(c.recording_file is None for c in missed)
    assert all(
        c.ended_at is not None and c.ended_at <= datetime.now(UTC) + timedelta(minutes=10) for c in calls
    )


async def test_the_history_lists_the_seeded_calls_newest_first(db: Database, seeded: Path) -> None:
    """The page's history (newest id first) reads in time order, as it does for real calls."""
    listed = await CallHistory(db).list(None, limit=200)
    assert len(listed) > 100
    starts = [c.started_at for c in listed]
    assert starts == sorted(starts, reverse=True)
