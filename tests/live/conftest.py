"""The live tier: real Asterisk 22, real SIP (sipp), ``crmtel run`` — found, skipped or required, and counted.

Without an Asterisk (``/opt/crmtel-asterisk`` or ``$CRMTEL_ASTERISK_PREFIX``) and sipp every live test is skipped
with a message saying how to get one — except in CI (``CI=true``), where they fail. ``CRMTEL_LIVE_TIER=off``
leaves the tier out of a run altogether (``.ci/run`` runs it once, in the SQLite pass). The terminal summary
ends with one line counting the live tests.
"""

from __future__ import annotations

import os
import time
from collections import Counter
from pathlib import Path

import pytest

from tests.fixtures.databases import PostgresRun, SqliteRun
from tests.live.asterisk import Install, find_install

TIER_VARIABLE = "CRMTEL_LIVE_TIER"
_HERE = Path(__file__).resolve().parent
_outcomes: Counter[str] = Counter()
_started: list[float] = []
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


def pytest_runtest_logstart(nodeid: str, location: tuple[str, int | None, str]) -> None:
    """The tier's clock starts with its first test (module fixtures included)."""
    if nodeid.startswith("tests/live/") and not _started:
        _started.append(time.monotonic())


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    """Count live outcomes (a rerun counts once, by its final report)."""
    if not report.nodeid.startswith("tests/live/"):
        return
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
    took = time.monotonic() - _started[0] if _started else 0.0
    found = find_install()
    where = f"Asterisk {found.version} at {found.prefix}" if isinstance(found, Install) else "no Asterisk"
    counts = ", ".join(f"{_outcomes[k]} {k}" for k in ("passed", "failed", "skipped", "xfailed", "xpassed"))
    terminalreporter.write_line(f"live tier: {counts} ({where}, {took:.0f} s)")
    for note in _notes:
        terminalreporter.write_line(f"live tier: {note}")


def note(text: str) -> None:
    """A line for the live tier's summary (measured figures such as popup latency)."""
    _notes.append(text)


@pytest.fixture(scope="session")
def live_install() -> Install:
    """The Asterisk and sipp the tier runs; skipped (failed in CI) when there are none."""
    found = find_install()
    if isinstance(found, str):
        if os.environ.get("CI"):
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
