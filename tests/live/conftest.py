"""The live tier: real Asterisk 22, real SIP (sipp), ``crmtel run`` — found, skipped or required, and counted.

Without an Asterisk (``/opt/crmtel-asterisk`` or ``$CRMTEL_ASTERISK_PREFIX``) and sipp every live test is skipped
with a message saying how to get one — except in CI (``CI`` is "true", "1" or "yes"), where they fail. ``CRMTEL_LIVE_TIER=off``
leaves the tier out of a run altogether (``.ci/run`` runs it once, in the SQLite pass). The terminal summary
ends with one line counting the live tests and the time they took (their own setup, call and teardown).

SIGTERM of pytest is turned into KeyboardInterrupt while live tests run, so the rigs' teardown stops their
Asterisk, sipp and ``crmtel run``; whatever is left is killed when the session ends, and a SIGKILLed pytest
takes them along through PR_SET_PDEATHSIG (``children.py``).
"""

from __future__ import annotations

import os
import signal
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from types import FrameType

import pytest

from tests.fixtures.ci import in_ci
from tests.fixtures.databases import PostgresRun, SqliteRun
from tests.live.asterisk import Install, find_install
from tests.live.children import kill_left

TIER_VARIABLE = "CRMTEL_LIVE_TIER"
_HERE = Path(__file__).resolve().parent
_outcomes: Counter[str] = Counter()
_took: list[float] = []
_notes: list[str] = []


def tier_off() -> bool:
    """Whether this run leaves the live tier out (``CRMTEL_LIVE_TIER=off``)."""
    return os.environ.get(TIER_VARIABLE, "").lower() in ("off", "0", "no")


def pytest_ignore_collect(collection_path: Path, config: pytest.Config) -> bool | None:
    """Leave tests/live out of a run that asked for it (CRMTEL_LIVE_TIER=off)."""
    if tier_off() and _HERE in (collection_path, *collection_path.parents):
        return True
    return None


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Mark every live test ``live`` (select with ``-m live``, leave out with ``-m 'not live'``)."""
    for item in items:
        if _HERE in item.path.parents:
            item.add_marker(pytest.mark.live)


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    """Count live outcomes (a rerun counts once, by its final report) and add up their own durations."""
    if not report.nodeid.startswith("tests/live/"):
        return
    # setup (module fixtures: the rig and its calls), call and teardown of live items only — reruns included,
    # tests of other tiers never.
    _took.append(report.duration)
    if report.when == "call" or (report.when == "setup" and not report.passed):
        outcome: str = report.outcome
        if outcome == "rerun":
            return
        if hasattr(report, "wasxfail"):
            _outcomes["xfailed" if report.skipped else "xpassed"] += 1
        else:
            _outcomes[outcome] += 1


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """One line that counts the live tests (CI checks it: passed > 0, nothing skipped or failed)."""
    if tier_off():
        terminalreporter.write_line(f"live tier: not run ({TIER_VARIABLE}=off)")
        return
    if not _outcomes:
        return
    took = sum(_took)
    found = find_install()
    where = f"Asterisk {found.version} at {found.prefix}" if isinstance(found, Install) else "no Asterisk"
    counts = ", ".join(f"{_outcomes[k]} {k}" for k in ("passed", "failed", "skipped", "xfailed", "xpassed"))
    terminalreporter.write_line(f"live tier: {counts} ({where}, {took:.0f} s)")
    for note in _notes:
        terminalreporter.write_line(f"live tier: {note}")


def note(text: str) -> None:
    """A line for the live tier's summary (measured figures such as popup latency)."""
    _notes.append(text)


def _interrupted(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt(f"signal {signal.Signals(signum).name}")


@pytest.fixture(scope="session", autouse=True)
def _torn_down_on_sigterm() -> Iterator[None]:
    """While live tests run, SIGTERM acts as Ctrl-C: pytest stops and the rigs' teardown runs."""
    before = signal.signal(signal.SIGTERM, _interrupted)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, before)
        kill_left()


def pytest_unconfigure(config: pytest.Config) -> None:
    """Anything the tier started that a teardown did not reach is killed (by pid) before pytest exits."""
    kill_left()


@pytest.fixture(scope="session")
def live_install() -> Install:
    """The Asterisk and sipp the tier runs; skipped (failed in CI) when there are none."""
    found = find_install()
    if isinstance(found, str):
        if in_ci():
            pytest.fail(
                f"live tier: {found} (.ci/run installs it where the project's shared folder is beside the clone)"
            )
        pytest.skip(f"live tier: {found}")
    return found


def module_database(run: PostgresRun | SqliteRun, folder: Path) -> str:
    """A fresh migrated database for a module's rig."""
    if isinstance(run, PostgresRun):
        return run.fresh()
    return run.fresh(folder)


@pytest.fixture
def database_for(_database_run: PostgresRun | SqliteRun) -> Callable[[Path], str]:
    """A fresh migrated database in a folder (made here)."""

    def make(folder: Path) -> str:
        folder.mkdir(parents=True, exist_ok=True)
        return module_database(_database_run, folder)

    return make
