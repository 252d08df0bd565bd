"""The shipped systemd unit: valid for systemd, hardened to an exposure of 2.0 or less, and true to the install."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.fixtures.ci import in_ci

ROOT = Path(__file__).resolve().parents[2]
UNIT = ROOT / "deploy" / "systemd" / "crmtel.service"
INSTALLED_CRMTEL = "/opt/crmtel/venv/bin/crmtel"
MAX_EXPOSURE = 2.0


def _analyze() -> str:
    found = shutil.which("systemd-analyze")
    if found is None:
        if in_ci():
            pytest.fail("systemd-analyze is missing: .ci/run installs Debian's systemd package")
        pytest.skip("systemd-analyze is not installed here")
    return found


def _unit_here(tmp_path: Path) -> Path:
    # verify checks that ExecStart= exists: point it at this checkout's crmtel instead of /opt/crmtel.
    here = Path(sys.executable).with_name("crmtel")
    copy = tmp_path / "crmtel.service"
    copy.write_text(UNIT.read_text(encoding="utf-8").replace(INSTALLED_CRMTEL, str(here)), encoding="utf-8")
    return copy


def _settings() -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for line in UNIT.read_text(encoding="utf-8").splitlines():
        if "=" in line and not line.startswith(("#", "[")):
            key, value = line.split("=", 1)
            out.setdefault(key, []).append(value)
    return out


def test_systemd_analyze_verify_finds_nothing_wrong(tmp_path: Path) -> None:
    """`systemd-analyze verify` accepts the unit without a warning."""
    result = subprocess.run(
        [_analyze(), "verify", str(_unit_here(tmp_path))], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stderr
    assert result.stderr.strip() == "", result.stderr


def test_security_exposure_is_at_most_2(tmp_path: Path) -> None:
    """`systemd-analyze security --offline=yes` rates the unit 2.0 or less (it was 7.7 EXPOSED)."""
    result = subprocess.run(
        [_analyze(), "security", "--offline=yes", "--no-pager", str(_unit_here(tmp_path))],
        capture_output=True,
        text=True,
        check=False,
    )
    match = re.search(r"Overall exposure level for \S+: (\d+\.\d+)", result.stdout)
    assert match is not None, result.stdout + result.stderr
    print(f"systemd-analyze security exposure: {match.group(1)}")
    assert float(match.group(1)) <= MAX_EXPOSURE, result.stdout


def test_unit_is_notify_with_watchdog_and_optional_paths() -> None:
    """Type=notify with a watchdog; optional files marked '-'; no SupplementaryGroups that can fail the start."""
    settings = _settings()
    assert settings["Type"] == ["notify"]
    assert settings["NotifyAccess"] == ["main"]
    assert int(settings["WatchdogSec"][0]) > 0
    assert all(p.startswith("-") for p in settings["ReadOnlyPaths"])
    assert all(p.startswith("-") for p in settings["EnvironmentFile"])
    assert "SupplementaryGroups" not in settings


def test_documentation_names_a_file_the_readme_install_creates() -> None:
    """Documentation= points at a file the README's install commands really put there."""
    (doc,) = _settings()["Documentation"]
    assert doc.startswith("file:")
    path = doc.removeprefix("file:")
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert f"README.md {path}" in readme


def test_stop_timeout_leaves_room_for_the_last_writes() -> None:
    """systemd waits longer than crmtel retries a locked database on stop (calls.stop_write_seconds), with room
    for the rest of the stop: the calls received before SIGTERM are written, never cut off by a SIGKILL."""
    from crmtel.config import CallsSettings

    settings = _settings()
    assert settings["KillSignal"] == ["SIGTERM"]
    stop_timeout = int(settings["TimeoutStopSec"][0])
    assert stop_timeout >= CallsSettings().stop_write_seconds + 10


def test_the_webphone_path_unit_watches_the_endpoints_file_the_example_config_names(tmp_path: Path) -> None:
    """crmtel-webphone.path reloads PJSIP when the file crmtel writes changes: the same path as the example's
    webphone.endpoints_file, and its service (started by the path unit's default) reloads res_pjsip."""
    systemd = ROOT / "deploy" / "systemd"
    watched = re.findall(r"^PathChanged=(.+)$", (systemd / "crmtel-webphone.path").read_text(), re.M)
    example = re.findall(
        r'^#?\s*endpoints_file = "([^"]+)"', (ROOT / "config" / "crmtel.toml").read_text(), re.M
    )
    assert watched == example == ["/etc/asterisk/pjsip_crmtel_webphone.conf"]
    service = (systemd / "crmtel-webphone.service").read_text()
    assert re.search(r'^ExecStart=/usr/sbin/asterisk -rx "module reload res_pjsip.so"$', service, re.M)
    analyze = _analyze()
    for name in ("crmtel-webphone.path", "crmtel-webphone.service"):
        # verify checks that ExecStart= exists: this machine's Asterisk may live elsewhere than Debian's.
        text = (systemd / name).read_text().replace("/usr/sbin/asterisk", shutil.which("true") or "/bin/true")
        (tmp_path / name).write_text(text)
    done = subprocess.run(
        [
            analyze,
            "verify",
            str(tmp_path / "crmtel-webphone.path"),
            str(tmp_path / "crmtel-webphone.service"),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    # systemd only warns about a directive it cannot parse: any word on stderr is a mistake in the unit.
    assert (done.returncode, done.stderr) == (0, "")
