"""The rig is torn down whatever happens: pytest stopped by SIGTERM, or killed outright.

Each test runs ``tests/live/probe_teardown.py`` in a pytest of its own, waits until that run's Asterisk, desk
phones (sipp) and ``crmtel run`` are up (their pids in a file), signals the inner pytest, and then requires every
one of those processes to be gone — SIGTERM through the rig's teardown, SIGKILL through PR_SET_PDEATHSIG.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.fixtures.races import RACES_PROCESSES
from tests.live.asterisk import Install
from tests.live.probe_teardown import PIDS_VARIABLE

# Races real processes (tests/fixtures/races.py).
pytestmark = RACES_PROCESSES

ROOT = Path(__file__).resolve().parents[2]


def _running(pid: int) -> bool:
    """Whether ``pid`` is a live process (a zombie nobody reaped yet has ended)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def _until(condition: object, limit: float, what: str) -> None:
    assert callable(condition)
    deadline = time.monotonic() + limit
    while not condition():
        assert time.monotonic() < deadline, what
        time.sleep(0.2)


def _held_rig(tmp_path: Path) -> tuple[subprocess.Popen[bytes], dict[str, int], Path]:
    pids_file = tmp_path / "pids.json"
    log = tmp_path / "inner.log"
    with log.open("wb") as out:
        inner = subprocess.Popen(
            [sys.executable, "-m", "pytest", "tests/live/probe_teardown.py", "-q", "-p", "no:cacheprovider"],
            cwd=ROOT,
            env={**os.environ, PIDS_VARIABLE: str(pids_file)},
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        # A rig on a loaded machine: PBX booted, crmtel healthy, phones registered — a generous bound.
        _until(lambda: pids_file.exists() or inner.poll() is not None, 240.0, "the probe's rig never came up")
        assert pids_file.exists(), log.read_text(errors="replace")
        pids: dict[str, int] = json.loads(pids_file.read_text())
        assert all(_running(pid) for pid in pids.values()), pids
    except BaseException:
        inner.kill()
        inner.wait()
        raise
    return inner, pids, log


def _gone(pids: dict[str, int], log: Path) -> None:
    _until(
        lambda: not any(_running(pid) for pid in pids.values()),
        30.0,
        f"still running: {[(k, p) for k, p in pids.items() if _running(p)]}\n{log.read_text(errors='replace')[-3000:]}",
    )


def test_sigterm_of_pytest_tears_the_rig_down(live_install: Install, tmp_path: Path) -> None:
    inner, pids, log = _held_rig(tmp_path)
    inner.send_signal(signal.SIGTERM)
    try:
        code = inner.wait(timeout=90)
    except subprocess.TimeoutExpired:
        inner.kill()
        inner.wait()
        raise AssertionError(
            f"pytest did not stop on SIGTERM\n{log.read_text(errors='replace')[-3000:]}"
        ) from None
    # Interrupted (2), its summary written: the rig's teardown ran, not a kill from outside.
    assert code == pytest.ExitCode.INTERRUPTED, log.read_text(errors="replace")[-3000:]
    _gone(pids, log)


def test_sigkilled_pytest_takes_the_rig_along(live_install: Install, tmp_path: Path) -> None:
    inner, pids, log = _held_rig(tmp_path)
    inner.kill()
    inner.wait()
    # Nothing of the inner pytest ran: PR_SET_PDEATHSIG is all that can end its children.
    _gone(pids, log)
