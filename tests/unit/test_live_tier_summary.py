"""The live tier's switches and summary line, without an Asterisk: ``CI=false`` skips like no CI at all, and the
tier's time counts only its own tests (a slow test of another tier after it adds nothing)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PROBE = "tests/live/probe_teardown.py"  # one live test; with no Asterisk it is skipped (or failed in CI)


def _pytest(tmp_path: Path, *args: str, ci: str | None) -> tuple[int, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("CI", "CRMTEL_LIVE_TIER")}
    env["CRMTEL_ASTERISK_PREFIX"] = str(tmp_path / "no-asterisk")
    if ci is not None:
        env["CI"] = ci
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "--rootdir", str(ROOT), *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    return done.returncode, done.stdout + done.stderr


def _summary(output: str) -> str:
    lines = [line for line in output.splitlines() if line.startswith("live tier: ")]
    assert lines, output
    return lines[0]


@pytest.mark.parametrize("ci", [None, "false", "0"])
def test_without_ci_a_missing_asterisk_skips_the_tier(tmp_path: Path, ci: str | None) -> None:
    code, output = _pytest(tmp_path, PROBE, ci=ci)
    assert code == 0, output
    assert _summary(output).startswith("live tier: 0 passed, 0 failed, 1 skipped"), output


@pytest.mark.parametrize("ci", ["true", "YES"])
def test_in_ci_a_missing_asterisk_fails_the_tier(tmp_path: Path, ci: str) -> None:
    code, output = _pytest(tmp_path, PROBE, ci=ci)
    assert code == 1, output
    assert _summary(output).startswith("live tier: 0 passed, 1 failed, 0 skipped"), output


def test_the_tiers_time_is_its_own_tests(tmp_path: Path) -> None:
    slow = tmp_path / "test_slow_other_tier.py"
    # A test of another tier that takes a known while (what is measured, not a wait for something).
    slow.write_text("import time\n\n\ndef test_slow() -> None:\n    time.sleep(4)\n", encoding="utf-8")
    code, output = _pytest(tmp_path, PROBE, str(slow), "-p", "no:randomly", ci=None)
    assert code == 0, output
    took = re.search(r", (\d+) s\)$", _summary(output))
    assert took, output
    assert int(took.group(1)) < 4, output
