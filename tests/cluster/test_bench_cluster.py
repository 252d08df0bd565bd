"""``bench/popup_latency.py --cluster`` runs end to end at smoke size: popups across three nodes, failover time."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

from tests.fixtures.databases import pg_base_url
from tests.fixtures.races import RACES_PROCESSES
from tests.integration.test_bench_smoke import _drop_smoke_leftovers

# Races real processes (tests/fixtures/races.py).
pytestmark = RACES_PROCESSES

BENCH = Path(__file__).resolve().parents[2] / "bench" / "popup_latency.py"


def test_cluster_popup_benchmark_prints_popup_and_failover_figures() -> None:
    """Three real nodes, browsers spread over them: every popup arrives, and the failover time is printed."""
    base = pg_base_url()
    assert base is not None
    process = subprocess.Popen(
        [sys.executable, str(BENCH), "--smoke", "--cluster", "--database-url", base],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        output, _ = process.communicate(timeout=170)
    finally:
        process.kill()
        process.wait()
        _drop_smoke_leftovers(process.pid)
    assert process.returncode == 0, output
    assert re.search(r"^  call\.ringing +n= *5 +p50=", output, re.M), output
    found = re.search(r"failover after kill -9 of the leader: lease taken in ([\d.]+) s", output)
    assert found is not None, output
    assert float(found.group(1)) < 5.0
