"""Benchmark of phone lookup: 1,000,000 stored numbers, ``PartyRepository.lookup`` latency percentiles.

The store is filled inside the database (``INSERT … SELECT`` over a recursive CTE on SQLite,
``generate_series`` on PostgreSQL): clients with their own numbers, contact persons (every fifth acting
for two clients), leads, and some numbers shared by a client and a lead (ties). Then random stored and
unknown numbers are looked up one after another through the repository, as the call service does.

    python bench/lookup.py                                   # SQLite file in /tmp, 1,000,000 numbers
    python bench/lookup.py --database-url postgresql+asyncpg://postgres@127.0.0.1:5432/test
                                                             # PostgreSQL: uses database crmtel_bench_lookup
    python bench/lookup.py --numbers 50000 --lookups 5000    # quick run
    python bench/lookup.py --reuse                           # keep the loaded database between runs

Target: p99 ≤ 1 ms on both.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import text
from sqlalchemy.engine import make_url

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import samerun
import smoke
from benchdb import pg_database, remove_sqlite

from crmtel.store.db import Database, upgrade_sync
from crmtel.store.parties import PartyRepository

TARGET_P99_MS = 1.0
MANAGERS = 40
DB_NAME = "crmtel_bench_lookup"
FIGURES = (
    r"^baseline \(same run\): panoramisk bare parser [\d,]+ events/s; fixed CPU loop",
    r"^\w+: [\d,]+ lookups over [\d,]+ numbers .* p99 [\d.]+ ms",
    r"^target p99 <= ",
)
SQLITE_PATH = Path("/tmp/crmtel_bench_lookup.db")


@dataclass(frozen=True, slots=True)
class Shape:
    """How the stored numbers split: clients' own, contact persons', leads', and client+lead shared ones."""

    clients: int
    contacts: int
    leads: int
    shared: int

    @classmethod
    def of(cls, numbers: int) -> Shape:
        clients = numbers * 5 // 10
        contacts = numbers * 3 // 10
        shared = numbers // 100
        return cls(clients, contacts, numbers - clients - contacts - shared, shared)


def _series(pg: bool, n: int) -> tuple[str, str]:
    if pg:
        return "", f"generate_series(1::bigint, {n}) AS s(g)"
    return f"WITH RECURSIVE s(g) AS (SELECT 1 UNION ALL SELECT g + 1 FROM s WHERE g < {n}) ", "s"


def _number(pg: bool, prefix: str, expr: str = "g") -> str:
    if pg:
        return f"'{prefix}' || lpad(({expr})::text, 7, '0')"
    return f"'{prefix}' || substr('0000000' || ({expr}), -7)"


def load_sql(pg: bool, shape: Shape) -> list[str]:
    """Statements that fill an empty, migrated store with ``shape``."""
    ts = "timestamptz '2026-01-01 00:00:00+00'" if pg else "'2026-01-01 00:00:00.000000'"
    month = "date '2026-10-01'" if pg else "'2026-10-01'"
    gtext = "g::text" if pg else "CAST(g AS TEXT)"
    head, series = _series(pg, MANAGERS)
    sql = [
        f"INSERT INTO managers (id, name, login, role, active, created_at) {head}"
        f"SELECT g, 'Manager ' || {gtext}, 'm' || {gtext}, 'manager', g % 10 <> 0, {ts} FROM {series}",
        f"INSERT INTO manager_extensions (manager_id, extension) {head}"
        f"SELECT g, CAST(100 + g AS TEXT) FROM {series}",
    ]
    head, series = _series(pg, shape.clients)
    sql += [
        "INSERT INTO clients (id, external_id, name, kind, category, manager_id, turnover, turnover_month,"
        f" stop_list, created_at) {head}SELECT g, 'C' || {gtext}, 'Client ' || {gtext}, 'company',"
        " CASE WHEN g % 3 = 0 THEN 'wholesale' ELSE 'retail' END,"
        f" CASE WHEN g % 4 = 0 THEN NULL ELSE g % {MANAGERS} + 1 END, (g * 7919) % 300000, {month},"
        f" g % 97 = 0, {ts} FROM {series}",
        f"INSERT INTO phones (e164, client_id) {head}SELECT {_number(pg, '+7916')}, g FROM {series}",
    ]
    head, series = _series(pg, shape.contacts)
    sql += [
        f"INSERT INTO contacts (id, name) {head}SELECT g, 'Contact ' || {gtext} FROM {series}",
        f"INSERT INTO client_contacts (client_id, contact_id) {head}"
        f"SELECT (g * 31) % {shape.clients} + 1, g FROM {series}",
        # Every fifth person acts for a second client too.
        f"INSERT INTO client_contacts (client_id, contact_id) {head}"
        f"SELECT (g * 31 + 7) % {shape.clients} + 1, g FROM {series} WHERE g % 5 = 0",
        f"INSERT INTO phones (e164, contact_id) {head}SELECT {_number(pg, '+7917')}, g FROM {series}",
    ]
    head, series = _series(pg, shape.leads + shape.shared)
    sql += [
        f"INSERT INTO leads (id, name, source, status, manager_id, created_at) {head}"
        f"SELECT g, 'Lead ' || {gtext}, 'import', 'new', CASE WHEN g % 2 = 0 THEN NULL ELSE g % {MANAGERS} + 1 END,"
        f" {ts} FROM {series}",
        f"INSERT INTO phones (e164, lead_id) {head}SELECT {_number(pg, '+7918')}, g FROM {series} "
        f"WHERE g <= {shape.leads}",
        # Leads whose number is also a client's own number: a client beats them, and both are returned.
        f"INSERT INTO phones (e164, lead_id) {head}SELECT {_number(pg, '+7916', f'g - {shape.leads}')}, g "
        f"FROM {series} WHERE g > {shape.leads}",
    ]
    if pg:
        for table in ("managers", "clients", "contacts", "leads"):
            sql.append(
                f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), (SELECT max(id) FROM {table}))"
            )
    return sql


async def prepare(url: str | None, shape: Shape, *, reuse: bool, args: argparse.Namespace) -> str:
    """A loaded database (reused when asked and already filled); returns its URL."""
    pg = url is not None and make_url(url).get_backend_name() == "postgresql"
    if pg and url is not None:
        target = await pg_database(url, smoke.name(args, DB_NAME), fresh=not reuse)
    elif url is not None:
        target = url
    else:
        sqlite_path = smoke.path(args, SQLITE_PATH)
        if not reuse:
            remove_sqlite(sqlite_path)
        target = f"sqlite+aiosqlite:///{sqlite_path}"
    await asyncio.to_thread(upgrade_sync, target)
    db = Database(target)
    try:
        async with db.engine.connect() as conn:
            stored = int((await conn.execute(text("SELECT count(*) FROM phones"))).scalar_one())
        if stored == 0:
            t0 = time.perf_counter()
            async with db.engine.begin() as conn:
                for statement in load_sql(pg, shape):
                    await conn.execute(text(statement))
            print(
                f"loaded {shape.clients + shape.contacts + shape.leads + shape.shared:,} numbers "
                f"in {time.perf_counter() - t0:.1f} s",
                flush=True,
            )
            async with db.engine.connect() as conn:
                auto = await conn.execution_options(isolation_level="AUTOCOMMIT")
                await auto.execute(text("VACUUM ANALYZE" if pg else "ANALYZE"))
        else:
            print(f"reusing {stored:,} stored numbers", flush=True)
    finally:
        await db.dispose()
    return target


def numbers_to_look_up(shape: Shape, count: int, seed: int = 7) -> list[str]:
    """A random mix: 20 % unknown numbers, the rest clients', contacts', leads' and shared numbers."""
    rnd = random.Random(seed)
    out: list[str] = []
    for _ in range(count):
        roll = rnd.random()
        if roll < 0.2:
            out.append(f"+7999{rnd.randrange(10_000_000):07d}")
        elif roll < 0.55:
            out.append(f"+7916{rnd.randrange(1, shape.clients + 1):07d}")
        elif roll < 0.8:
            out.append(f"+7917{rnd.randrange(1, shape.contacts + 1):07d}")
        else:
            out.append(f"+7918{rnd.randrange(1, shape.leads + 1):07d}")
    return out


def percentile(sorted_ms: list[float], p: float) -> float:
    """The p-th percentile (nearest rank) of sorted values."""
    return sorted_ms[min(len(sorted_ms) - 1, max(0, round(p / 100 * len(sorted_ms)) - 1))]


async def run(url: str, numbers: list[str], warmup: int) -> tuple[list[float], list[float], int]:
    """Look every number up in turn; returns wall and CPU latencies (ms) and how many numbers were found."""
    db = Database(url)
    repo = PartyRepository(db)
    try:
        for e164 in numbers[:warmup]:
            await repo.lookup(e164)
        latencies: list[float] = []
        cpu: list[float] = []
        found = 0
        clock, cpu_clock = time.perf_counter, time.thread_time
        for e164 in numbers:
            t0, c0 = clock(), cpu_clock()
            result = await repo.lookup(e164)
            latencies.append((clock() - t0) * 1000)
            cpu.append((cpu_clock() - c0) * 1000)
            found += bool(result.matches)
    finally:
        await db.dispose()
    return latencies, cpu, found


async def main_async(args: argparse.Namespace) -> int:
    shape = Shape.of(args.numbers)
    url = await prepare(args.database_url, shape, reuse=args.reuse, args=args)
    numbers = numbers_to_look_up(shape, args.lookups)
    latencies, cpu, found = await run(url, numbers, warmup=min(1000, args.lookups))
    ms, cpu_ms = sorted(latencies), sorted(cpu)
    p50, p95, p99 = (percentile(ms, p) for p in (50, 95, 99))
    backend = make_url(url).get_backend_name()
    print(
        f"{backend}: {len(ms):,} lookups over {args.numbers:,} numbers ({found:,} found): "
        f"p50 {p50:.3f} ms, p95 {p95:.3f} ms, p99 {p99:.3f} ms, max {ms[-1]:.3f} ms"
    )
    # The client's own CPU per lookup, and the host's load: tells work apart from waiting for a CPU.
    print(
        f"client CPU per lookup: p50 {percentile(cpu_ms, 50):.3f} ms, p99 {percentile(cpu_ms, 99):.3f} ms; "
        f"load average {os.getloadavg()[0]:.2f} on {os.cpu_count()} CPUs"
    )
    ok = p99 <= TARGET_P99_MS
    print(f"target p99 <= {TARGET_P99_MS} ms: {'met' if ok else 'MISSED'}")
    return smoke.verdict(args, missed=not ok)


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--database-url", help="PostgreSQL server URL (database crmtel_bench_lookup is used); default SQLite"
    )
    parser.add_argument("--numbers", type=int, default=1_000_000)
    parser.add_argument("--lookups", type=int, default=20_000)
    parser.add_argument("--reuse", action="store_true", help="keep an already loaded database")
    smoke.add_smoke(parser, numbers=2_000, lookups=300)
    return asyncio.run(main_async(smoke.parse(parser)))


if __name__ == "__main__":
    samerun.report()
    raise SystemExit(main())
