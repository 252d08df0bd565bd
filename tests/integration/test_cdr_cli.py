"""``crmtel backfill`` as an admin runs it after an outage: dry run, real run, second run; clear errors."""

from __future__ import annotations

from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from crmtel.fakepbx.server import load_jsonl
from crmtel.store.calls import CallRepository
from crmtel.store.db import Database
from tests.fixtures.cdr_data import legs_of_stream, write_master_csv
from tests.fixtures.daemon import crmtel_cli, write_config
from tests.fixtures.traces import SCENARIOS, TRACES_DIR

MOSCOW = ZoneInfo("Europe/Moscow")


def _setup(tmp_path: Path, database_url: str) -> tuple[Path, Path]:
    legs = [leg for s in SCENARIOS for leg in legs_of_stream(load_jsonl(TRACES_DIR / f"{s}.jsonl"))]
    master = write_master_csv(tmp_path / "Master.csv", legs, MOSCOW)
    config = write_config(
        tmp_path / "crmtel.toml",
        {"ami": {"name": "pbx1", "cdr_timezone": "Europe/Moscow"}, "i18n": {"language": "en"}},
        database_url=database_url,
    )
    return config, master


@pytest.mark.slow
async def test_backfill_command_dry_run_then_writes_then_changes_nothing(
    db: Database, database_url: str, tmp_path: Path
) -> None:
    """--dry-run counts without writing; the real run creates the nine calls; the next one leaves them."""
    config, master = _setup(tmp_path, database_url)
    args = ("--config", str(config), "backfill", "--pbx", "pbx1", "--cdr", f"csv:{master}")
    period = ("--since", "2026-11-23 22:00", "--until", "2026-11-23T23:00:00+03:00")
    dry = await crmtel_cli(*args, *period, "--dry-run", cwd=tmp_path)
    assert dry.returncode == 0, dry.stderr
    assert "pbx1: created 9, corrected 0, unchanged 0" in dry.stdout
    assert "dry run" in dry.stdout
    assert await CallRepository(db).count() == {}
    real = await crmtel_cli(*args, *period, cwd=tmp_path)
    assert real.returncode == 0, real.stderr
    assert "pbx1: created 9, corrected 0, unchanged 0" in real.stdout
    # Not a terminal: no progress bar in the output.
    assert "\r" not in real.stderr
    assert len(await CallRepository(db).count()) == len(SCENARIOS)
    again = await crmtel_cli(*args, *period, cwd=tmp_path)
    assert "pbx1: created 0, corrected 0, unchanged 9" in again.stdout


async def test_backfill_command_errors_are_one_line(database_url: str, tmp_path: Path) -> None:
    """An unknown PBX, a PBX without a CDR source and a bad time are one-line errors with exit code 1."""
    config, master = _setup(tmp_path, database_url)
    unknown = await crmtel_cli(
        "--config", str(config), "backfill", "--pbx", "nope", "--since", "2026-11-23", cwd=tmp_path
    )
    assert unknown.returncode == 1
    assert "no PBX named nope" in unknown.stderr
    no_source = await crmtel_cli(
        "--config", str(config), "backfill", "--pbx", "pbx1", "--since", "2026-11-23", cwd=tmp_path
    )
    assert no_source.returncode == 1
    assert "has no CDR source" in no_source.stderr
    bad = await crmtel_cli(
        "--config",
        str(config),
        "backfill",
        "--pbx",
        "pbx1",
        "--cdr",
        f"csv:{master}",
        "--since",
        "yesterday",
        cwd=tmp_path,
    )
    assert bad.returncode == 1
    assert "not a date or time" in bad.stderr
    assert "Traceback" not in unknown.stderr + no_source.stderr + bad.stderr
