"""Report queries: every figure is aggregated by the database (GROUP BY), on SQLite and PostgreSQL alike.

Each statement returns at most one row per manager; Python only merges those few aggregate rows.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Select,
    Subquery,
    and_,
    case,
    func,
    select,
    text,
    union_all,
)
from sqlalchemy.ext.asyncio import AsyncSession

from crmtel.config import ReportsSettings
from crmtel.domain import DealStatus, Direction, LeadStatus, Outcome, Role
from crmtel.reports.callbacks import callback_stmt, overdue_stmt
from crmtel.reports.models import (
    UNASSIGNED,
    CallsVsDeals,
    ManagerFigures,
    Period,
    ReportFilter,
    add_results,
)
from crmtel.store.call_callbacks import dialable_sql, digits_in, tail_sql
from crmtel.store.db import Database
from crmtel.store.models import CallRow, DealRow, ExtensionRow, LeadRow, ManagerRow

_CALLS = CallRow.__table__
_EXT = ExtensionRow.__table__
_DEALS = DealRow.__table__
_LEADS = LeadRow.__table__
_MANAGERS = ManagerRow.__table__
_COUNTED = (Direction.INBOUND.value, Direction.OUTBOUND.value)


@dataclass(frozen=True, slots=True)
class QueryOptions:
    """How callbacks are recognised (see ``ReportsSettings``)."""

    callback_grace: timedelta = timedelta(hours=24)
    match_digits: int = 10
    callback_sla: timedelta = timedelta(minutes=15)

    @classmethod
    def from_settings(cls, settings: ReportsSettings) -> QueryOptions:
        """The options the configuration asks for."""
        return cls(
            timedelta(hours=settings.callback_grace_hours),
            settings.callback_match_digits,
            timedelta(minutes=settings.callback_sla_minutes),
        )


def _one(condition: ColumnElement[bool]) -> ColumnElement[int]:
    return func.coalesce(func.sum(case((condition, 1), else_=0)), 0)


def _in(column: ColumnElement[Any], start: datetime, end: datetime) -> ColumnElement[bool]:
    return and_(column >= start, column < end)


def _manager_filter(mid: ColumnElement[Any], filt: ReportFilter) -> list[ColumnElement[bool]]:
    conds: list[ColumnElement[bool]] = []
    if filt.manager_id is not None:
        conds.append(mid == filt.manager_id)
    if filt.team is not None:
        conds.append(mid.in_(select(_MANAGERS.c.id).where(_MANAGERS.c.speciality == filt.team)))
    return conds


class _Numbers:
    """Dialect-specific pieces for matching a missed call's number with later calls."""

    def __init__(self, dialect: str, digits: int) -> None:
        self._dialect = dialect
        self._digits = digits

    def dialable(self, col: ColumnElement[Any]) -> ColumnElement[bool]:
        """Whether the stored number is digits (``anonymous`` and the like never match anything)."""
        return dialable_sql(self._dialect, col)

    def missed_key(self, col: ColumnElement[Any]) -> ColumnElement[Any]:
        """The key of a missed call's number, or null when it is no number (anonymous, junk)."""
        return case((self.dialable(col), self.key(col)), else_=None)

    def key(self, col: ColumnElement[Any]) -> ColumnElement[Any]:
        """The part of the number compared: its last N digits (or all of it)."""
        return tail_sql(self._dialect, col, self._digits)

    @property
    def postgres(self) -> bool:
        """Whether the database is PostgreSQL (else SQLite)."""
        return self._dialect == "postgresql"


def _sum_if(condition: ColumnElement[bool], value: ColumnElement[Any]) -> ColumnElement[Any]:
    return func.coalesce(func.sum(case((condition, value), else_=0)), 0)


def _call_sums(c: Any) -> list[ColumnElement[Any]]:
    answered = c.outcome == Outcome.ANSWERED.value
    return [
        _one(c.direction == Direction.INBOUND.value).label("inbound"),
        _one(c.direction == Direction.OUTBOUND.value).label("outbound"),
        _one(answered).label("answered"),
        _one(and_(c.direction == Direction.INBOUND.value, c.outcome == Outcome.MISSED.value)).label("missed"),
        _sum_if(answered, c.talk_seconds).label("talk_seconds"),
    ]


def _calls_stmt(period: Period, filt: ReportFilter) -> Select[Any]:
    c = _CALLS.c
    m = _MANAGERS.c
    counted = (
        _in(c.started_at, period.start_utc, period.end_utc),
        c.direction.in_(_COUNTED),
        c.outcome.is_not(None),
    )
    # Calls the pipeline attributed: one index range per manager (ix_calls_manager_started), already in
    # manager order, so even SQLite, which has no hash aggregation, groups them without sorting.
    attributed = (
        select(m.id.label("mid"), *_call_sums(c))
        .select_from(_MANAGERS.join(_CALLS, c.manager_id == m.id))
        .where(*counted, *_manager_filter(m.id, filt))
        .group_by(m.id)
    )
    # Calls it left without a manager go to whoever owns the extension that answered.
    mid = _EXT.c.manager_id
    unattributed = (
        select(mid.label("mid"), *_call_sums(c))
        .select_from(_CALLS.outerjoin(_EXT, _EXT.c.extension == c.answered_by))
        .where(c.manager_id.is_(None), *counted, *_manager_filter(mid, filt))
        .group_by(mid)
    )
    both = union_all(attributed, unattributed).subquery("call_sums")
    b = both.c
    return select(
        b.mid,
        *(
            func.sum(col).label(col.name)
            for col in (b.inbound, b.outbound, b.answered, b.missed, b.talk_seconds)
        ),
    ).group_by(b.mid)


def _answered_calls(
    period: Period, numbers: _Numbers, window_end: datetime, keys: Select[Any] | None
) -> Subquery:
    """Answered inbound and outbound calls of the callback window: (number key, start)."""
    c = _CALLS.c

    def part(direction: Direction, number: ColumnElement[Any]) -> Select[Any]:
        # No digits check here: the missed side's key is null unless it is digits, so junk never matches.
        conds = [
            _in(c.started_at, period.start_utc, window_end),
            c.direction == direction.value,
            c.outcome == Outcome.ANSWERED.value,
        ]
        if keys is not None:
            conds.append(numbers.key(number).in_(keys))
        return select(numbers.key(number).label("k"), c.started_at.label("at")).where(*conds)

    return union_all(part(Direction.INBOUND, c.caller_number), part(Direction.OUTBOUND, c.dialled)).subquery(
        "answered_calls"
    )


def _deals_won_stmt(period: Period, filt: ReportFilter) -> Select[Any]:
    d = _DEALS.c
    return (
        select(d.manager_id.label("mid"), func.count().label("deals_won"))
        .where(
            d.status == DealStatus.WON.value,
            _in(d.closed_at, period.start_utc, period.end_utc),
            *_manager_filter(d.manager_id, filt),
        )
        .group_by(d.manager_id)
    )


def _deals_opened_stmt(period: Period, filt: ReportFilter) -> Select[Any]:
    d = _DEALS.c
    return (
        select(d.manager_id.label("mid"), func.count().label("deals_opened"))
        .where(_in(d.opened_at, period.start_utc, period.end_utc), *_manager_filter(d.manager_id, filt))
        .group_by(d.manager_id)
    )


def _leads_stmt(period: Period, filt: ReportFilter) -> Select[Any]:
    ld = _LEADS.c
    converted = and_(
        ld.status == LeadStatus.CONVERTED.value,
        ld.converted_at.is_not(None),
        ld.converted_at < period.end_utc,
    )
    return (
        select(
            ld.manager_id.label("mid"),
            func.count().label("leads_received"),
            _one(converted).label("leads_converted"),
        )
        .where(_in(ld.created_at, period.start_utc, period.end_utc), *_manager_filter(ld.manager_id, filt))
        .group_by(ld.manager_id)
    )


def _results_stmt(period: Period, filt: ReportFilter) -> Select[Any]:
    """The results picked for the period's calls, per manager who picked them (else the call's manager)."""
    c = _CALLS.c
    mid = func.coalesce(c.result_by, c.manager_id)
    return (
        select(mid.label("mid"), c.result, func.count().label("n"))
        .where(
            _in(c.started_at, period.start_utc, period.end_utc),
            c.result.is_not(None),
            *_manager_filter(mid, filt),
        )
        .group_by(mid, c.result)
    )


def _managers_stmt(filt: ReportFilter) -> Select[Any]:
    m = _MANAGERS.c
    stmt = select(m.id, m.name, m.login, m.active, m.role).order_by(m.name, m.id)
    if filt.manager_id is not None:
        stmt = stmt.where(m.id == filt.manager_id)
    if filt.team is not None:
        stmt = stmt.where(m.speciality == filt.team)
    return stmt


_Converters: Mapping[str, Callable[[Any], int | float]] = {
    "inbound": int,
    "outbound": int,
    "answered": int,
    "missed": int,
    "talk_seconds": float,
    "missed_not_called_back": int,
    "deals_won": int,
    "deals_opened": int,
    "leads_received": int,
    "leads_converted": int,
    "called_back": int,
    "called_back_in_sla": int,
    "overdue_tasks": int,
    "callback_median_seconds": float,
    "callback_p90_seconds": float,
}
# Figures that stay None when there is nothing to measure (a median of no callbacks is not zero).
_OPTIONAL = frozenset({"callback_median_seconds", "callback_p90_seconds"})


class ReportQueries:
    """Runs the calls-versus-deals report over the record store."""

    def __init__(
        self, db: Database, options: QueryOptions | None = None, *, stored_callbacks: bool = True
    ) -> None:
        """``stored_callbacks`` False: always match missed calls with their callbacks here (the reference)."""
        self._db = db
        self._options = options or QueryOptions()
        self._stored_callbacks = stored_callbacks
        self._numbers = _Numbers(db.engine.dialect.name, self._options.match_digits)

    async def calls_vs_deals(self, period: Period, filt: ReportFilter | None = None) -> CallsVsDeals:
        """The report for ``period`` and the previous period of the same length (run side by side)."""
        filt = filt or ReportFilter()
        previous = period.previous()
        async with asyncio.TaskGroup() as tg:
            current_task = tg.create_task(self.figures(period, filt), name="report-current-period")
            previous_task = tg.create_task(self.figures(previous, filt), name="report-previous-period")
        return CallsVsDeals(
            period=period,
            filter=filt,
            rows=current_task.result(),
            previous_period=previous,
            previous_rows=previous_task.result(),
            generated_at=datetime.now(UTC),
        )

    async def figures(self, period: Period, filt: ReportFilter) -> tuple[ManagerFigures, ...]:
        """One row per manager (active ones even with nothing to show), plus unattributed figures if any."""
        merged: dict[int | None, dict[str, int | float | None]] = {}
        async with self._db.session() as session:
            # Each missed call's first callback is stored with it when computed with the digits asked for.
            stored = self._stored_callbacks and await digits_in(session) == self._options.match_digits
            statements = (
                _calls_stmt(period, filt),
                _deals_won_stmt(period, filt),
                _deals_opened_stmt(period, filt),
                _leads_stmt(period, filt),
                callback_stmt(
                    period,
                    filt,
                    self._numbers,
                    self._options.callback_grace,
                    self._options.callback_sla,
                    _manager_filter,
                    _answered_calls,
                    stored,
                ),
                overdue_stmt(period, filt, datetime.now(UTC), _manager_filter),
            )
            if self._db.engine.dialect.name == "postgresql":
                # Big one-off aggregations: JIT compiling costs more than it saves, and hashes must fit in memory.
                await session.execute(text("SET LOCAL jit = off"))
                await session.execute(text("SET LOCAL work_mem = '64MB'"))
                await session.execute(text("SET LOCAL max_parallel_workers_per_gather = 0"))
                # Prepared statements are reused; a generic plan that ignores the dates is much slower here.
                await session.execute(text("SET LOCAL plan_cache_mode = force_custom_plan"))
                # The callback match joins the month's missed calls to the answered ones by number key; the
                # planner cannot estimate the keys of a CTE (it guesses 200) and sorts both sides for a merge
                # join. Hashing them is exact all the same: 2.1-3.3 s -> 1.2-1.6 s on 10M calls (same load).
                await session.execute(text("SET LOCAL enable_mergejoin = off"))
            else:
                # SQLite sorts for GROUP BY; keep those sorts in memory rather than in temporary files.
                await session.execute(text("PRAGMA temp_store = MEMORY"))
            managers = (await session.execute(_managers_stmt(filt))).all()
            for stmt in statements:
                await _merge(session, stmt, merged)
            picked: dict[int | None, tuple[tuple[str, int], ...]] = {}
            for mid, result, n in (await session.execute(_results_stmt(period, filt))).all():
                picked[mid] = add_results(picked.get(mid, ()), ((str(result), int(n)),))
        for mid in picked:
            # A manager with results only (say, a head who marked calls) still gets a row.
            merged.setdefault(mid, {})
        # Active sales managers always get a row (a zero is news too); heads and leavers only with figures.
        rows = [
            replace(_row(mid, name, login, merged.pop(mid, {})), results=picked.pop(mid, ()))
            for mid, name, login, active, role in managers
            if (active and role == Role.MANAGER.value) or mid in merged
        ]
        # Figures of a deleted manager (ids left behind) or of nobody are shown as unassigned, never dropped.
        leftover = ManagerFigures(manager_id=None, name=UNASSIGNED)
        for mid, values in merged.items():
            leftover = leftover.plus(
                replace(_row(None, UNASSIGNED, None, values), results=picked.get(mid, ()))
            )
        if merged and not filt.narrowed:
            rows.append(leftover)
        return tuple(rows)


async def _merge(
    session: AsyncSession, stmt: Select[Any], merged: dict[int | None, dict[str, int | float | None]]
) -> None:
    result = await session.execute(stmt)
    for mapping in result.mappings():
        target = merged.setdefault(mapping["mid"], {})
        for key, value in mapping.items():
            if key != "mid":
                if value is None and key in _OPTIONAL:
                    target[key] = None
                else:
                    target[key] = _Converters[key](value or 0)


def _row(mid: int | None, name: str, login: str | None, values: Mapping[str, Any]) -> ManagerFigures:
    return replace(ManagerFigures(manager_id=mid, name=name, login=login), **values)
