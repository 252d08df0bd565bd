"""Benchmark of memory while importing files that never end: ``crmtel import clients --dry-run`` of a 200 MB
CSV and of a 3,000,000-row XLSX, each run as the operator runs it (a process), its peak RSS taken from the
kernel (``wait4``). Same-run baseline: the same command on a 1 MB CSV — the peak must not follow the file.

    python bench/import_memory.py                      # 200 MB CSV, 3,000,000-row XLSX (takes minutes)
    python bench/import_memory.py --csv-mb 20 --xlsx-rows 100000    # quicker

Target: every peak under 300 MB.
"""

from __future__ import annotations

import argparse
import csv
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

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


def peak_rss_mb(config: Path, file: Path) -> tuple[float, str]:
    """Run ``crmtel import clients FILE --dry-run``; its peak RSS in MB and its summary line."""
    with tempfile.TemporaryFile() as out:
        proc = subprocess.Popen(
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
        _pid, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        text = out.read().decode(errors="replace")
    summary = next((line for line in text.splitlines() if "would import" in line), text[-300:])
    if proc.returncode != 0:
        raise SystemExit(f"crmtel import failed ({proc.returncode}): {text[-2000:]}")
    return usage.ru_maxrss / 1024, summary


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--csv-mb", type=float, default=200.0)
    parser.add_argument("--xlsx-rows", type=int, default=3_000_000)
    smoke.add_smoke(parser, csv_mb=0.05, xlsx_rows=300)
    args = smoke.parse(parser)
    with tempfile.TemporaryDirectory(prefix="crmtel-bench-") as tmp:
        work = Path(tmp)
        url = f"sqlite+aiosqlite:///{work / 'bench.db'}"
        upgrade_sync(url)
        config = work / "crmtel.toml"
        config.write_text(f'database_url = "{url}"\n', encoding="utf-8")
        peaks: list[float] = []

        base = work / "baseline.csv"
        rows = write_csv(base, 1.0 if not args.smoke else 0.02)
        peak, summary = peak_rss_mb(config, base)
        print(
            f"baseline: csv {base.stat().st_size / 1e6:.1f} MB ({rows:,} rows): peak RSS {peak:.0f} MB — {summary}"
        )

        big = work / "clients.csv"
        t0 = time.perf_counter()
        rows = write_csv(big, args.csv_mb)
        made = time.perf_counter() - t0
        t0 = time.perf_counter()
        peak, summary = peak_rss_mb(config, big)
        peaks.append(peak)
        size = big.stat().st_size / 1e6
        print(
            f"csv {size:.1f} MB ({rows:,} rows): peak RSS {peak:.0f} MB, {time.perf_counter() - t0:.0f} s "
            f"(generated in {made:.0f} s) — {summary}"
        )
        big.unlink()

        book = work / "clients.xlsx"
        t0 = time.perf_counter()
        write_xlsx(book, args.xlsx_rows)
        made = time.perf_counter() - t0
        t0 = time.perf_counter()
        peak, summary = peak_rss_mb(config, book)
        peaks.append(peak)
        print(
            f"xlsx {args.xlsx_rows:,} rows ({book.stat().st_size / 1e6:.1f} MB): peak RSS {peak:.0f} MB, "
            f"{time.perf_counter() - t0:.0f} s (generated in {made:.0f} s) — {summary}"
        )
    missed = any(p >= TARGET_MB for p in peaks)
    print(f"target (every peak < {TARGET_MB:.0f} MB): {'MISSED' if missed else 'met'}")
    return smoke.verdict(args, missed)


if __name__ == "__main__":
    samerun.report()
    raise SystemExit(main())
