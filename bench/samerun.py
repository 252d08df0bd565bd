"""The same-run baseline every benchmark prints beside its figures, so figures compare across machines as ratios.

Two yardsticks measured in the benchmark's own process just before it runs: panoramisk's bare AMI parser
(``AMIProtocol.data_received`` on a fixed stream of recorded events — the README's "52.4k events/s here vs
92.5k there") and a fixed pure-Python CPU loop; plus the machine's load average at that moment. A figure
divided by the parser rate (or multiplied by the loop time) is comparable between a quiet laptop and a busy
2-core CI box; the README's table quotes both.
"""

from __future__ import annotations

import asyncio
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from panoramisk.ami_protocol import AMIProtocol

TRACE = Path(__file__).resolve().parents[1] / "crmtel" / "fakepbx" / "data" / "direct-answered.ami"
# Copies of the trace fed to the parser (about 60k events) and the CPU loop's iterations.
COPIES = 300
LOOP = 3_000_000


class _Transport(asyncio.Transport):
    def write(self, data: bytes | bytearray | memoryview) -> None:
        pass

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return default

    def close(self) -> None:
        pass


class _Counter:
    def __init__(self) -> None:
        self.count = 0
        self.save_stream = None

    def dispatch(self, message: Any) -> None:
        self.count += 1


def parser_rate() -> float:
    """Events per second (wall time) through panoramisk 1.4's bare protocol parser."""
    trace = TRACE.read_bytes()
    # Only whole messages after the banner line, repeated.
    body = trace.split(b"\r\n", 1)[1] if trace.startswith(b"Asterisk Call Manager") else trace
    data = b"Asterisk Call Manager/11.0.0\r\n" + body * COPIES
    pieces = [data[i : i + 65536] for i in range(0, len(data), 65536)]
    protocol = AMIProtocol()
    protocol.connection_made(_Transport())
    counter = _Counter()
    protocol.factory = counter
    protocol.encoding = "utf8"
    started = time.perf_counter()
    for piece in pieces:
        protocol.data_received(piece)
    elapsed = time.perf_counter() - started
    return counter.count / elapsed


def cpu_loop_ms() -> float:
    """Milliseconds (wall time) of a fixed pure-Python loop."""
    started = time.perf_counter()
    total = 0
    for i in range(LOOP):
        total += i * i & 0xFF
    elapsed = time.perf_counter() - started
    assert total >= 0
    return elapsed * 1000


@dataclass(frozen=True, slots=True)
class Baseline:
    """The yardsticks of one run, measured before its figures."""

    parser_rate: float
    loop_ms: float
    load: float


def measure() -> Baseline:
    """Measure the parser rate, the CPU loop and the load average now."""
    return Baseline(parser_rate(), cpu_loop_ms(), os.getloadavg()[0])


def line(baseline: Baseline | None = None) -> str:
    """The baseline line: parser events/s, CPU loop time, load average."""
    b = baseline or measure()
    return (
        f"baseline (same run): panoramisk bare parser {b.parser_rate:,.0f} events/s; fixed CPU loop "
        f"({LOOP:,} iterations) {b.loop_ms:.0f} ms; load average {b.load:.2f} on {os.cpu_count()} CPUs"
    )


def report() -> Baseline:
    """Print the baseline line (every benchmark does so before its figures) and return it."""
    baseline = measure()
    print(line(baseline), flush=True)
    return baseline


def summary(name: str, figures: str, baseline: Baseline, target: str) -> str:
    """The one line a rerun compares: figures, the same-run baseline, the load at start and at the end."""
    text = (
        f"summary: {name}: {figures}; target {target}; baseline parser {baseline.parser_rate:,.0f} events/s, "
        f"loop {baseline.loop_ms:.0f} ms; load {baseline.load:.2f} at start, {os.getloadavg()[0]:.2f} at end "
        f"on {os.cpu_count()} CPUs"
    )
    print(text, flush=True)
    return text


PATTERN = r"^baseline \(same run\): panoramisk bare parser [\d,]+ events/s; fixed CPU loop"
