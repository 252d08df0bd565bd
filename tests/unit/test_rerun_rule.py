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
