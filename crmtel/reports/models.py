"""Typed report rows: the calls-versus-deals figures of one manager, of everyone, and of a period."""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from crmtel.config import Settings
from crmtel.errors import ConfigError

UNASSIGNED = "(unassigned)"
TOTAL = "Total"


@dataclass(frozen=True, slots=True)
class Period:
    """Local days ``[start, end)`` in time zone ``tz``; a call belongs to the day it started on."""

    start: date
    end: date
    tz: str
    # The days compared with, when the period says so itself (a month or week *so far* is compared with the
    # same days before it); None: the rule of ``previous``.
    versus: tuple[date, date] | None = None

    def __post_init__(self) -> None:
        if self.end <= self.start:
            raise ValueError(f"period end {self.end} must be after its start {self.start}")
        zone(self.tz)

    @property
    def days(self) -> int:
        """Length in days."""
        return (self.end - self.start).days

    @property
    def start_utc(self) -> datetime:
        """The first instant of the period, in UTC."""
        return _local_midnight_utc(self.start, self.tz)

    @property
    def end_utc(self) -> datetime:
        """The first instant after the period, in UTC."""
        return _local_midnight_utc(self.end, self.tz)

    @property
    def months(self) -> int | None:
        """How many whole calendar months the period is (1 Nov – 1 Dec: 1), else None."""
        if self.start.day != 1 or self.end.day != 1:
            return None
        return (self.end.year - self.start.year) * 12 + self.end.month - self.start.month

    def previous(self) -> Period:
        """The period compared with: ``versus`` when set (a month or week so far); the previous calendar months
        for whole months; else the same number of days just before."""
        if self.versus is not None:
            return Period(self.versus[0], self.versus[1], self.tz)
        months = self.months
        if months is not None:
            return Period(add_months(self.start, -months), self.start, self.tz)
        return Period(self.start - timedelta(days=self.days), self.start, self.tz)


def month_so_far(today: date, tz: str) -> Period:
    """The 1st of this month to the end of today, compared with the same days of the month before (1–6 Dec
    against 1–6 Nov; cut at a shorter month's end) — like with like, not against a whole month."""
    start = today.replace(day=1)
    end = today + timedelta(days=1)
    before = add_months(start, -1)
    return Period(start, end, tz, versus=(before, min(before + (end - start), start)))


def week_so_far(today: date, tz: str) -> Period:
    """Monday to the end of today, compared with the same weekdays of the week before."""
    start = today - timedelta(days=today.weekday())
    end = today + timedelta(days=1)
    return Period(start, end, tz, versus=(start - timedelta(days=7), end - timedelta(days=7)))


def add_months(day: date, months: int) -> date:
    """The first-of-month ``months`` after (or before) ``day``'s month (``day`` must be a first)."""
    index = day.year * 12 + day.month - 1 + months
    return date(index // 12, index % 12 + 1, 1)


PRESETS = ("today", "yesterday", "this_week", "last_week", "this_month", "last_month")


def preset_period(name: str, today: date, tz: str) -> Period:
    """A named period around ``today`` (weeks start on Monday); ValueError for an unknown name. This week and
    this month are *so far* (up to the end of today), so they compare with the same days before."""
    month = today.replace(day=1)
    week = today - timedelta(days=today.weekday())
    match name:
        case "today":
            return Period(today, today + timedelta(days=1), tz)
        case "yesterday":
            return Period(today - timedelta(days=1), today, tz)
        case "this_week":
            return week_so_far(today, tz)
        case "last_week":
            return Period(week - timedelta(days=7), week, tz)
        case "this_month":
            return month_so_far(today, tz)
        case "last_month":
            return Period(add_months(month, -1), month, tz)
    raise ValueError(f"unknown period preset {name!r} (one of {', '.join(PRESETS)})")


def report_timezone(settings: Settings) -> str:
    """The time zone report days are counted in: ``reports.timezone``, else ``routing.timezone``."""
    return settings.reports.timezone or settings.routing.timezone


def zone(name: str) -> ZoneInfo:
    """The IANA time zone ``name``, or ConfigError."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as err:
        raise ConfigError(f"unknown time zone {name!r}") from err


def _local_midnight_utc(day: date, tz: str) -> datetime:
    return datetime.combine(day, time(0), zone(tz)).astimezone(UTC)


@dataclass(frozen=True, slots=True)
class ReportFilter:
    """Which managers a report covers: everyone, one manager (by id), or one team (speciality)."""

    manager_id: int | None = None
    team: str | None = None

    @property
    def narrowed(self) -> bool:
        """Whether the report is limited to some managers (then unattributed figures are left out)."""
        return self.manager_id is not None or self.team is not None


@dataclass(frozen=True, slots=True)
class ManagerFigures:
    """One report row: a manager's (or the unassigned, or the total) figures for a period."""

    manager_id: int | None
    name: str
    login: str | None = None
    inbound: int = 0
    outbound: int = 0
    answered: int = 0
    missed: int = 0
    missed_not_called_back: int = 0
    talk_seconds: float = 0.0
    deals_won: int = 0
    deals_opened: int = 0
    leads_received: int = 0
    leads_converted: int = 0
    # Missed calls returned by an answered call within the grace window / within callback_sla_minutes.
    called_back: int = 0
    called_back_in_sla: int = 0
    # Median and p90 time to callback (seconds); per manager only: a median cannot be summed.
    callback_median_seconds: float | None = None
    callback_p90_seconds: float | None = None
    overdue_tasks: int = 0
    # The one-click results of the period's calls, as (result, calls) pairs, most frequent first.
    results: tuple[tuple[str, int], ...] = ()

    @property
    def calls(self) -> int:
        """Inbound plus outbound calls (internal calls are never counted)."""
        return self.inbound + self.outbound

    @property
    def avg_talk_seconds(self) -> float | None:
        """Talk time per answered call."""
        return self.talk_seconds / self.answered if self.answered else None

    @property
    def calls_per_won_deal(self) -> float | None:
        """Calls per deal won in the period."""
        return self.calls / self.deals_won if self.deals_won else None

    @property
    def talk_minutes_per_won_deal(self) -> float | None:
        """Talk minutes per deal won in the period."""
        return self.talk_seconds / 60 / self.deals_won if self.deals_won else None

    @property
    def conversion_pct(self) -> float | None:
        """Share of the leads received in the period that became clients by its end, in per cent."""
        return 100 * self.leads_converted / self.leads_received if self.leads_received else None

    @property
    def called_back_pct(self) -> float | None:
        """Share of the missed calls called back within the grace window, in per cent."""
        return 100 * self.called_back / self.missed if self.missed else None

    @property
    def called_back_in_sla_pct(self) -> float | None:
        """Share of the missed calls called back within ``reports.callback_sla_minutes``, in per cent."""
        return 100 * self.called_back_in_sla / self.missed if self.missed else None

    def plus(self, other: ManagerFigures) -> ManagerFigures:
        """The sum of two rows' counts (identity taken from ``self``; percentiles do not add up, so none)."""
        sums = {name: getattr(self, name) + getattr(other, name) for name in COUNTS}
        return replace(
            self,
            **sums,
            results=add_results(self.results, other.results),
            callback_median_seconds=None,
            callback_p90_seconds=None,
        )


COUNTS = (
    "inbound",
    "outbound",
    "answered",
    "missed",
    "missed_not_called_back",
    "talk_seconds",
    "deals_won",
    "deals_opened",
    "leads_received",
    "leads_converted",
    "called_back",
    "called_back_in_sla",
    "overdue_tasks",
)


def add_results(*parts: tuple[tuple[str, int], ...]) -> tuple[tuple[str, int], ...]:
    """Result counts added up, most frequent first (then by result)."""
    counts: dict[str, int] = {}
    for part in parts:
        for result, n in part:
            counts[result] = counts.get(result, 0) + n
    return tuple(sorted(counts.items(), key=lambda item: (-item[1], item[0])))


def total_of(rows: tuple[ManagerFigures, ...]) -> ManagerFigures:
    """The total row of ``rows``."""
    total = ManagerFigures(manager_id=None, name=TOTAL)
    for row in rows:
        total = total.plus(row)
    return total


@dataclass(frozen=True, slots=True)
class CallsVsDeals:
    """The whole report: per-manager rows, totals, and the previous period's totals for comparison."""

    period: Period
    filter: ReportFilter
    rows: tuple[ManagerFigures, ...]
    previous_period: Period
    previous_rows: tuple[ManagerFigures, ...]
    generated_at: datetime

    @property
    def totals(self) -> ManagerFigures:
        """Sum of every row of the period."""
        return total_of(self.rows)

    @property
    def previous_totals(self) -> ManagerFigures:
        """Sum of every row of the previous period."""
        return total_of(self.previous_rows)


def change_pct(current: float | None, previous: float | None) -> float | None:
    """Relative change from ``previous`` to ``current`` in per cent (None when it is undefined)."""
    if current is None or previous is None or previous == 0:
        return None
    return 100 * (current - previous) / previous
