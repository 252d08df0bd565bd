"""Queue report and heatmap queries: aggregated by the database (GROUP BY, percentiles), SQLite and PostgreSQL.

Per queue the figures come from ``call_queue_visits`` (one row per wait of an inbound call in a queue), per
member from ``call_queue_offers``; both are read through their report index over the period's range.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, Select, and_, case, cast, extract, func, select, text
from sqlalchemy import Integer as SqlInteger
from sqlalchemy.ext.asyncio import AsyncSession

from crmtel.domain import Direction, Outcome, QueueOutcome
from crmtel.reports.models import Period, zone
from crmtel.reports.queue_models import Heatmap, MemberFigures, QueueFigures, QueueReport
from crmtel.store.db import Database
from crmtel.store.models import CallRow, ExtensionRow, ManagerRow, QueueOfferRow, QueueVisitRow

_V = QueueVisitRow.__table__
_O = QueueOfferRow.__table__
_CALLS = CallRow.__table__
P90 = 0.9


def _count_if(condition: ColumnElement[bool]) -> ColumnElement[Any]:
    return func.coalesce(func.sum(case((condition, 1), else_=0)), 0)


def _avg_if(condition: ColumnElement[bool], value: ColumnElement[Any]) -> ColumnElement[Any]:
    # AVG skips nulls: only the rows meeting the condition are averaged.
    return func.avg(case((condition, value), else_=None))


def _period_conds(col: ColumnElement[Any], period: Period) -> list[ColumnElement[bool]]:
    return [col >= period.start_utc, col < period.end_utc]


def _queue_stmt(period: Period, queue: str | None, sl_seconds: int, postgres: bool) -> Select[Any]:
    v = _V.c
    answered = v.outcome == QueueOutcome.ANSWERED.value
    abandoned = v.outcome == QueueOutcome.ABANDONED.value
    conds = _period_conds(v.started_at, period)
    if queue is not None:
        conds.append(v.queue == queue)
    columns: list[ColumnElement[Any]] = [
        v.queue,
        func.count().label("offered"),
        _count_if(answered).label("answered"),
        _count_if(abandoned).label("abandoned"),
        _count_if(v.outcome == QueueOutcome.EXITED.value).label("exited"),
        _count_if(and_(answered, v.wait_seconds <= sl_seconds)).label("within_sl"),
        _avg_if(answered, v.wait_seconds).label("wait_avg"),
        _avg_if(abandoned, v.wait_seconds).label("abandon_wait_avg"),
        _avg_if(answered, v.talk_seconds).label("talk_avg"),
    ]
    if postgres:
        columns.append(
            func.percentile_cont(P90).within_group(v.wait_seconds).filter(answered).label("wait_p90")
        )
    return select(*columns).where(*conds).group_by(v.queue).order_by(v.queue)


def _sqlite_p90_stmt(period: Period, answered: dict[str, int]) -> Select[Any] | None:
    """percentile_cont(0.9) of the answered waits per queue, for SQLite (it has no percentile function).

    With n answered calls per queue (from the main query), rank i = 0..n-1 in wait order; the percentile sits
    at 0.9 × (n - 1) = lo + frac and is the wait at lo plus frac of the step to the next (exactly PostgreSQL's
    percentile_cont). One window sort ranks the waits; only the two ranks wanted per queue are kept.
    """
    wanted = {q: n for q, n in answered.items() if n > 0}
    if not wanted:
        return None
    v = _V.c
    ranked = (
        select(
            v.queue,
            v.wait_seconds.label("w"),
            (func.row_number().over(partition_by=v.queue, order_by=v.wait_seconds) - 1).label("i"),
        )
        .where(
            *_period_conds(v.started_at, period),
            v.outcome == QueueOutcome.ANSWERED.value,
            v.queue.in_(list(wanted)),
        )
        .subquery("ranked_waits")
    )
    r = ranked.c
    # lo and frac per queue as exact integers/tenths: 9 × (n - 1) = 10 × lo + tenths.
    lo = case(*((r.queue == q, (9 * (n - 1)) // 10) for q, n in wanted.items()), else_=-1)
    frac = case(*((r.queue == q, ((9 * (n - 1)) % 10) / 10) for q, n in wanted.items()), else_=0.0)
    at_lo = func.max(case((r.i == lo, r.w), else_=None))
    at_hi = func.coalesce(func.max(case((r.i == lo + 1, r.w), else_=None)), at_lo)
    return (
        select(r.queue, (at_lo + func.max(frac) * (at_hi - at_lo)).label("wait_p90"))
        .where(r.i.in_([lo, lo + 1]))
        .group_by(r.queue)
    )


def _members_stmt(period: Period, queue: str | None) -> Select[Any]:
    o = _O.c
    conds = _period_conds(o.started_at, period)
    if queue is not None:
        conds.append(o.queue == queue)
    return (
        select(
            o.queue,
            o.extension,
            func.count().label("offered"),
            _count_if(o.answered).label("answered"),
        )
        .where(*conds)
        .group_by(o.queue, o.extension)
        .order_by(o.queue, o.extension)
    )


def _names_stmt() -> Select[Any]:
    e, m = ExtensionRow.__table__.c, ManagerRow.__table__.c
    return select(e.extension, m.name, m.login).select_from(
        ExtensionRow.__table__.join(ManagerRow.__table__, e.manager_id == m.id)
    )


def _offset_segments(period: Period) -> list[tuple[datetime, int]]:
    """(UTC instant from which it holds, UTC offset in seconds) for the period, one per DST change."""
    tz = zone(period.tz)
    at = period.start_utc
    segments: list[tuple[datetime, int]] = []
    while at < period.end_utc:
        offset = at.astimezone(tz).utcoffset()
        seconds = int(offset.total_seconds()) if offset is not None else 0
        if not segments or segments[-1][1] != seconds:
            segments.append((at, seconds))
        at += timedelta(hours=1)
    return segments


def _local_parts(col: ColumnElement[Any], period: Period, postgres: bool) -> tuple[Any, Any]:
    """The local weekday (0 = Monday) and hour of a UTC timestamp column, in the period's zone."""
    if postgres:
        local = func.timezone(period.tz, col)
        weekday = cast(extract("isodow", local), SqlInteger) - 1
        return weekday, cast(extract("hour", local), SqlInteger)
    # SQLite has no time zones: shift by the zone's offset, which is constant between DST changes.
    segments = _offset_segments(period)

    def shifted(fmt: str) -> ColumnElement[Any]:
        parts = [func.strftime(fmt, col, f"{seconds:+d} seconds") for _, seconds in segments]
        if len(parts) == 1:
            return parts[0]
        whens = [(col < segments[k + 1][0], parts[k]) for k in range(len(segments) - 1)]
        return case(*whens, else_=parts[-1])

    weekday = (cast(shifted("%w"), SqlInteger) + 6) % 7
    return weekday, cast(shifted("%H"), SqlInteger)


def _heatmap_stmt(period: Period, postgres: bool) -> Select[Any]:
    """Counts per UTC minute first (a cheap key per row), then each minute's local weekday and hour.

    Converting a few tens of thousands of minutes instead of every call keeps the zone arithmetic off the
    hot path; minutes (not hours) keep zones with half- and quarter-hour offsets exact.
    """
    c = _CALLS.c
    if postgres:
        bucket: ColumnElement[Any] = func.date_trunc("minute", c.started_at)
    else:
        # SQLite keeps 'YYYY-MM-DD HH:MM:SS.ffffff'; the minute is its first 16 characters, and with ':00.000000'
        # appended it compares with the bound instants exactly as the stored values do.
        bucket = func.substr(c.started_at, 1, 16).concat(":00.000000")
    minutes = (
        select(
            bucket.label("minute"),
            func.count().label("inbound"),
            _count_if(c.outcome == Outcome.MISSED.value).label("missed"),
        )
        .where(
            c.direction == Direction.INBOUND.value,
            c.outcome.in_([Outcome.ANSWERED.value, Outcome.MISSED.value]),
            *_period_conds(c.started_at, period),
        )
        .group_by(bucket)
        .subquery("minutes")
    )
    m = minutes.c
    weekday, hour = _local_parts(m.minute, period, postgres)
    return (
        select(weekday.label("wd"), hour.label("h"), func.sum(m.inbound), func.sum(m.missed))
        .select_from(minutes)
        .group_by(weekday, hour)
    )


def _float(value: Any) -> float | None:
    return None if value is None else float(value)


class QueueQueries:
    """Runs the queue report and the heatmap over the record store."""

    def __init__(self, db: Database, *, service_level_seconds: int = 20) -> None:
        self._db = db
        self._sl = service_level_seconds
        self._postgres = db.engine.dialect.name == "postgresql"

    @property
    def service_level_seconds(self) -> int:
        """Answered within this many seconds counts toward the service level."""
        return self._sl

    async def _prepare(self, session: AsyncSession) -> None:
        if self._postgres:
            # One-off aggregations: JIT compiling costs more than it saves; custom plans see the dates.
            await session.execute(text("SET LOCAL jit = off"))
            await session.execute(text("SET LOCAL work_mem = '64MB'"))
            await session.execute(text("SET LOCAL plan_cache_mode = force_custom_plan"))
        else:
            await session.execute(text("PRAGMA temp_store = MEMORY"))

    async def queues(self, period: Period, queue: str | None = None) -> QueueReport:
        """Per-queue and per-member figures of ``period`` (one queue if ``queue`` is given)."""
        async with self._db.session() as session:
            await self._prepare(session)
            rows = (await session.execute(_queue_stmt(period, queue, self._sl, self._postgres))).mappings()
            queue_rows = [dict(r) for r in rows]
            if not self._postgres:
                p90_stmt = _sqlite_p90_stmt(period, {r["queue"]: int(r["answered"]) for r in queue_rows})
                p90 = dict((await session.execute(p90_stmt)).all()) if p90_stmt is not None else {}
                for row in queue_rows:
                    row["wait_p90"] = p90.get(row["queue"])
            members = (await session.execute(_members_stmt(period, queue))).all()
            names = {ext: (name, login) for ext, name, login in (await session.execute(_names_stmt())).all()}
        by_queue: dict[str, list[MemberFigures]] = {}
        for q, ext, offered, answered in members:
            name, login = names.get(ext, (None, None))
            by_queue.setdefault(q, []).append(MemberFigures(ext, name, login, int(offered), int(answered)))
        figures = tuple(
            QueueFigures(
                queue=row["queue"],
                offered=int(row["offered"]),
                answered=int(row["answered"]),
                abandoned=int(row["abandoned"]),
                exited=int(row["exited"]),
                answered_within_sl=int(row["within_sl"]),
                wait_avg_s=_float(row["wait_avg"]),
                wait_p90_s=_float(row["wait_p90"]),
                abandon_wait_avg_s=_float(row["abandon_wait_avg"]),
                talk_avg_s=_float(row["talk_avg"]),
                members=tuple(by_queue.get(row["queue"], ())),
            )
            for row in queue_rows
        )
        return QueueReport(period, queue, self._sl, figures, datetime.now(UTC))

    async def heatmap(self, period: Period) -> Heatmap:
        """Inbound and missed calls of ``period`` by local weekday and hour."""
        inbound, missed = Heatmap.empty_grid(), Heatmap.empty_grid()
        async with self._db.session() as session:
            await self._prepare(session)
            for wd, hour, n_in, n_missed in await session.execute(_heatmap_stmt(period, self._postgres)):
                if wd is None or hour is None or not (0 <= wd < 7 and 0 <= hour < 24):
                    continue
                inbound[wd][hour] += int(n_in)
                missed[wd][hour] += int(n_missed)
        return Heatmap(period, tuple(map(tuple, inbound)), tuple(map(tuple, missed)))
