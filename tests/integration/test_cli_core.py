"""The crmtel command: help, schema upgrade and configuration display work from a shell."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from crmtel.cli import main


def _crmtel(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "crmtel.cli", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_db_upgrade_creates_the_schema(tmp_path: Path) -> None:
    """`crmtel db upgrade` on a new SQLite file creates the schema and reports success."""
    url = f"sqlite+aiosqlite:///{tmp_path / 'new.db'}"
    result = _crmtel("--database-url", url, "db", "upgrade", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "database at revision head" in result.stdout
    assert (tmp_path / "new.db").stat().st_size > 0


def test_config_show_hides_secrets(tmp_path: Path) -> None:
    """`crmtel config show` prints the effective settings as JSON with the AMI secret masked."""
    cfg = tmp_path / "c.toml"
    cfg.write_text('[ami]\nsecret = "topsecret"\n')
    result = _crmtel("--config", str(cfg), "config", "show", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "topsecret" not in result.stdout
    assert json.loads(result.stdout)["ami"]["port"] == 5038


def test_bad_config_is_reported_with_exit_code_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A broken config file gives a one-line error and exit code 2, not a traceback."""
    cfg = tmp_path / "c.toml"
    cfg.write_text("[ami\n")
    assert main(["--config", str(cfg), "config", "show"]) == 2
    assert "not valid TOML" in capsys.readouterr().err
