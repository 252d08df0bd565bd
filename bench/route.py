"""Benchmark of FastAGI routing: 1,000,000 numbers stored, 50 new calls a second, latency per call.

Loads clients, contact persons and leads (one number each, 1,000,000 numbers by default) into the real
schema with ``INSERT … SELECT`` inside the database, starts the FastAGI route server in a separate process
(as Asterisk would talk to crmtel), then plays Asterisk: every 20 ms a new TCP connection sends the AGI
environment, answers each ``SET VARIABLE`` and waits for the server to hang up. The latency is that whole
exchange (what holds the call in ``AGI()``): connect to close.

    python bench/route.py                          # SQLite, 1,000,000 numbers, 50 calls/s for 30 s
    python bench/route.py --backend postgresql     # PostgreSQL (database crmtel_bench_route, local server)
    python bench/route.py --database-url postgresql+asyncpg://user@host/db   # PostgreSQL on that server
    python bench/route.py --numbers 20000 --seconds 5   # quick run
    python bench/route.py --reuse                  # keep the loaded database between runs

Target: p99 ≤ 10 ms.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import multiprocessing.connection
import os
import random
import signal
import statistics
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import text

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import samerun
import smoke
from benchdb import pg_database, remove_sqlite

from crmtel.config import LogSettings, RoutingSettings
from crmtel.logging import configure
from crmtel.routing.agi import AgiServer
from crmtel.routing.models import Decision
from crmtel.routing.service import RoutingService
from crmtel.store.db import Database, upgrade_sync
from crmtel.store.parties import PartyRepository

TARGET_P99_MS = 10.0
MANAGERS = 50
DB_NAME = "crmtel_bench_route"
FIGURES = (
    r"^baseline \(same run\): panoramisk bare parser [\d,]+ events/s; fixed CPU loop",
    r"^  latency connect->hang-up: p50 [\d.]+ ms, .*p99 [\d.]+ ms",
    r"^  of which the decision inside crmtel",
)
WARMUP = 20


@dataclass(frozen=True, slots=True)
class Shape:
    """How the stored numbers split between clients, contact persons and leads."""

    clients: int
    contacts: int
    leads: int

    @classmethod
    def of(cls, numbers: int) -> Shape:
        clients = numbers * 6 // 10
        contacts = numbers * 3 // 10
        return cls(clients, contacts, numbers - clients - contacts)


def _series(dialect: str, n: int) -> tuple[str, str]:
    if dialect == "postgresql":
        return "", f"generate_series(1::bigint, {n}) AS s(g)"
    return f"WITH RECURSIVE s(g) AS (SELECT 1 UNION ALL SELECT g + 1 FROM s WHERE g < {n}) ", "s"


def _number(dialect: str, prefix: str) -> str:
    if dialect == "postgresql":
        return f"'{prefix}' || lpad(g::text, 7, '0')"
    return f"'{prefix}' || substr('0000000' || g, -7)"


def _load_sql(dialect: str, shape: Shape) -> list[str]:
    pg = dialect == "postgresql"
    ts = "timestamptz '2026-01-01 00:00:00+00'" if pg else "'2026-01-01 00:00:00.000000'"
    month = "date '2026-10-01'" if pg else "'2026-10-01'"
    text_g = "g::text" if pg else "CAST(g AS TEXT)"
    sql = [
        "INSERT INTO managers (id, name, login, role, active, created_at) "
        f"{_series(dialect, MANAGERS)[0]}SELECT g, 'Manager ' || {text_g}, 'm' || {text_g}, 'manager', "
        f"g % 10 <> 0, {ts} FROM {_series(dialect, MANAGERS)[1]}",
        "INSERT INTO manager_extensions (manager_id, extension) "
        f"{_series(dialect, MANAGERS)[0]}SELECT g, CAST(100 + g AS TEXT) FROM {_series(dialect, MANAGERS)[1]}",
    ]
    head, series = _series(dialect, shape.clients)
    sql += [
        "INSERT INTO clients (id, name, kind, category, manager_id, turnover, turnover_month, stop_list, created_at) "
        f"{head}SELECT g, 'Client ' || {text_g}, 'company', CASE WHEN g % 3 = 0 THEN 'wholesale' ELSE 'retail' END, "
        f"CASE WHEN g % 5 = 0 THEN NULL ELSE g % {MANAGERS} + 1 END, (g * 7919) % 300000, {month}, "
        f"g % 97 = 0, {ts} FROM {series}",
        f"INSERT INTO phones (e164, raw, client_id) {head}SELECT {_number(dialect, '+7916')}, NULL, g FROM {series}",
    ]
    head, series = _series(dialect, shape.contacts)
    sql += [
        f"INSERT INTO contacts (id, name) {head}SELECT g, 'Contact ' || {text_g} FROM {series}",
        "INSERT INTO client_contacts (client_id, contact_id) "
        f"{head}SELECT (g * 31) % {shape.clients} + 1, g FROM {series}",
        f"INSERT INTO phones (e164, raw, contact_id) {head}SELECT {_number(dialect, '+7917')}, NULL, g FROM {series}",
    ]
    head, series = _series(dialect, shape.leads)
    sql += [
        "INSERT INTO leads (id, name, source, status, manager_id, created_at) "
        f"{head}SELECT g, 'Lead ' || {text_g}, 'import', 'new', "
        f"CASE WHEN g % 2 = 0 THEN NULL ELSE g % {MANAGERS} + 1 END, {ts} FROM {series}",
        f"INSERT INTO phones (e164, raw, lead_id) {head}SELECT {_number(dialect, '+7918')}, NULL, g FROM {series}",
    ]
    if pg:
        # Explicit ids leave the sequences behind; move them on so the database stays usable.
        for table in ("managers", "clients", "contacts", "leads"):
            sql.append(
                f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), (SELECT max(id) FROM {table}))"
            )
    return sql


async def _count_numbers(db: Database) -> int:
    async with db.session() as session:
        return int((await session.execute(text("SELECT count(*) FROM phones"))).scalar_one())


async def _load(db: Database, dialect: str, shape: Shape) -> None:
    t0 = time.perf_counter()
    async with db.session() as session:
        for statement in _load_sql(dialect, shape):
            await session.execute(text(statement))
    print(f"  loaded in {time.perf_counter() - t0:.1f} s", flush=True)
    async with db.engine.connect() as conn:
        conn = await conn.execution_options(isolation_level="AUTOCOMMIT")
        await conn.execute(text("VACUUM ANALYZE" if dialect == "postgresql" else "ANALYZE"))


# --- the route server, in its own process ---------------------------------------------------------


def _server_process(url: str, conn: multiprocessing.connection.Connection) -> None:
    asyncio.run(_serve(url, conn))


class _TimedRouter:
    """Records how long each decision took inside crmtel (lookup + rules), apart from the AGI exchange."""

    def __init__(self, service: RoutingService) -> None:
        self._service = service
        self.ms: list[float] = []

    async def route(self, caller: str | None, did: str | None) -> Decision | None:
        t0 = time.perf_counter()
        try:
            return await self._service.route(caller, did)
        finally:
            self.ms.append((time.perf_counter() - t0) * 1000)


async def _serve(url: str, conn: multiprocessing.connection.Connection) -> None:
    configure(LogSettings(level="warning"))
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    db = Database(url)
    try:
        service = RoutingService(PartyRepository(db), RoutingSettings())
        timed = _TimedRouter(service)
        async with AgiServer(timed, "127.0.0.1", 0) as agi:
            conn.send(agi.port)
            await stop.wait()
        await service.close()
        conn.send(timed.ms)
    finally:
        await db.dispose()


# --- the fake Asterisk ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class CallResult:
    ms: float
    routed: bool


def _callers(shape: Shape, count: int, seed: int = 42) -> list[str]:
    rnd = random.Random(seed)
    out: list[str] = []
    for _ in range(count):
        roll = rnd.random()
        if roll < 0.15:
            out.append(f"+7999{rnd.randrange(10_000_000):07d}")  # unknown caller
            continue
        prefix, n = rnd.choice((("916", shape.clients), ("917", shape.contacts), ("918", shape.leads)))
        local = f"{prefix}{rnd.randrange(1, n + 1):07d}"
        out.append(f"+7{local}" if roll < 0.6 else f"8{local}")  # E.164 or national format
    return out


async def _one_call(port: int, caller: str) -> CallResult:
    environment = (
        "agi_network: yes\nagi_network_script: route\nagi_request: agi://127.0.0.1:4573/route\n"
        f"agi_channel: PJSIP/trunk-0001\nagi_callerid: {caller}\nagi_dnid: 4951234567\n"
        f"agi_arg_1: {caller}\nagi_arg_2: 4951234567\n\n"
    ).encode()
    t0 = time.perf_counter()
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(environment)
    commands = 0
    async with asyncio.timeout(5):
        while await reader.readline():
            commands += 1
            writer.write(b"200 result=1\n")
    ms = (time.perf_counter() - t0) * 1000
    writer.close()
    return CallResult(ms, commands == 5)


async def _drive(port: int, callers: list[str], rate: float) -> list[CallResult]:
    loop = asyncio.get_running_loop()
    for caller in callers[:WARMUP]:  # warm the pool and the caches
        await _one_call(port, caller)
    tasks: list[asyncio.Task[CallResult]] = []
    start = loop.time()
    async with asyncio.TaskGroup() as tg:
        for i, caller in enumerate(callers):
            delay = start + i / rate - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(tg.create_task(_one_call(port, caller)))
    return [t.result() for t in tasks]


def _percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


async def run(backend: str, args: argparse.Namespace) -> float:
    """Load (unless reusing), run the call load against a server process; returns p99 in ms."""
    shape = Shape.of(args.numbers)
    print(
        f"{backend}: {args.numbers:,} numbers ({shape.clients:,} clients, {shape.contacts:,} contacts, "
        f"{shape.leads:,} leads), {args.rate:g} calls/s for {args.seconds:g} s",
        flush=True,
    )
    if backend == "postgresql":
        url = await pg_database(args.pg_url, smoke.name(args, DB_NAME), fresh=not args.reuse)
    else:
        path = smoke.path(args, Path(args.sqlite_path))
        if not args.reuse:
            remove_sqlite(path)
        url = f"sqlite+aiosqlite:///{path}"
    await asyncio.to_thread(upgrade_sync, url)
    db = Database(url)
    try:
        have = await _count_numbers(db)
        if have != args.numbers:
            if have:
                raise SystemExit(
                    f"{backend}: database holds {have:,} numbers, not {args.numbers:,}; drop --reuse"
                )
            await _load(db, backend, shape)
    finally:
        await db.dispose()

    ctx = multiprocessing.get_context("spawn")
    parent, child = ctx.Pipe()
    server = ctx.Process(target=_server_process, args=(url, child), name="crmtel-route-bench-server")
    server.start()
    try:
        port = await asyncio.to_thread(parent.recv)
        callers = _callers(shape, int(args.rate * args.seconds))
        results = await _drive(port, callers, args.rate)
    finally:
        if server.pid is not None:
            os.kill(server.pid, signal.SIGTERM)
        inside: list[float] = (await asyncio.to_thread(parent.recv))[WARMUP:]
        await asyncio.to_thread(server.join, 10)
    ms = [r.ms for r in results]
    p99 = _percentile(ms, 99)
    print(
        f"  {len(ms)} calls, {sum(r.routed for r in results)} routed, "
        f"{sum(not r.routed for r in results)} fell back (no variables)\n"
        f"  latency connect->hang-up: p50 {_percentile(ms, 50):.2f} ms, p95 {_percentile(ms, 95):.2f} ms, "
        f"p99 {p99:.2f} ms, max {max(ms):.2f} ms, mean {statistics.fmean(ms):.2f} ms "
        f"(target p99 ≤ {TARGET_P99_MS:g} ms: {'met' if p99 <= TARGET_P99_MS else 'MISSED'})\n"
        f"  of which the decision inside crmtel (lookup + rules): p50 {_percentile(inside, 50):.2f} ms, "
        f"p95 {_percentile(inside, 95):.2f} ms, p99 {_percentile(inside, 99):.2f} ms, max {max(inside):.2f} ms\n"
        f"  host load average while measuring: {os.getloadavg()[0]:.2f} on {os.cpu_count()} CPUs",
        flush=True,
    )
    return p99


def main() -> int:
    """Parse arguments and run the benchmark."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--numbers", type=int, default=1_000_000, help="stored phone numbers")
    parser.add_argument("--rate", type=float, default=50.0, help="new calls per second")
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument(
        "--backend",
        choices=("both", "postgresql", "sqlite"),
        default=None,
        help="default: sqlite, or postgresql when --database-url is given",
    )
    parser.add_argument(
        "--database-url",
        "--pg-url",
        dest="pg_url",
        default=None,
        help=f"PostgreSQL server to create the {DB_NAME} database on (default $CRMTEL_BENCH_PG_URL or local)",
    )
    parser.add_argument("--sqlite-path", default="/tmp/crmtel-bench-route.db")
    parser.add_argument(
        "--reuse", action="store_true", help="keep an already loaded database of the same size"
    )
    smoke.add_smoke(parser, numbers=2_000, seconds=1.5)
    args = smoke.parse(parser)
    if args.backend is None:
        args.backend = "postgresql" if args.pg_url else "sqlite"
    if args.pg_url is None:
        args.pg_url = os.environ.get(
            "CRMTEL_BENCH_PG_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/test"
        )
    backends = ("sqlite", "postgresql") if args.backend == "both" else (args.backend,)
    missed = False
    for backend in backends:
        missed = asyncio.run(run(backend, args)) > TARGET_P99_MS or missed
    return smoke.verdict(args, missed)


if __name__ == "__main__":
    samerun.report()
    raise SystemExit(main())
