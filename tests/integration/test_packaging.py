"""``pip install .`` (the README's first command) installs every module and data file of crmtel, not just most."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _tracked_package_files() -> set[str]:
    out = subprocess.run(
        ["git", "ls-files", "-z", "crmtel"], cwd=ROOT, capture_output=True, check=True, timeout=30
    ).stdout
    return {name for name in out.decode().split("\0") if name and "__pycache__" not in name}


@pytest.mark.slow
def test_the_wheel_holds_every_file_of_the_package(tmp_path: Path) -> None:
    """A package folder without __init__.py, or data outside the package-data globs, would be missing here."""
    try:
        wanted = _tracked_package_files()
    except (OSError, subprocess.CalledProcessError):
        pytest.skip("not a git checkout")
    build = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(tmp_path), str(ROOT)],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert build.returncode == 0, build.stdout + build.stderr
    (wheel,) = tmp_path.glob("crmtel-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        shipped = set(archive.namelist())
    assert sorted(wanted - shipped) == []
