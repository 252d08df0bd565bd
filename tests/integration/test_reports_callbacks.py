"""Calls vs deals: how fast missed calls were returned, per manager, counted by the database (SQLite and
PostgreSQL) on a hand-made set of calls and tasks."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta

import pytest

from crmtel.reports.models import Period
from crmtel.reports.queries import QueryOptions, ReportQueries
from crmtel.reports.render import COLUMNS, to_json
from crmtel.store.call_callbacks import recompute_in
from crmtel.store.db import Database
from crmtel.store.managers import ManagerRepository
from crmtel.store.models import CallRow, TaskRow

T0 = datetime(2026, 11, 10, 9, 0, tzinfo=UTC)
PERIOD = Period(date(2026, 11, 1), date(2026, 12, 1), "UTC")


@pytest.fixture(params=[False, True], ids=["matched", "stored"])
def stored(request: pytest.FixtureRequest) -> bool:
    """Each test twice: the report matching callbacks itself, and reading those stored with the calls."""
    return bool(request.param)


async def _written(db: Database, stored: bool) -> None:
    """The calls were inserted as rows (not through the call store): compute their stored callbacks."""
    if stored:
        async with db.session() as session:
            await recompute_in(session, QueryOptions().match_digits)


def _call(
    linkedid: str, *, direction: str, outcome: str, number: str, at: datetime, manager_id: int | None
) -> CallRow:
    inbound = direction == "inbound"
    return CallRow(
        pbx="pbx1",
        linkedid=linkedid,
        direction=direction,
        caller_number=number if inbound else "101",
        dialled="4951234567" if inbound else number,
        rang=[],
        answered_by="101" if outcome == "answered" else None,
        outcome=outcome,
        started_at=at,
        ended_at=at + timedelta(seconds=30),
        manager_id=manager_id,
    )


async def test_time_to_callback_median_p90_shares_and_overdue_tasks(db: Database, stored: bool) -> None:
    """Callbacks after 5, 20 and 120 minutes and one never: median 20, p90 120, 3 of 4 in grace, 1 in SLA."""
    anna = await ManagerRepository(db).save(login="anna", name="Anna", extensions=("101",))
    minutes = {"+79161110001": 5, "+79162220002": 20, "+79163330003": 120}
    async with db.session() as session:
        for n, (number, delay) in enumerate(minutes.items(), start=1):
            session.add(
                _call(
                    f"m{n}", direction="inbound", outcome="missed", number=number, at=T0, manager_id=anna.id
                )
            )
            # Called back in the national format by the manager (outbound), or the client got through.
            back = "8" + number[2:] if n % 2 else number
            session.add(
                _call(
                    f"b{n}",
                    direction="outbound" if n % 2 else "inbound",
                    outcome="answered",
                    number=back,
                    at=T0 + timedelta(minutes=delay),
                    manager_id=anna.id,
                )
            )
        session.add(
            _call(
                "m9", direction="inbound", outcome="missed", number="+79169990009", at=T0, manager_id=anna.id
            )
        )
        # An answered call BEFORE the miss is no callback.
        session.add(
            _call(
                "early",
                direction="outbound",
                outcome="answered",
                number="89169990009",
                at=T0 - timedelta(minutes=1),
                manager_id=anna.id,
            )
        )
        # Overdue: still open and due before the period's end (or now); done or not yet due is not.
        now = T0 + timedelta(hours=1)
        for status, due in (
            ("open", now - timedelta(hours=1)),
            ("open", PERIOD.end_utc + timedelta(days=1)),
            ("closed", now - timedelta(hours=1)),
        ):
            session.add(
                TaskRow(
                    phone="+79169990009",
                    manager_id=anna.id,
                    status=status,
                    due_at=due,
                    created_at=T0,
                    updated_at=T0,
                )
            )
    await _written(db, stored)
    queries = ReportQueries(db, QueryOptions(callback_sla=timedelta(minutes=15)), stored_callbacks=stored)
    report = await queries.calls_vs_deals(PERIOD)
    (row,) = [r for r in report.rows if r.login == "anna"]
    assert (row.missed, row.called_back, row.called_back_in_sla) == (4, 3, 1)
    assert row.missed_not_called_back == 1
    assert row.callback_median_seconds == pytest.approx(20 * 60, abs=1)
    assert row.callback_p90_seconds == pytest.approx(120 * 60, abs=1)
    assert (row.called_back_pct, row.called_back_in_sla_pct) == (75.0, 25.0)
    assert row.overdue_tasks == 1
    data = json.loads(to_json(report))
    keys = {c.key for c in COLUMNS}
    assert {
        "callback_median_minutes",
        "callback_p90_minutes",
        "called_back_in_sla_pct",
        "overdue_tasks",
    } <= keys
    anna_json = next(r for r in data["rows"] if r["login"] == "anna")
    assert anna_json["callback_median_minutes"] == pytest.approx(20.0, abs=0.1)


async def test_no_callbacks_leave_the_percentiles_blank(db: Database, stored: bool) -> None:
    """A manager with a missed call nobody returned: no median (not zero), 0 % called back."""
    anna = await ManagerRepository(db).save(login="anna", name="Anna", extensions=("101",))
    async with db.session() as session:
        session.add(
            _call(
                "m1", direction="inbound", outcome="missed", number="+79161110001", at=T0, manager_id=anna.id
            )
        )
    await _written(db, stored)
    report = await ReportQueries(db, stored_callbacks=stored).calls_vs_deals(PERIOD)
    (row,) = [r for r in report.rows if r.login == "anna"]
    assert (row.callback_median_seconds, row.callback_p90_seconds, row.called_back_pct) == (None, None, 0.0)


async def test_missed_calls_alike_in_number_and_time_each_count_with_their_callback(
    db: Database, stored: bool
) -> None:
    """Two misses from one number in the same second (to Anna and to Boris) are two missed calls, each called
    back by the one later answered call, each ranked in its manager's delays; a third miss that second from
    another number stays not called back."""
    managers = ManagerRepository(db)
    anna = await managers.save(login="anna", name="Anna", extensions=("101",))
    boris = await managers.save(login="boris", name="Boris", extensions=("102",))
    async with db.session() as session:
        for linkedid, manager_id, number in (
            ("m1", anna.id, "+79161110001"),
            ("m2", boris.id, "+79161110001"),
            ("m3", boris.id, "+79162220002"),
        ):
            session.add(
                _call(
                    linkedid,
                    direction="inbound",
                    outcome="missed",
                    number=number,
                    at=T0,
                    manager_id=manager_id,
                )
            )
        session.add(
            _call(
                "b1",
                direction="outbound",
                outcome="answered",
                number="89161110001",
                at=T0 + timedelta(minutes=10),
                manager_id=anna.id,
            )
        )
    await _written(db, stored)
    report = await ReportQueries(db, stored_callbacks=stored).calls_vs_deals(PERIOD)
    rows = {r.login: r for r in report.rows}
    assert (rows["anna"].missed, rows["anna"].called_back, rows["anna"].missed_not_called_back) == (1, 1, 0)
    assert (rows["boris"].missed, rows["boris"].called_back, rows["boris"].missed_not_called_back) == (
        2,
        1,
        1,
    )
    assert rows["anna"].callback_median_seconds == pytest.approx(600, abs=1)
    assert rows["boris"].callback_p90_seconds == pytest.approx(600, abs=1)


async def test_a_callback_exactly_at_the_sla_counts_within_it(db: Database, stored: bool) -> None:
    """A callback 15 minutes to the second after the miss is within a 15-minute SLA on both dialects, at any
    start time: SQLite's julianday difference is off by up to ~3e-5 s, so a third of such callbacks fell
    outside it (and the median read 899.99997 or 900.00003 s)."""
    anna = await ManagerRepository(db).save(login="anna", name="Anna", extensions=("101",))
    starts = [T0 + timedelta(minutes=i) for i in range(12)]
    async with db.session() as session:
        for n, at in enumerate(starts):
            number = f"+7916111{n:04d}"
            session.add(
                _call(
                    f"m{n}", direction="inbound", outcome="missed", number=number, at=at, manager_id=anna.id
                )
            )
            session.add(
                _call(
                    f"b{n}",
                    direction="outbound",
                    outcome="answered",
                    number=number,
                    at=at + timedelta(minutes=15),
                    manager_id=anna.id,
                )
            )
    await _written(db, stored)
    queries = ReportQueries(db, QueryOptions(callback_sla=timedelta(minutes=15)), stored_callbacks=stored)
    (row,) = [r for r in (await queries.calls_vs_deals(PERIOD)).rows if r.login == "anna"]
    assert (row.called_back, row.called_back_in_sla) == (12, 12)
    assert (row.callback_median_seconds, row.callback_p90_seconds) == (900.0, 900.0)
