"""Only tests that race real processes are run again after a failure (tests/fixtures/races.py)."""

from __future__ import annotations

import shlex
import tomllib
from pathlib import Path

from tests.fixtures.races import RACES_PROCESSES

ROOT = Path(__file__).resolve().parents[2]


def test_no_global_rerun_in_the_pytest_options() -> None:
    """addopts reruns nothing: a global rerun would hide a real race behind a lucky second run."""
    options = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["pytest"]["ini_options"]
    words = shlex.split(options["addopts"])
    assert not [w for w in words if w.startswith(("--reruns", "--only-rerun"))], words


def test_the_process_race_mark_reruns_at_most_twice() -> None:
    """RACES_PROCESSES is pytest-rerunfailures' flaky marker with two reruns."""
    assert RACES_PROCESSES.mark.name == "flaky"
    assert RACES_PROCESSES.mark.kwargs == {"reruns": 2, "reruns_delay": 1}


# Browser modules whose page never waits on a server (nothing to race).
_NO_RACE = {"tests/e2e/test_browser_smoke.py"}


def test_every_module_that_runs_real_processes_says_so() -> None:
    """Live and browser modules, and any module starting crmtel daemons or cluster nodes, carry RACES_PROCESSES
    (a new one would otherwise lose the reruns it needs, or a reviewer would not see why it has them)."""
    missing = []
    for path in sorted((ROOT / "tests").glob("*/test_*.py")):
        name = path.relative_to(ROOT).as_posix()
        text = path.read_text()
        races = (
            name.startswith(("tests/live/", "tests/e2e/")) or "DaemonPool" in text or "start_nodes" in text
        )
        if races and name not in _NO_RACE and "RACES_PROCESSES" not in text:
            missing.append(name)
    assert missing == []
