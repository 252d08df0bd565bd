"""Benchmark of the CDR reader on a hostile Master.csv: ``crmtel backfill`` as a process, peak RSS and calls.

The file holds 100,000 one-leg calls (answered and not, 1,000 callers, four phones) written out of order in
chunks, with 2,000 rows dated 2001 in the middle, a row dated 2099 and one line of 200 MB (no newline for
200 MB) among them. ``crmtel backfill`` must create every one of the 100,000 calls with its peak RSS under
300 MB. The same-run baseline is the same calls in a clean, ordered file.

    python bench/cdr_reader.py                       # 100,000 calls, 2,000 rows of 2001, a 200 MB line
    python bench/cdr_reader.py --calls 20000 --long-line-mb 50

Before issue 27 the reader bisected the file assuming it was ordered and stopped at the first row past the
period: 48,639 of 50,000 calls were created from such a file, and a 200 MB line cost 1.06 GB.
"""

from __future__ import annotations

import argparse
import os
import random
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import samerun
import smoke

FIGURES = (
    r"^baseline \(same run\): panoramisk bare parser [\d,]+ events/s; fixed CPU loop",
    r"^file: [\d,]+ calls",
    r"^baseline \(clean, ordered file\): created [\d,]+ of [\d,]+ in [\d.]+ s, peak RSS [\d.]+ MB",
    r"^hostile file: created [\d,]+ of [\d,]+ in [\d.]+ s, peak RSS [\d.]+ MB, [\d,]+ rows skipped",
    r"^load average",
    r"^target \(every call created, peak RSS < 300 MB\)",
)
TARGET_RSS_MB = 300.0
START = datetime(2026, 11, 2, 6, 0, tzinfo=UTC)
OLD = datetime(2001, 3, 1, 9, 0, tzinfo=UTC)
FORMAT = "%Y-%m-%d %H:%M:%S"


def _q(text: str) -> str:
    return '"' + text.replace('"', '""') + '"'


def leg_line(i: int, start: datetime, linkedid: str) -> str:
    """One inbound one-leg call as cdr_csv writes it (newcdrcolumns, loguniqueid, loguserfield)."""
    answered = i % 3 != 0
    caller = f"7916{i % 1000:07d}"
    ext = 101 + i % 4
    ring = 2 + i % 5
    talk = 10 + i % 50 if answered else 0
    end = start + timedelta(seconds=ring + talk)
    answer = (start + timedelta(seconds=ring)).strftime(FORMAT) if answered else ""
    fields = [
        _q(""),
        _q(caller),
        _q("4951234567"),
        _q("from-trunk"),
        _q(f'"Client {i % 1000}" <{caller}>'),
        _q(f"PJSIP/trunk-{i:08x}"),
        _q(f"PJSIP/{ext}-{i + 1:08x}"),
        _q("Dial"),
        _q(f"PJSIP/{ext},20,t"),
        _q(start.strftime(FORMAT)),
        _q(answer) if answer else "",
        _q(end.strftime(FORMAT)),
        str(ring + talk),
        str(talk),
        _q("ANSWERED" if answered else "NO ANSWER"),
        _q("DOCUMENTATION"),
        _q(linkedid),
        _q(""),
        _q(""),
        _q(linkedid),
        "1",
    ]
    return ",".join(fields) + "\n"


def write_files(work: Path, calls: int, old_rows: int, long_line_mb: int) -> tuple[Path, Path, datetime]:
    """The clean, ordered file and the hostile one; returns them and the end of the last call."""
    lines = [leg_line(i, START + timedelta(seconds=4 * i), f"{1795000000 + 4 * i}.{i}") for i in range(calls)]
    clean = work / "clean.csv"
    with clean.open("w", encoding="utf-8") as out:
        out.writelines(lines)
    hostile = work / "Master.csv"
    rnd = random.Random(27)
    chunks = [lines[i : i + 200] for i in range(0, len(lines), 200)]
    rnd.shuffle(chunks)
    half = len(chunks) // 2
    with hostile.open("w", encoding="utf-8") as out:
        for chunk in chunks[:half]:
            out.writelines(chunk)
        for k in range(old_rows):
            out.write(leg_line(k, OLD + timedelta(seconds=4 * k), f"{983000000 + 4 * k}.{k}"))
        out.write(leg_line(7, datetime(2099, 6, 1, 12, 0, tzinfo=UTC), "4084164000.1"))
        if long_line_mb:
            piece = b"x" * (1 << 20)
            out.flush()
            with hostile.open("ab") as raw:
                raw.write(b'"')
                for _ in range(long_line_mb):
                    raw.write(piece)
                raw.write(b'"\n')
        for chunk in chunks[half:]:
            out.writelines(chunk)
    last_end = START + timedelta(seconds=4 * calls + 120)
    return clean, hostile, last_end


@dataclass(frozen=True)
class Run:
    created: int
    skipped: int
    seconds: float
    peak_mb: float
    output: str


def backfill(work: Path, name: str, master: Path, until: datetime) -> Run:
    """``crmtel backfill`` over the file into a fresh SQLite store, as a process; its peak RSS from wait4."""
    config = work / f"{name}.toml"
    config.write_text(
        f'database_url = "sqlite+aiosqlite:///{work / name}.db"\n'
        '[ami]\nname = "pbx1"\ncdr_timezone = "UTC"\n[i18n]\nlanguage = "en"\n[log]\nlevel = "error"\n',
        encoding="utf-8",
    )
    out, err = work / f"{name}.out", work / f"{name}.err"
    cmd = [sys.executable, "-m", "crmtel.cli", "--config", str(config), "backfill", "--pbx", "pbx1"]
    cmd += ["--cdr", f"csv:{master}", "--since", (START - timedelta(hours=1)).isoformat()]
    cmd += ["--until", until.isoformat()]
    env = {k: v for k, v in os.environ.items() if not k.startswith("CRMTEL_")}
    started = time.perf_counter()
    with out.open("wb") as stdout, err.open("wb") as stderr:
        child = subprocess.Popen(cmd, stdout=stdout, stderr=stderr, env=env)
        _pid, status, usage = os.wait4(child.pid, 0)
        child.returncode = os.waitstatus_to_exitcode(status)
    seconds = time.perf_counter() - started
    text = out.read_text(encoding="utf-8")
    if child.returncode != 0:
        raise SystemExit(f"{name}: crmtel backfill failed ({child.returncode}):\n{err.read_text()[-2000:]}")
    created = int(text.split("created ", 1)[1].split(",", 1)[0])
    skipped = int(text.split(" broken", 1)[0].rsplit("\n", 1)[-1]) if " broken" in text else 0
    return Run(created, skipped, seconds, usage.ru_maxrss / 1024, text)


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--calls", type=int, default=100_000)
    parser.add_argument("--old-rows", type=int, default=2_000, help="rows dated 2001 in the middle")
    parser.add_argument("--long-line-mb", type=int, default=200, help="one line of this many MB (0: none)")
    smoke.add_smoke(parser, calls=300, old_rows=20, long_line_mb=1)
    args = smoke.parse(parser)
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="crmtel-bench-cdr-") as tmp:
        work = Path(tmp)
        clean, hostile, until = write_files(work, args.calls, args.old_rows, args.long_line_mb)
        size = hostile.stat().st_size / 1e6
        print(
            f"file: {args.calls:,} calls out of order, {args.old_rows:,} rows dated 2001 in the middle, "
            f"1 row dated 2099, a {args.long_line_mb} MB line: {size:.0f} MB"
        )
        base = backfill(work, "baseline", clean, until)
        print(
            f"baseline (clean, ordered file): created {base.created:,} of {args.calls:,} in {base.seconds:.1f} s, "
            f"peak RSS {base.peak_mb:.0f} MB"
        )
        run = backfill(work, "hostile", hostile, until)
        print(
            f"hostile file: created {run.created:,} of {args.calls:,} in {run.seconds:.1f} s, "
            f"peak RSS {run.peak_mb:.0f} MB, {run.skipped:,} rows skipped (2099 row and the long line)"
        )
    load_after = os.getloadavg()
    print(
        "load average (1/5/15 min) before: {:.1f} {:.1f} {:.1f}, after: {:.1f} {:.1f} {:.1f}".format(
            *load_before, *load_after
        )
    )
    ok = run.created == args.calls == base.created
    small = run.peak_mb < TARGET_RSS_MB
    print(
        f"target (every call created, peak RSS < {TARGET_RSS_MB:.0f} MB): {'met' if ok and small else 'MISSED'}"
    )
    return 1 if not ok else smoke.verdict(args, missed=not small)


if __name__ == "__main__":
    samerun.report()
    raise SystemExit(main())
