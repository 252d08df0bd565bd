"""Benchmark of the clients import: a generated 100,000-row CSV into an empty store, then re-imported.

Rows look like real exports: external id, name, category, a manager login, a turnover with a decimal
comma, a month, one or two numbers in national or international form, and every tenth client with a
contact person (every fiftieth person acting for two clients). The second run re-imports the same file,
which must create nothing.

    python bench/import_clients.py                                 # SQLite file in /tmp
    python bench/import_clients.py --database-url postgresql+asyncpg://postgres@127.0.0.1:5432/test
                                                                   # PostgreSQL: database crmtel_bench_import
    python bench/import_clients.py --rows 20000                    # quick run

Target: 100,000 clients from CSV in under 30 s on SQLite.
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import random
import sys
import tempfile
import time
from pathlib import Path

from sqlalchemy.engine import make_url

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import samerun
import smoke
from benchdb import pg_database

from crmtel.exchange.importer import ImportKind, import_file
from crmtel.store.db import Database, upgrade_sync
from crmtel.store.managers import ManagerRepository

TARGET_SECONDS = 30.0
DB_NAME = "crmtel_bench_import"
FIGURES = (
    r"^baseline \(same run\): panoramisk bare parser [\d,]+ events/s; fixed CPU loop",
    r"^\w+: first import [\d.]+ s — imported",
    r"^\w+: re-import [\d.]+ s — imported",
    r"^target \(SQLite",
)
MANAGERS = 20
HEADER = [
    "external_id",
    "name",
    "kind",
    "category",
    "manager",
    "turnover",
    "turnover_month",
    "stop_list",
    "notes",
    "phones",
    "contact_name",
    "contact_phones",
]


def write_csv(path: Path, rows: int, seed: int = 3) -> None:
    """A ``;``-separated UTF-8 file with BOM, as Excel writes it."""
    rnd = random.Random(seed)
    with path.open("w", encoding="utf-8-sig", newline="") as out:
        w = csv.writer(out, delimiter=";")
        w.writerow(HEADER)
        for i in range(1, rows + 1):
            phones = f"8 (916) {i // 10000:03d}-{i // 100 % 100:02d}-{i % 100:02d}"
            if i % 3 == 0:
                phones += f", +7 495 {i:07d}"
            contact = contact_phones = ""
            if i % 10 == 0:
                person = i if i % 50 else i - 10  # every fiftieth row names the previous row's person
                contact, contact_phones = f"Contact {person}", f"+7 917 {person:07d}"
            w.writerow(
                [
                    f"C{i:06d}",
                    f"Client {i} LLC",
                    "company" if i % 7 else "person",
                    "wholesale" if i % 4 == 0 else "retail",
                    f"m{i % MANAGERS + 1}" if i % 5 else "",
                    f"{rnd.randrange(1_000_000)},{rnd.randrange(100):02d}",
                    "2026-10",
                    "yes" if i % 101 == 0 else "no",
                    "" if i % 2 else f"note for client {i}; «quoted» text",
                    phones,
                    contact,
                    contact_phones,
                ]
            )


async def main_async(args: argparse.Namespace) -> int:
    with tempfile.TemporaryDirectory(prefix="crmtel-bench-") as tmp:
        work = Path(tmp)
        csv_path = work / "clients.csv"
        t0 = time.perf_counter()
        await asyncio.to_thread(write_csv, csv_path, args.rows)
        size_mb = csv_path.stat().st_size / 1e6
        print(f"generated {args.rows:,} rows ({size_mb:.1f} MB) in {time.perf_counter() - t0:.1f} s")
        if args.database_url:
            url = await pg_database(args.database_url, smoke.name(args, DB_NAME), fresh=True)
        else:
            url = f"sqlite+aiosqlite:///{work / 'bench.db'}"
        await asyncio.to_thread(upgrade_sync, url)
        db = Database(url)
        try:
            managers = ManagerRepository(db)
            for m in range(1, MANAGERS + 1):
                await managers.save(login=f"m{m}", name=f"Manager {m}", extensions=(str(100 + m),))
            backend = make_url(url).get_backend_name()
            t0 = time.perf_counter()
            first = await import_file(db, ImportKind.CLIENTS, csv_path)
            elapsed = time.perf_counter() - t0
            print(f"{backend}: first import {elapsed:.1f} s — {first.summary()}")
            t0 = time.perf_counter()
            again = await import_file(db, ImportKind.CLIENTS, csv_path)
            print(f"{backend}: re-import {time.perf_counter() - t0:.1f} s — {again.summary()}")
        finally:
            await db.dispose()
    # The time target is set for SQLite; on PostgreSQL the figure is reported for comparison.
    fast = elapsed < TARGET_SECONDS or backend != "sqlite"
    correct = not first.errors and again.created == 0
    verdict = "met" if fast and correct else "MISSED"
    print(f"target (SQLite < {TARGET_SECONDS:.0f} s, no errors, re-import creates nothing): {verdict}")
    return 1 if not correct else smoke.verdict(args, missed=not fast)


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--database-url", help="PostgreSQL server URL (database crmtel_bench_import is used)")
    parser.add_argument("--rows", type=int, default=100_000)
    smoke.add_smoke(parser, rows=300)
    return asyncio.run(main_async(smoke.parse(parser)))


if __name__ == "__main__":
    samerun.report()
    raise SystemExit(main())
