"""The calls-versus-deals report over a hand-built data set whose every figure is known (SQLite and PostgreSQL)."""

from __future__ import annotations

from datetime import date, timedelta

import pytest

from crmtel.reports.models import UNASSIGNED, CallsVsDeals, ManagerFigures, Period, ReportFilter
from crmtel.reports.queries import QueryOptions, ReportQueries
from crmtel.store.db import Database
from tests.fixtures import report_dataset as ds


def _by_login(report_rows: tuple[ManagerFigures, ...]) -> dict[str | None, ManagerFigures]:
    return {row.login: row for row in report_rows}


def _figures(row: ManagerFigures) -> dict[str, float]:
    return {key: getattr(row, key) for key in ds.EXPECTED["anna"]}


async def _report(
    db: Database, filt: ReportFilter | None = None, options: QueryOptions | None = None
) -> CallsVsDeals:
    queries = ReportQueries(db, options)
    return await queries.calls_vs_deals(Period(ds.FROM, ds.TO, ds.TZ), filt)


async def test_every_figure_of_the_period_matches_the_hand_count(db: Database) -> None:
    """Boundaries, midnight-spanning calls, internal and live calls, callbacks and deals give the known figures."""
    await ds.load(db)
    report = await _report(db)
    rows = _by_login(report.rows)
    assert list(rows) == ["boris", "vera", "anna", None]  # by name: Boris, Vera, Анна; unassigned last
    for login, expected in ds.EXPECTED.items():
        assert _figures(rows[login]) == expected, login
    assert rows[None].name == UNASSIGNED
    assert _figures(report.totals) == ds.EXPECTED_TOTALS


async def test_derived_figures(db: Database) -> None:
    """Average talk, calls and talk minutes per won deal, and lead conversion are computed from the counts."""
    await ds.load(db)
    anna = _by_login((await _report(db)).rows)["anna"]
    assert anna.calls == 5
    assert anna.avg_talk_seconds == pytest.approx(660.0)
    assert anna.calls_per_won_deal == pytest.approx(2.5)
    assert anna.talk_minutes_per_won_deal == pytest.approx(16.5)
    assert anna.conversion_pct == pytest.approx(100 / 3)
    boris = _by_login((await _report(db)).rows)["boris"]
    assert boris.calls_per_won_deal is None
    assert boris.conversion_pct is None


async def test_previous_period_has_the_same_length_and_its_own_figures(db: Database) -> None:
    """The comparison period is the two days before; a lead converted after its end is not converted there."""
    await ds.load(db)
    report = await _report(db)
    assert (report.previous_period.start, report.previous_period.end) == (
        date(2026, 10, 30),
        date(2026, 11, 1),
    )
    prev = _by_login(report.previous_rows)
    assert (prev["anna"].inbound, prev["anna"].answered, prev["anna"].talk_seconds) == (1, 1, 300)
    assert prev["boris"].deals_won == 1
    assert (prev["vera"].leads_received, prev["vera"].leads_converted) == (1, 0)
    assert None not in prev
    assert report.previous_totals.calls == 1


async def test_inactive_and_head_without_figures_get_no_row(db: Database) -> None:
    """Gleb (inactive) and Hugo (head) had nothing in the period, so they are not listed."""
    await ds.load(db)
    logins = {row.login for row in (await _report(db)).rows}
    assert "gleb" not in logins
    assert "hugo" not in logins


async def test_manager_filter_returns_only_that_manager(db: Database) -> None:
    """A manager's own report holds their row only, with the same figures, and no unassigned row."""
    ids = await ds.load(db)
    report = await _report(db, ReportFilter(manager_id=ids.anna))
    assert [row.login for row in report.rows] == ["anna"]
    assert _figures(report.rows[0]) == ds.EXPECTED["anna"]
    assert _figures(report.totals) == ds.EXPECTED["anna"]


async def test_team_filter_keeps_the_team_only(db: Database) -> None:
    """Team (speciality) wholesale is Vera alone; retail is Anna and Boris; unattributed calls are left out."""
    await ds.load(db)
    wholesale = await _report(db, ReportFilter(team="wholesale"))
    assert [row.login for row in wholesale.rows] == ["vera"]
    retail = await _report(db, ReportFilter(team="retail"))
    assert sorted(str(row.login) for row in retail.rows) == ["anna", "boris"]
    assert retail.totals.missed == 4


async def test_callback_after_the_grace_does_not_count(db: Database) -> None:
    """With no grace, Vera's callback the next morning is too late: Boris's 20:00 missed call stays unanswered."""
    await ds.load(db)
    rows = _by_login((await _report(db, options=QueryOptions(callback_grace=timedelta(0)))).rows)
    assert rows["boris"].missed_not_called_back == 2
    assert rows["anna"].missed_not_called_back == 1


async def test_exact_number_matching_misses_national_format_callbacks(db: Database) -> None:
    """Matching whole numbers, 89160000001 is not +79160000001, so Anna's callback is not recognised."""
    await ds.load(db)
    rows = _by_login((await _report(db, options=QueryOptions(match_digits=0))).rows)
    assert rows["anna"].missed_not_called_back == 2
    assert rows["vera"].missed_not_called_back == 1  # same stored format: still matched


async def test_period_days_follow_the_configured_time_zone(db: Database) -> None:
    """In UTC the period shifts by three hours: 1.1 drops out, 1.9 and Boris's 00:30 Moscow deal come in."""
    await ds.load(db)
    queries = ReportQueries(db)
    report = await queries.calls_vs_deals(Period(ds.FROM, ds.TO, "UTC"))
    rows = _by_login(report.rows)
    assert rows["anna"].talk_seconds == 1980 - 120 + 7
    assert rows["boris"].deals_won == 1


async def test_empty_database_lists_nothing_and_totals_zero(db: Database) -> None:
    """No managers and no calls: no rows, zero totals, undefined ratios."""
    report = await _report(db)
    assert report.rows == ()
    assert report.totals.calls == 0
    assert report.totals.avg_talk_seconds is None
