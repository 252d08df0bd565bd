"""The repository is all a clone needs: no file reaches outside it for the recorded traces."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

from tests.fixtures.traces import SCENARIOS, TRACES_DIR

ROOT = Path(__file__).resolve().parents[2]
# Spelled in pieces so that this file does not match itself.
OUTSIDE = re.compile(r"\.\./" + r"shared|shared.{0,12}ami" + "-traces")


def _tracked_files() -> list[Path]:
    try:
        out = subprocess.run(
            ["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True, timeout=30
        ).stdout
    except (OSError, subprocess.CalledProcessError):
        return [
            p for p in ROOT.rglob("*") if p.is_file() and ".git" not in p.parts and ".venv" not in p.parts
        ]
    return [ROOT / name for name in out.decode().split("\0") if name]


# The one exception: CI installs the live tier's Asterisk from there when it exists (and only then).
ALLOWED = {ROOT / ".ci" / "run"}


def test_no_project_file_refers_to_the_folder_beside_the_clone() -> None:
    """A file naming the folder beside the clone would work only on the machines that recorded the traces."""
    offenders = []
    for path in _tracked_files():
        if not path.is_file() or path in ALLOWED:
            continue
        text = path.read_bytes().decode("utf-8", errors="replace")
        offenders += [
            f"{path.relative_to(ROOT)}:{n}"
            for n, line in enumerate(text.splitlines(), 1)
            if OUTSIDE.search(line)
        ]
    assert offenders == []


def test_every_scenario_has_its_stream_bytes_messages_and_record_in_the_repository() -> None:
    """The nine recorded scenarios live in crmtel/fakepbx/data with .ami, .jsonl and .expected.json each."""
    assert TRACES_DIR.is_relative_to(ROOT)
    assert len(SCENARIOS) == 9
    for name in SCENARIOS:
        for suffix in (".ami", ".jsonl", ".expected.json"):
            assert (TRACES_DIR / f"{name}{suffix}").stat().st_size > 0
