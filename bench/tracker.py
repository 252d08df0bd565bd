"""Throughput of the pure call-tracking core: AMI messages -> parse_event -> reduce, over the real traces.

Run: ``python bench/tracker.py [--seconds 3] [--traces DIR]``. Prints AMI events/s (every message of the
traces, noise included, measured in CPU time) and typed events/s (those the tracker uses), plus the same for 50 interleaved concurrent calls.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import samerun
import smoke

from crmtel.ami.events import parse_event
from crmtel.ami.protocol import Message
from crmtel.calls.tracker import new_state, reduce

DEFAULT_TRACES = Path(__file__).resolve().parents[1] / "crmtel" / "fakepbx" / "data"
BASE = datetime(2026, 11, 23, 19, 27, tzinfo=UTC)
FIGURES = (
    r"^baseline \(same run\): panoramisk bare parser [\d,]+ events/s; fixed CPU loop",
    r"^sequential traces : +[\d,]+ AMI events/s",
    r"^50 concurrent +: +[\d,]+ AMI events/s",
)


def load(path: Path, suffix: str = "", dt: float = 0.0) -> list[tuple[datetime, Message]]:
    """One trace's messages with absolute times; ``suffix`` makes ids (and channel names) distinct."""
    out: list[tuple[datetime, Message]] = []
    ids = {"uniqueid", "linkedid", "destuniqueid", "destlinkedid"}
    for line in path.read_text(encoding="utf-8").splitlines():
        data = json.loads(line)
        if "headers" not in data:
            continue
        headers = tuple(
            (k, v + suffix if suffix and (k.lower() in ids or k.lower().endswith("channel")) and v else v)
            for k, v in data["headers"]
        )
        out.append((BASE + timedelta(seconds=float(data["t"]) + dt), Message(headers)))
    return out


def measure(batches: list[list[tuple[datetime, Message]]], seconds: float) -> tuple[float, float, float, int]:
    """Replay batches with a fresh tracker for ``seconds`` of CPU: (messages/s, events/s, wall messages/s, calls)."""
    messages = events = ended = 0
    start = time.process_time()
    wall = time.perf_counter()
    while time.process_time() - start < seconds:
        for batch in batches:
            state = new_state("bench")
            for at, msg in batch:
                event = parse_event(msg, at)
                messages += 1
                if event is None:
                    continue
                events += 1
                state, effects = reduce(state, event)
                ended += sum(1 for e in effects if type(e).__name__ == "CallEnded")
    elapsed = time.process_time() - start
    wall_elapsed = time.perf_counter() - wall
    return messages / elapsed, events / elapsed, messages / wall_elapsed, ended


def main() -> int:
    """Print the figures."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--traces", type=Path, default=DEFAULT_TRACES)
    smoke.add_smoke(parser, seconds=0.3)
    args = smoke.parse(parser)
    paths = sorted(args.traces.glob("*.jsonl"))
    if not paths:
        print(f"no traces in {args.traces}", file=sys.stderr)
        return 1
    sequential = [load(p) for p in paths]
    print("CPU-time rates (wall-clock rate in brackets; lower when other processes share the CPU)")
    msg_rate, ev_rate, wall_rate, ended = measure(sequential, args.seconds)
    print(
        f"sequential traces : {msg_rate:>9,.0f} AMI events/s [{wall_rate:,.0f}]"
        f"  {ev_rate:>9,.0f} typed events/s  ({ended} calls)"
    )
    # 50 calls at once: every trace several times with shifted ids, merged by time.
    merged: list[tuple[datetime, Message]] = []
    for i in range(50):
        merged.extend(load(paths[i % len(paths)], f".c{i}", dt=i * 0.1))
    merged.sort(key=lambda item: item[0])
    msg_rate, ev_rate, wall_rate, ended = measure([merged], args.seconds)
    print(
        f"50 concurrent     : {msg_rate:>9,.0f} AMI events/s [{wall_rate:,.0f}]"
        f"  {ev_rate:>9,.0f} typed events/s  ({ended} calls)"
    )
    return 0


if __name__ == "__main__":
    samerun.report()
    raise SystemExit(main())
