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


def line() -> str:
    """The baseline line: parser events/s, CPU loop time, load average."""
    rate = parser_rate()
    loop = cpu_loop_ms()
    load = os.getloadavg()[0]
    return (
        f"baseline (same run): panoramisk bare parser {rate:,.0f} events/s; fixed CPU loop "
        f"({LOOP:,} iterations) {loop:.0f} ms; load average {load:.2f} on {os.cpu_count()} CPUs"
    )


def report() -> None:
    """Print the baseline line (every benchmark does so before its figures)."""
    print(line(), flush=True)


PATTERN = r"^baseline \(same run\): panoramisk bare parser [\d,]+ events/s; fixed CPU loop"
