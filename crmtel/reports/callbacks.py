"""Report SQL for how fast missed calls are returned: per manager the time to callback (median and p90, by
window functions), how many were called back within ``reports.callback_sla_minutes`` and within the grace
window, and the open callback tasks that are overdue. Aggregated in the database on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, Select, and_, case, func, select

from crmtel.domain import Direction, Outcome
from crmtel.reports.models import Period, ReportFilter
from crmtel.store.models import CallRow, ExtensionRow, TaskRow

_CALLS = CallRow.__table__
_EXT = ExtensionRow.__table__
_TASKS = TaskRow.__table__


def _seconds_between(
    later: ColumnElement[Any], earlier: ColumnElement[Any], postgres: bool
) -> ColumnElement[Any]:
    if postgres:
        return func.extract("epoch", later - earlier)
    # SQLite keeps times as ISO text; julianday reads them (offset included) as fractional days.
    return (func.julianday(later) - func.julianday(earlier)) * 86400.0


def callback_stmt(
    period: Period,
    filt: ReportFilter,
    numbers: Any,
    grace: timedelta,
    sla: timedelta,
    manager_filter: Any,
    answered_calls: Any,
) -> Select[Any]:
    """Per manager: missed calls called back (within grace, within the SLA) or not, and the median/p90 delay.

    A missed call's callback is the first answered call (either direction, anyone's) with the same number
    key that started after it and before the period's end plus the grace window; the delay runs from the
    missed call's start to the callback's start. Percentiles are nearest-rank: the smallest delay with at
    least half (nine tenths) of the manager's called-back calls at or below it.
    """
    c = _CALLS.c
    window_end = period.end_utc + grace
    missed = (
        select(
            c.id,
            c.manager_id,
            c.answered_by,
            numbers.missed_key(c.caller_number).label("k"),
            c.started_at,
        )
        .where(
            c.started_at >= period.start_utc,
            c.started_at < period.end_utc,
            c.direction == Direction.INBOUND.value,
            c.outcome == Outcome.MISSED.value,
        )
        .cte("cb_missed")
    )
    # SQLite joins through an index it builds on the answered calls: narrowing them to the missed keys first
    # halves its work. PostgreSQL hash-joins them against the missed calls directly; the same filter there only
    # hashes the missed keys twice more (callback match 0.87 -> 0.71 s backend CPU without it, 10M calls).
    keys = None if numbers.postgres else select(missed.c.k)
    answered = answered_calls(period, numbers, window_end, keys)
    first = (
        select(
            missed.c.manager_id,
            missed.c.answered_by,
            missed.c.started_at,
            func.min(answered.c.at).label("back_at"),
        )
        .select_from(
            # Outer: a missed call nobody returned stays, with no callback time (it counts as not called back).
            missed.outerjoin(answered, and_(answered.c.k == missed.c.k, answered.c.at > missed.c.started_at))
        )
        .group_by(missed.c.id, missed.c.manager_id, missed.c.answered_by, missed.c.started_at)
        .subquery("cb_first")
    )
    mid = func.coalesce(first.c.manager_id, _EXT.c.manager_id)
    delay = _seconds_between(first.c.back_at, first.c.started_at, numbers.postgres)
    ranked = (
        select(
            mid.label("mid"),
            delay.label("delay"),
            # Ranks among the manager's called-back calls only (the others have no delay).
            func.row_number().over(partition_by=(mid, delay.is_(None)), order_by=delay).label("rn"),
            func.count(delay).over(partition_by=mid).label("n"),
        )
        .select_from(
            first.outerjoin(_EXT, and_(first.c.manager_id.is_(None), _EXT.c.extension == first.c.answered_by))
        )
        .where(*manager_filter(mid, filt))
        .subquery("cb_ranked")
    )
    r = ranked.c
    returned = r.delay.is_not(None)
    return select(
        r.mid.label("mid"),
        func.count(r.delay).label("called_back"),
        func.sum(case((returned, 0), else_=1)).label("missed_not_called_back"),
        func.sum(case((r.delay <= sla.total_seconds(), 1), else_=0)).label("called_back_in_sla"),
        func.min(case((and_(returned, r.rn * 2 >= r.n), r.delay), else_=None)).label(
            "callback_median_seconds"
        ),
        func.min(case((and_(returned, r.rn * 10 >= r.n * 9), r.delay), else_=None)).label(
            "callback_p90_seconds"
        ),
    ).group_by(r.mid)


def overdue_stmt(period: Period, filt: ReportFilter, now: datetime, manager_filter: Any) -> Select[Any]:
    """Per manager: callback tasks still open whose due time passed before the period's end (or now)."""
    t = _TASKS.c
    cutoff = min(now, period.end_utc)
    return (
        select(t.manager_id.label("mid"), func.count().label("overdue_tasks"))
        .where(
            t.kind == "callback", t.status == "open", t.due_at < cutoff, *manager_filter(t.manager_id, filt)
        )
        .group_by(t.manager_id)
    )
