"""Report periods (local days to UTC instants, previous period) and the derived figures of a row."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest

from crmtel.config import Settings
from crmtel.errors import ConfigError
from crmtel.reports.models import (
    ManagerFigures,
    Period,
    change_pct,
    month_so_far,
    preset_period,
    report_timezone,
    total_of,
    week_so_far,
)


def test_period_bounds_are_local_midnights_in_utc() -> None:
    """1–3 November in Moscow (UTC+3) runs from 31 Oct 21:00 UTC to 2 Nov 21:00 UTC."""
    p = Period(date(2026, 11, 1), date(2026, 11, 3), "Europe/Moscow")
    assert p.start_utc == datetime(2026, 10, 31, 21, 0, tzinfo=UTC)
    assert p.end_utc == datetime(2026, 11, 2, 21, 0, tzinfo=UTC)
    assert p.days == 2


def test_period_follows_daylight_saving_changes() -> None:
    """A Berlin day that contains the October clock change is 25 hours long."""
    p = Period(date(2026, 10, 25), date(2026, 10, 26), "Europe/Berlin")
    assert (p.end_utc - p.start_utc).total_seconds() == 25 * 3600


def test_previous_period_of_other_spans_has_the_same_number_of_days() -> None:
    """Two days compare with the two days before them; a week with the week before."""
    p = Period(date(2026, 11, 2), date(2026, 11, 4), "UTC").previous()
    assert (p.start, p.end) == (date(2026, 10, 31), date(2026, 11, 2))
    w = Period(date(2026, 11, 23), date(2026, 11, 30), "UTC").previous()
    assert (w.start, w.end) == (date(2026, 11, 16), date(2026, 11, 23))


@pytest.mark.parametrize(
    ("start", "end", "prev_start"),
    [
        (date(2026, 11, 1), date(2026, 12, 1), date(2026, 10, 1)),  # November vs October (31 days)
        (date(2026, 3, 1), date(2026, 4, 1), date(2026, 2, 1)),  # March vs February (28 days)
        (date(2026, 1, 1), date(2026, 2, 1), date(2025, 12, 1)),  # across the year
        (date(2026, 10, 1), date(2027, 1, 1), date(2026, 7, 1)),  # a quarter vs the quarter before
    ],
)
def test_previous_period_of_calendar_months_is_the_previous_calendar_months(
    start: date, end: date, prev_start: date
) -> None:
    """A whole-month period compares with the same number of calendar months just before it."""
    p = Period(start, end, "UTC").previous()
    assert (p.start, p.end) == (prev_start, start)


@pytest.mark.parametrize(
    ("name", "start", "end"),
    [
        ("today", date(2026, 12, 1), date(2026, 12, 2)),
        ("yesterday", date(2026, 11, 30), date(2026, 12, 1)),
        ("this_week", date(2026, 11, 30), date(2026, 12, 2)),  # 1 Dec 2026 is a Tuesday: Mon and Tue so far
        ("last_week", date(2026, 11, 23), date(2026, 11, 30)),
        ("this_month", date(2026, 12, 1), date(2026, 12, 2)),  # the month so far
        ("last_month", date(2026, 11, 1), date(2026, 12, 1)),
    ],
)
def test_period_presets_around_today(name: str, start: date, end: date) -> None:
    """Each preset names the days it covers (weeks from Monday), in the report's zone."""
    p = preset_period(name, date(2026, 12, 1), "Europe/Moscow")
    assert (p.start, p.end, p.tz) == (start, end, "Europe/Moscow")


def test_unknown_preset_is_refused() -> None:
    """A preset name outside the list is a ValueError naming the choices."""
    with pytest.raises(ValueError, match="this_month"):
        preset_period("fortnight", date(2026, 12, 1), "UTC")


def test_empty_or_reversed_period_is_refused() -> None:
    """A period must contain at least one day."""
    with pytest.raises(ValueError, match="after its start"):
        Period(date(2026, 11, 1), date(2026, 11, 1), "UTC")


def test_unknown_time_zone_is_a_config_error() -> None:
    """A misspelt zone is reported as a configuration error, not a crash."""
    with pytest.raises(ConfigError, match="unknown time zone"):
        Period(date(2026, 11, 1), date(2026, 11, 2), "Mars/Olympus")


def test_reports_time_zone_defaults_to_routing_time_zone() -> None:
    """Without reports.timezone, the routing time zone counts the days."""
    assert report_timezone(Settings()) == "Europe/Moscow"
    assert report_timezone(Settings(reports={"timezone": "Asia/Yekaterinburg"})) == "Asia/Yekaterinburg"


def test_derived_figures_and_their_undefined_cases() -> None:
    """Ratios divide by answered calls, won deals and leads; with a zero divisor they are None."""
    row = ManagerFigures(
        1,
        "A",
        inbound=6,
        outbound=4,
        answered=5,
        talk_seconds=600,
        deals_won=2,
        leads_received=4,
        leads_converted=1,
    )
    assert (row.calls, row.avg_talk_seconds, row.calls_per_won_deal) == (10, 120.0, 5.0)
    assert (row.talk_minutes_per_won_deal, row.conversion_pct) == (5.0, 25.0)
    empty = ManagerFigures(2, "B")
    assert (empty.avg_talk_seconds, empty.calls_per_won_deal, empty.conversion_pct) == (None, None, None)


def test_total_sums_every_count() -> None:
    """The total row adds counts across rows and recomputes ratios from the sums."""
    a = ManagerFigures(1, "A", inbound=1, answered=1, talk_seconds=60, deals_won=1)
    b = ManagerFigures(2, "B", outbound=3, answered=1, talk_seconds=180, deals_won=1)
    t = total_of((a, b))
    assert (t.calls, t.answered, t.talk_seconds, t.deals_won, t.avg_talk_seconds) == (4, 2, 240, 2, 120.0)


def test_change_pct() -> None:
    """Relative change in per cent; undefined from zero or unknown."""
    assert change_pct(15, 10) == 50.0
    assert change_pct(5, 0) is None
    assert change_pct(None, 3) is None


@pytest.mark.parametrize(
    ("today", "prev"),
    [
        (date(2026, 12, 6), (date(2026, 11, 1), date(2026, 11, 7))),  # 1–6 Dec vs 1–6 Nov
        (date(2026, 3, 30), (date(2026, 2, 1), date(2026, 3, 1))),  # 1–30 March vs all of February
        (date(2026, 12, 31), (date(2026, 11, 1), date(2026, 12, 1))),  # December so far vs all of November
        (date(2026, 3, 31), (date(2026, 2, 1), date(2026, 3, 1))),  # 1–31 March vs 1–28 February
        (date(2026, 3, 28), (date(2026, 2, 1), date(2026, 3, 1))),  # 1–28 March vs 1–28 February: all of it
        (date(2026, 3, 27), (date(2026, 2, 1), date(2026, 2, 28))),  # one day short of February's end
        (date(2028, 3, 30), (date(2028, 2, 1), date(2028, 3, 1))),  # a leap year: 1–29 February
        (date(2028, 2, 29), (date(2028, 1, 1), date(2028, 1, 30))),  # 1–29 Feb vs 1–29 Jan
        (date(2026, 5, 31), (date(2026, 4, 1), date(2026, 5, 1))),  # 31 May vs April's 30 days
        (date(2027, 1, 6), (date(2026, 12, 1), date(2026, 12, 7))),  # over the new year
        (date(2026, 12, 1), (date(2026, 11, 1), date(2026, 11, 2))),  # the 1st vs the 1st
    ],
)
def test_a_month_so_far_compares_with_the_same_days_of_the_month_before(
    today: date, prev: tuple[date, date]
) -> None:
    """This month so far is compared with the same days of last month (not all of it: no −56 % everywhere)."""
    p = month_so_far(today, "UTC").previous()
    assert (p.start, p.end) == prev


def test_a_week_so_far_compares_with_the_same_weekdays_of_the_week_before() -> None:
    """Monday and Tuesday against last Monday and Tuesday."""
    p = week_so_far(date(2026, 12, 1), "UTC")
    assert (p.start, p.end) == (date(2026, 11, 30), date(2026, 12, 2))
    assert (p.previous().start, p.previous().end) == (date(2026, 11, 23), date(2026, 11, 25))
