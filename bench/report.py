"""Benchmark of the reports: 10,000,000 calls, 200 managers, 500,000 deals, queue waits of 7 in 10 inbound calls.

Generates the data inside the database (PostgreSQL ``generate_series``, SQLite recursive CTE, both
``INSERT … SELECT``), then times, for one month: calls versus deals (which also computes the previous
month), the queue report (per queue and member, p90 waits) and the hour × weekday heatmap.

    python bench/report.py                       # both databases, full size (several minutes to load)
    python bench/report.py --calls 200000        # quick run
    python bench/report.py --backend sqlite --reuse   # keep the loaded data between runs

Targets: PostgreSQL ≤ 1 s, SQLite ≤ 5 s for each one-month report. The queue report reads the report
indexes of ``call_queue_visits`` and ``call_queue_offers``; the heatmap groups ``ix_calls_report`` by minute
first. The calls-versus-deals queries read only the indexes
``ix_calls_report`` (direction, outcome, started_at, …: callback matching) and ``ix_calls_manager_started``
(per-manager ranges: call sums grouped without a sort, which SQLite needs as it has no hash aggregation).
Wall times depend on the machine's load: run it on a quiet machine. The CPU line (the PostgreSQL backends' CPU
seconds from /proc when the server is on this host; SQLite's, which runs in this process) hardly does: the
two periods run side by side, so on two idle cores the wall time is about half of it.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import time
from collections.abc import Awaitable, Callable
from datetime import date
from pathlib import Path

from sqlalchemy import text

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import samerun
import smoke
from benchdb import pg_database, remove_sqlite

from crmtel.errors import StoreUnavailable
from crmtel.reports.models import Period
from crmtel.reports.queries import QueryOptions, ReportQueries
from crmtel.reports.queue_models import QueueReport
from crmtel.reports.queue_queries import QueueQueries
from crmtel.store.call_callbacks import digits_in, recompute_statements
from crmtel.store.db import Database, upgrade_sync
from crmtel.store.models import Base

YEAR_SECONDS = 365 * 86400
FIGURES = (
    r"^baseline \(same run\): panoramisk bare parser [\d,]+ events/s; fixed CPU loop",
    r"^  one-month report .*: median [\d.]+ s",
    r"^  calls-vs-deals CPU .*: (median [\d.]+ s|n/a)",
    r"^  figures: \d+ rows, [\d,]+ calls",
    r"^  queue report .*: median [\d.]+ s",
    r"^  heatmap .*: median [\d.]+ s",
    r"^summary: report .*: calls-vs-deals p50 [\d.]+ s .*; baseline parser [\d,]+ events/s.*load",
)
TARGETS = {"postgresql": 1.0, "sqlite": 5.0}
DB_NAME = "crmtel_bench_report"
MONTH = Period(date(2026, 6, 1), date(2026, 7, 1), "Europe/Moscow")

# Expressions shared by both generators, over the series value ``g`` (1..N); ``{ts}`` renders a timestamp.
_CALL_DIRECTION = "CASE WHEN g % 10 = 0 THEN 'internal' WHEN g % 10 < 4 THEN 'outbound' ELSE 'inbound' END"
_CALL_OUTCOME = "CASE WHEN ((g / 10) * 7) % 10 < 2 THEN 'missed' ELSE 'answered' END"
_CALL_MANAGER = "CASE WHEN g % 20 = 7 THEN NULL ELSE (g * 31) % {managers} + 1 END"
_CALL_ANSWERED_BY = "CASE WHEN ((g / 10) * 7) % 10 < 2 AND g % 10 >= 4 THEN NULL ELSE CAST(1000 + (g * 31) % {managers} AS TEXT) END"
_CALL_TALK = "CASE WHEN ((g / 10) * 7) % 10 < 2 THEN 0 ELSE (g * 13) % 600 END"


def _series(dialect: str, n: int) -> tuple[str, str, Callable[[str], str]]:
    """The ``WITH`` head, the row source of ``g`` = 1..n, and a seconds-since-2026 → timestamp renderer."""
    if dialect == "postgresql":

        def pg_ts(seconds: str) -> str:
            return f"(timestamptz '2026-01-01 00:00:00+00' + {seconds} * interval '1 second')"

        return "", f"generate_series(1::bigint, {n}) AS s(g)", pg_ts

    def sqlite_ts(seconds: str) -> str:
        return f"(strftime('%Y-%m-%d %H:%M:%S', 1767225600 + {seconds}, 'unixepoch') || '.000000')"

    return f"WITH RECURSIVE s(g) AS (SELECT 1 UNION ALL SELECT g + 1 FROM s WHERE g < {n}) ", "s", sqlite_ts


def _calls_sql(dialect: str, n: int, managers: int) -> str:
    head, series, render_ts = _series(dialect, n)
    ts = render_ts(f"((g - 1) * {YEAR_SECONDS} / {n} + (g * 7) % 60)")
    if dialect == "postgresql":
        number = "lpad(((g * 7919) % 299993)::text, 7, '0')"
        text_g = "g::text"
    else:
        number = "substr('0000000' || ((g * 7919) % 299993), -7)"
        text_g = "CAST(g AS TEXT)"
    return (
        "INSERT INTO calls (pbx, linkedid, direction, caller_number, dialled, rang, answered_by, outcome, "
        "started_at, ended_at, ring_seconds, talk_seconds, manager_id) "
        f"{head}SELECT 'pbx1', {text_g}, {_CALL_DIRECTION}, "
        f"CASE WHEN g % 10 BETWEEN 1 AND 3 THEN CAST(1000 + (g * 31) % {managers} AS TEXT) ELSE '+7916' || {number} END, "
        f"CASE WHEN g % 10 BETWEEN 1 AND 3 THEN '8916' || {number} ELSE '4951234567' END, "
        f"'[]', {_CALL_ANSWERED_BY.format(managers=managers)}, {_CALL_OUTCOME}, {ts}, {ts}, 5, {_CALL_TALK}, "
        f"{_CALL_MANAGER.format(managers=managers)} FROM {series}"
    )


def _deals_sql(dialect: str, n: int, managers: int) -> str:
    opened = f"((g - 1) * {YEAR_SECONDS} / {n})"
    closed = f"((g - 1) * {YEAR_SECONDS} / {n} + (g % 30) * 86400)"
    head, series, ts = _series(dialect, n)

    status = "CASE WHEN g % 10 < 3 THEN 'won' WHEN g % 10 < 5 THEN 'lost' ELSE 'open' END"
    return (
        "INSERT INTO deals (manager_id, title, amount, stage, status, opened_at, closed_at) "
        f"{head}SELECT (g * 17) % {managers} + 1, 'deal', 1000, 'new', {status}, {ts(opened)}, "
        f"CASE WHEN g % 10 < 5 THEN {ts(closed)} ELSE NULL END FROM {series}"
    )


def _leads_sql(dialect: str, n: int, managers: int) -> str:
    created = f"((g - 1) * {YEAR_SECONDS} / {n})"
    conv = f"((g - 1) * {YEAR_SECONDS} / {n} + (g % 20) * 86400)"
    head, series, ts = _series(dialect, n)

    converted = "g % 4 = 0"
    return (
        "INSERT INTO leads (name, source, status, manager_id, created_at, converted_at) "
        f"{head}SELECT 'lead', 'import', CASE WHEN {converted} THEN 'converted' ELSE 'new' END, "
        f"(g * 13) % {managers} + 1, {ts(created)}, CASE WHEN {converted} THEN {ts(conv)} ELSE NULL END "
        f"FROM {series}"
    )


def _managers_sql(dialect: str, n: int) -> list[str]:
    if dialect == "postgresql":
        head, series, now = "", f"generate_series(1::bigint, {n}) AS s(g)", "now()"
    else:
        head = f"WITH RECURSIVE s(g) AS (SELECT 1 UNION ALL SELECT g + 1 FROM s WHERE g < {n}) "
        series, now = "s", "strftime('%Y-%m-%d %H:%M:%S', 'now') || '.000000'"
    return [
        "INSERT INTO managers (id, name, login, role, active, speciality, created_at) "
        f"{head}SELECT g, 'Manager ' || g, 'm' || g, 'manager', true, "
        f"CASE WHEN g % 2 = 0 THEN 'retail' ELSE 'wholesale' END, {now} FROM {series}",
        f"INSERT INTO manager_extensions (manager_id, extension) {head}SELECT g, CAST(999 + g AS TEXT) FROM {series}",
    ]


# Seven in ten inbound calls waited in a queue; the wait, outcome and one offer derive from the call.
_QUEUE_VISITS_SQL = (
    "INSERT INTO call_queue_visits (call_id, seq, queue, started_at, joined_at, left_at, outcome, wait_seconds, "
    "answered_by, talk_seconds) SELECT id, 0, CASE WHEN id % 3 = 0 THEN 'wholesale' ELSE 'retail' END, "
    "started_at, started_at, started_at, CASE WHEN outcome = 'answered' THEN 'answered' WHEN id % 2 = 0 "
    "THEN 'abandoned' ELSE 'exited' END, (id * 7) % 60, answered_by, "
    "CASE WHEN outcome = 'answered' THEN talk_seconds ELSE 0 END "
    "FROM calls WHERE direction = 'inbound' AND id % 10 < 7"
)
_QUEUE_OFFERS_SQL = (
    "INSERT INTO call_queue_offers (call_id, seq, queue, extension, answered, started_at) "
    "SELECT call_id, 0, queue, COALESCE(answered_by, '1000'), outcome = 'answered', started_at "
    "FROM call_queue_visits"
)


async def _timed(repeat: int, fn: Callable[[], Awaitable[object]]) -> tuple[float, float, object]:
    timings = []
    result: object = None
    for _ in range(repeat):
        t0 = time.perf_counter()
        result = await fn()
        timings.append(time.perf_counter() - t0)
    return statistics.median(timings), min(timings), result


def _proc_cpu(pids: list[int]) -> float | None:
    total = 0.0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            return None
        total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return total


async def _cpu_seconds(db: Database, backend: str) -> float | None:
    """CPU seconds used so far by what runs the queries: this process for SQLite (it runs inside it), else the
    PostgreSQL backends connected to the database, read from /proc (None when the server is not on this host).

    Unlike wall time this hardly moves with the machine's load, so runs at different loads compare."""
    if backend != "postgresql":
        return time.process_time()
    async with db.session() as session:
        query = text("SELECT pid FROM pg_stat_activity WHERE datname = current_database()")
        pids = [int(pid) for pid in (await session.execute(query)).scalars()]
    return await asyncio.to_thread(_proc_cpu, pids)


async def _count_calls(db: Database) -> int:
    async with db.session() as session:
        return int((await session.execute(text("SELECT count(*) FROM calls"))).scalar_one())


async def _load(db: Database, dialect: str, calls: int, managers: int, deals: int, leads: int) -> None:
    # Bulk load without the secondary indexes of calls, then build them (the schema's own definitions).
    indexes = list(Base.metadata.tables["calls"].indexes)
    async with db.engine.begin() as conn:
        for index in indexes:
            await conn.run_sync(index.drop)
    steps = [
        *(("managers", sql) for sql in _managers_sql(dialect, managers)),
        ("calls", _calls_sql(dialect, calls, managers)),
        ("deals", _deals_sql(dialect, deals, managers)),
        ("leads", _leads_sql(dialect, leads, managers)),
        ("queue visits", _QUEUE_VISITS_SQL),
        ("queue offers", _QUEUE_OFFERS_SQL),
    ]
    for name, sql in steps:
        t0 = time.perf_counter()
        async with db.session() as session:
            await session.execute(text(sql))
        print(f"  loaded {name} in {time.perf_counter() - t0:.1f} s", flush=True)
    # The calls were inserted as rows, not through the call store: their stored callbacks are computed here,
    # the keys before the indexes are built (a bulk update), the callbacks after (looked up by key).
    key_stmt, *callback_stmts = recompute_statements(dialect, QueryOptions().match_digits)
    t0 = time.perf_counter()
    async with db.session() as session:
        await session.execute(key_stmt)
    print(f"  computed number keys in {time.perf_counter() - t0:.1f} s", flush=True)
    t0 = time.perf_counter()
    async with db.engine.begin() as conn:
        for index in indexes:
            await conn.run_sync(index.create)
    print(f"  built {len(indexes)} call indexes in {time.perf_counter() - t0:.1f} s", flush=True)
    t0 = time.perf_counter()
    async with db.session() as session:
        for stmt in callback_stmts:
            await session.execute(stmt)
    print(f"  computed stored callbacks in {time.perf_counter() - t0:.1f} s", flush=True)
    t0 = time.perf_counter()
    await _analyze(db, dialect)
    print(f"  analyzed in {time.perf_counter() - t0:.1f} s", flush=True)


async def _analyze(db: Database, dialect: str) -> None:
    async with db.engine.connect() as conn:
        conn = await conn.execution_options(isolation_level="AUTOCOMMIT")
        await conn.execute(text("VACUUM ANALYZE" if dialect == "postgresql" else "ANALYZE"))


async def _revision(url: str) -> str | None:
    """The schema revision of the database (None when it has none yet)."""
    db = Database(url)
    try:
        async with db.session() as session:
            return (
                await session.execute(text("SELECT version_num FROM alembic_version"))
            ).scalar_one_or_none()
    except StoreUnavailable:
        # No schema yet.
        return None
    finally:
        await db.dispose()


async def run(backend: str, args: argparse.Namespace) -> float:
    """Load (unless reusing) and time the report on one backend; returns the median seconds."""
    print(
        f"{backend}: {args.calls:,} calls, {args.managers} managers, {args.deals:,} deals, {args.leads:,} leads"
    )
    if backend == "postgresql":
        url = await pg_database(args.pg_url, smoke.name(args, args.pg_database), fresh=not args.reuse)
    else:
        path = smoke.path(args, Path(args.sqlite_path))
        if not args.reuse:
            await asyncio.to_thread(remove_sqlite, path)
        url = f"sqlite+aiosqlite:///{path}"
    before = await _revision(url)
    t0 = time.perf_counter()
    await asyncio.to_thread(upgrade_sync, url)
    db = Database(url)
    try:
        after = await _revision(url)
        if before not in (None, after):
            # An older bench database reused: migration 0023 backfilled the stored callbacks of every call.
            print(f"  upgraded {before} -> {after} in {time.perf_counter() - t0:.1f} s", flush=True)
            t0 = time.perf_counter()
            await _analyze(db, backend)
            # As autovacuum would after those updates: index-only reads need the pages marked all-visible.
            print(f"  vacuumed after the upgrade in {time.perf_counter() - t0:.1f} s", flush=True)
        have = await _count_calls(db)
        if have != args.calls:
            if have:
                raise SystemExit(
                    f"{backend}: database holds {have:,} calls, not {args.calls:,}; drop --reuse"
                )
            await _load(db, backend, args.calls, args.managers, args.deals, args.leads)
        queries = ReportQueries(db, stored_callbacks=args.callbacks == "stored")
        async with db.session() as session:
            stored = await digits_in(session)
        print(
            f"  callbacks: {args.callbacks} (stored with digits {stored}, the report's {QueryOptions().match_digits})"
        )
        timings = []
        cpu: list[float] = []
        report = None
        for _ in range(args.repeat):
            cpu0 = await _cpu_seconds(db, backend)
            t0 = time.perf_counter()
            report = await queries.calls_vs_deals(MONTH)
            timings.append(time.perf_counter() - t0)
            cpu1 = await _cpu_seconds(db, backend)
            if cpu0 is not None and cpu1 is not None:
                cpu.append(cpu1 - cpu0)
        assert report is not None
        median = statistics.median(timings)
        totals = report.totals
        print(
            f"  one-month report ({MONTH.start}..{MONTH.end}, with previous period): "
            f"median {median:.3f} s, min {min(timings):.3f} s over {args.repeat} runs "
            f"(target ≤ {TARGETS[backend]:.0f} s: {'met' if median <= TARGETS[backend] else 'MISSED'})"
        )
        used_by = "PostgreSQL backends" if backend == "postgresql" else "this process"
        cpu_figure = f"median {statistics.median(cpu):.2f} s" if cpu else "n/a (server not on this host)"
        print(f"  calls-vs-deals CPU ({used_by}): {cpu_figure} per report, both periods")
        print(
            f"  figures: {len(report.rows)} rows, {totals.calls:,} calls, {totals.answered:,} answered, "
            f"{totals.missed:,} missed ({totals.missed_not_called_back:,} not called back), "
            f"{totals.deals_won:,} deals won, {totals.leads_received:,} leads",
            flush=True,
        )
        queues = QueueQueries(db)
        target = TARGETS[backend]
        medians = [median]
        for label, fn in (
            ("queue report", lambda: queues.queues(MONTH)),
            ("heatmap", lambda: queues.heatmap(MONTH)),
        ):
            q_median, q_min, result = await _timed(args.repeat, fn)
            medians.append(q_median)
            detail = ""
            if isinstance(result, QueueReport):
                detail = f"; {sum(q.offered for q in result.queues):,} offered in {len(result.queues)} queues"
            print(
                f"  {label} ({MONTH.start}..{MONTH.end}): median {q_median:.3f} s, min {q_min:.3f} s over "
                f"{args.repeat} runs (target ≤ {target:.0f} s: {'met' if q_median <= target else 'MISSED'}){detail}",
                flush=True,
            )
        samerun.summary(
            f"report {backend} {args.calls:,} calls",
            f"calls-vs-deals p50 {median:.3f} s max {max(timings):.3f} s over {args.repeat} runs; "
            f"queue report p50 {medians[1]:.3f} s; heatmap p50 {medians[2]:.3f} s",
            args.baseline,
            f"<= {target:.0f} s each: {'met' if max(medians) <= target else 'MISSED'}",
        )
        return max(medians)
    finally:
        await db.dispose()


def main(baseline: samerun.Baseline) -> int:
    """Parse arguments and run the benchmark."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--calls", type=int, default=10_000_000)
    parser.add_argument("--managers", type=int, default=200)
    parser.add_argument("--deals", type=int, default=500_000)
    parser.add_argument("--leads", type=int, default=200_000)
    parser.add_argument(
        "--backend",
        choices=("both", "postgresql", "sqlite"),
        default=None,
        help="default: both, or postgresql alone when --database-url is given, sqlite alone with --smoke",
    )
    parser.add_argument(
        "--database-url",
        "--pg-url",
        dest="pg_url",
        default=None,
        help=f"PostgreSQL server to create the {DB_NAME} database on (default $CRMTEL_BENCH_PG_URL or local)",
    )
    parser.add_argument("--sqlite-path", default="/tmp/crmtel-bench.db")
    parser.add_argument("--pg-database", default=DB_NAME, help="the PostgreSQL database's name")
    parser.add_argument(
        "--callbacks",
        choices=("stored", "matched"),
        default="stored",
        help="read the callbacks stored with the calls, or match them in the report (the reference)",
    )
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument(
        "--reuse", action="store_true", help="keep an already loaded database of the same size"
    )
    smoke.add_smoke(parser, calls=3_000, managers=5, deals=200, leads=200, repeat=1)
    args = smoke.parse(parser)
    args.baseline = baseline
    if args.backend is None:
        args.backend = "postgresql" if args.pg_url else "sqlite" if args.smoke else "both"
    if args.pg_url is None:
        args.pg_url = os.environ.get(
            "CRMTEL_BENCH_PG_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/test"
        )
    backends = ("postgresql", "sqlite") if args.backend == "both" else (args.backend,)
    missed = False
    for backend in backends:
        median = asyncio.run(run(backend, args))
        missed = missed or median > TARGETS[backend]
    return smoke.verdict(args, missed)


if __name__ == "__main__":
    raise SystemExit(main(samerun.report()))
