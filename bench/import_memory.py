"""Benchmark of memory while importing files that never end: ``crmtel import clients --dry-run`` of a 200 MB
CSV and of a 3,000,000-row XLSX, each run as the operator runs it (a process), its peak RSS taken from the
kernel (``wait4``). Same-run baseline: the same command on a 1 MB CSV — the peak must not follow the file.

    python bench/import_memory.py                      # 200 MB CSV, 3,000,000-row XLSX (takes minutes)
    python bench/import_memory.py --csv-mb 20 --xlsx-rows 100000    # quicker
    python bench/import_memory.py --growth 40          # where memory goes while a 40 MB CSV is imported

``--growth MB`` imports a CSV of that size in this process and, every 50,000 rows, prints the RSS, what
Python holds (tracemalloc) and what SQLite's own allocator holds (``sqlite3_memory_used``: page caches, which
tracemalloc cannot see), then the lines whose Python memory grew most between the first sample and the last.
It found the slow growth of long imports: the private SQLite file of seen clients filling a 16 MB page cache
over the first ~320,000 rows (now 2 MB), while Python's own memory stayed flat.

Target: every peak under 300 MB.
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import ctypes
import os
import subprocess
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path
from typing import IO

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import samerun
import smoke

from crmtel.store.db import upgrade_sync

ROOT = Path(__file__).resolve().parents[1]
TARGET_MB = 300.0
FIGURES = (
    r"^baseline \(same run\): panoramisk bare parser [\d,]+ events/s; fixed CPU loop",
    r"^baseline: csv [\d.]+ MB \([\d,]+ rows\): peak RSS [\d.]+ MB",
    r"^csv [\d.]+ MB \([\d,]+ rows\): peak RSS [\d.]+ MB",
    r"^xlsx [\d,]+ rows \([\d.]+ MB\): peak RSS [\d.]+ MB",
    r"^target \(every peak < 300 MB\)",
)
HEADER = ["external_id", "name", "category", "notes", "phones", "contact_name", "contact_phones"]


def _row(i: int) -> list[str]:
    contact = f"Контакт {i}" if i % 10 == 0 else ""
    return [
        f"C{i:08d}",
        f"ООО «Клиент {i}»",
        "wholesale" if i % 4 == 0 else "retail",
        "" if i % 2 else f"заметка о клиенте {i}; «кавычки», точка с запятой",
        f"8 (9{i % 100:02d}) {i // 10000 % 1000:03d}-{i // 100 % 100:02d}-{i % 100:02d}",
        contact,
        f"+7 917 {i % 10_000_000:07d}" if contact else "",
    ]


def write_csv(path: Path, megabytes: float) -> int:
    """Rows until the file reaches ``megabytes``; returns their number."""
    rows = 0
    with path.open("w", encoding="utf-8-sig", newline="") as out:
        writer = csv.writer(out, delimiter=";")
        writer.writerow(HEADER)
        while True:
            for _ in range(100):
                rows += 1
                writer.writerow(_row(rows))
            if out.tell() >= megabytes * 1e6:
                return rows


def write_xlsx(path: Path, rows: int) -> None:
    """A one-sheet workbook of ``rows`` clients (openpyxl's streaming writer)."""
    from openpyxl import Workbook

    wb = Workbook(write_only=True)
    ws = wb.create_sheet("clients")
    ws.append(HEADER)
    for i in range(1, rows + 1):
        ws.append(_row(i))
    wb.save(path)


def start_import(config: Path, file: Path, out: IO[bytes]) -> subprocess.Popen[bytes]:
    """Start ``crmtel import clients FILE --dry-run`` as the operator runs it, its output into ``out``."""
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "crmtel.cli",
            "--config",
            str(config),
            "import",
            "clients",
            str(file),
            "--dry-run",
        ],
        cwd=ROOT,
        stdout=out,
        stderr=subprocess.STDOUT,
    )


def finish_import(proc: subprocess.Popen[bytes], out: IO[bytes]) -> tuple[float, str]:
    """Wait for the import: its peak RSS in MB (from the kernel, ``wait4``) and its summary line."""
    _pid, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    out.seek(0)
    text = out.read().decode(errors="replace")
    summary = next((line for line in text.splitlines() if "would import" in line), text[-300:])
    if proc.returncode != 0:
        raise SystemExit(f"crmtel import failed ({proc.returncode}): {text[-2000:]}")
    return usage.ru_maxrss / 1024, summary


def _rss_mb() -> float:
    with open("/proc/self/statm", encoding="ascii") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 1e6


def growth(work: Path, url: str, megabytes: float) -> None:
    """Import a CSV of ``megabytes`` in this process, printing where memory goes every 50,000 rows."""
    from crmtel.exchange.importer import ImportKind, import_file
    from crmtel.store.db import Database

    sqlite = ctypes.CDLL("libsqlite3.so.0")
    sqlite.sqlite3_memory_used.restype = ctypes.c_int64
    file = work / "growth.csv"
    rows = write_csv(file, megabytes)
    tracemalloc.start(4)
    snapshots: list[tracemalloc.Snapshot] = []

    class Sampler:
        def step(self, name: str, rows: int | None = None) -> None:
            pass

        def rows(self, done: int) -> None:
            if done % 50_000:
                return
            python = tracemalloc.get_traced_memory()[0] / 1e6
            print(
                f"growth: {done:,} rows: RSS {_rss_mb():.1f} MB, Python {python:.1f} MB, "
                f"SQLite {sqlite.sqlite3_memory_used() / 1e6:.1f} MB",
                flush=True,
            )
            # The first sample, and the latest (the diff is printed once there are two).
            snapshots[1:] = [tracemalloc.take_snapshot()]

    async def run() -> str:
        db = Database(url)
        try:
            report = await import_file(db, ImportKind.CLIENTS, file, dry_run=True, progress=Sampler())
        finally:
            await db.dispose()
        return report.summary()

    print(f"growth: {rows:,} rows — {asyncio.run(run())}")
    if len(snapshots) == 2:
        for stat in snapshots[1].compare_to(snapshots[0], "lineno")[:5]:
            print(f"growth: Python {stat.size_diff / 1e6:+.2f} MB at {stat.traceback[0]}")


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--csv-mb", type=float, default=200.0)
    parser.add_argument("--xlsx-rows", type=int, default=3_000_000)
    parser.add_argument(
        "--growth", type=float, metavar="MB", help="only: where memory goes importing MB of CSV"
    )
    smoke.add_smoke(parser, csv_mb=0.05, xlsx_rows=300)
    args = smoke.parse(parser)
    with tempfile.TemporaryDirectory(prefix="crmtel-bench-") as tmp:
        work = Path(tmp)
        # Each run its own database: dry runs hold a write transaction to the end (runs at once would queue).
        configs: list[Path] = []
        for name in ("baseline", "csv", "xlsx"):
            url = f"sqlite+aiosqlite:///{work / name}.db"
            upgrade_sync(url)
            configs.append(work / f"{name}.toml")
            configs[-1].write_text(f'database_url = "{url}"\n', encoding="utf-8")
        if args.growth:
            growth(work, f"sqlite+aiosqlite:///{work / 'csv.db'}", args.growth)
            return 0
        peaks: list[float] = []

        base = work / "baseline.csv"
        rows = write_csv(base, 1.0 if not args.smoke else 0.02)
        big = work / "clients.csv"
        t0 = time.perf_counter()
        big_rows = write_csv(big, args.csv_mb)
        made_csv = time.perf_counter() - t0
        book = work / "clients.xlsx"
        t0 = time.perf_counter()
        write_xlsx(book, args.xlsx_rows)
        made_xlsx = time.perf_counter() - t0
        files = (base, big, book)
        with tempfile.TemporaryFile() as o1, tempfile.TemporaryFile() as o2, tempfile.TemporaryFile() as o3:
            outs = (o1, o2, o3)
            results: list[tuple[float, str, float]] = []
            if args.smoke:
                # Tiny files: the three runs at once (a process start costs seconds on a loaded machine; peaks
                # at these sizes judge nothing), so the smoke run stays well inside the suite's limit.
                t0 = time.perf_counter()
                procs = [start_import(c, f, o) for c, f, o in zip(configs, files, outs, strict=True)]
                results = [
                    (*finish_import(p, o), time.perf_counter() - t0) for p, o in zip(procs, outs, strict=True)
                ]
            else:
                for c, f, o in zip(configs, files, outs, strict=True):
                    t0 = time.perf_counter()
                    results.append((*finish_import(start_import(c, f, o), o), time.perf_counter() - t0))
        (peak, summary, _took), (csv_peak, csv_summary, csv_took), (xlsx_peak, xlsx_summary, xlsx_took) = (
            results
        )
        print(
            f"baseline: csv {base.stat().st_size / 1e6:.1f} MB ({rows:,} rows): peak RSS {peak:.0f} MB — {summary}"
        )
        peaks += [csv_peak, xlsx_peak]
        print(
            f"csv {big.stat().st_size / 1e6:.1f} MB ({big_rows:,} rows): peak RSS {csv_peak:.0f} MB, {csv_took:.0f} s "
            f"(generated in {made_csv:.0f} s) — {csv_summary}"
        )
        print(
            f"xlsx {args.xlsx_rows:,} rows ({book.stat().st_size / 1e6:.1f} MB): peak RSS {xlsx_peak:.0f} MB, "
            f"{xlsx_took:.0f} s (generated in {made_xlsx:.0f} s) — {xlsx_summary}"
        )
    missed = any(p >= TARGET_MB for p in peaks)
    print(f"target (every peak < {TARGET_MB:.0f} MB): {'MISSED' if missed else 'met'}")
    return smoke.verdict(args, missed)


if __name__ == "__main__":
    samerun.report()
    raise SystemExit(main())
