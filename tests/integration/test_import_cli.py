"""The ``import``, ``export`` and ``manager add`` subcommands: exit codes and what the operator sees."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from crmtel.cli import build_parser
from crmtel.config import Settings
from crmtel.domain import Role
from crmtel.errors import CrmtelError
from crmtel.store.db import Database
from crmtel.store.managers import ManagerRepository


async def run(argv: list[str], database_url: str) -> int:
    args = build_parser().parse_args(argv)
    code: int = await args.handler(args, Settings(database_url=database_url))
    return code


async def test_manager_add_reads_the_password_from_stdin(
    db: Database, database_url: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """``manager add --password-stdin`` creates a head who can log in; the password is not echoed."""
    monkeypatch.setattr("sys.stdin", io.StringIO("s3cret-pass\n"))
    argv = ["manager", "add", "--login", "olga", "--name", "Olga", "--extension", "100", "--extension", "110"]
    assert await run([*argv, "--role", "head", "--password-stdin"], database_url) == 0
    out = capsys.readouterr().out
    assert "olga" in out
    assert "s3cret" not in out
    olga = await ManagerRepository(db).authenticate("olga", "s3cret-pass")
    assert olga is not None
    assert (olga.role, olga.extensions) == (Role.HEAD, ("100", "110"))


async def test_manager_add_refuses_an_empty_stdin_password(
    db: Database, database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An empty first line with --password-stdin is an error, not a manager without password."""
    monkeypatch.setattr("sys.stdin", io.StringIO("\n"))
    with pytest.raises(CrmtelError, match="no password"):
        await run(["manager", "add", "--login", "x", "--name", "X", "--password-stdin"], database_url)
    assert await ManagerRepository(db).by_login("x") is None


async def test_import_with_bad_rows_exits_1_and_lists_them(
    db: Database, database_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Bad rows are printed with their line numbers, nothing is imported, the exit code is 1."""
    path = tmp_path / "clients.csv"
    path.write_text("name;phones;manager\nGood;+79161110001;\n;+79161110002;\nX;+79161110003;zoe\n", "utf-8")
    assert await run(["import", "clients", str(path)], database_url) == 1
    captured = capsys.readouterr()
    assert "error: line 3: missing name" in captured.err
    assert "error: line 4: unknown manager login 'zoe'" in captured.err
    assert "nothing was imported" in captured.err
    assert "0 created" in captured.out
    assert await run(["import", "clients", str(path), "--skip-bad-rows"], database_url) == 0
    assert "1 created" in capsys.readouterr().out


async def test_dry_run_then_export_round_trip(
    db: Database, database_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """--dry-run writes nothing; a real import then exports to .xlsx with the same rows."""
    path = tmp_path / "leads.csv"
    path.write_text("name,phones\nSergey,+79261002030\nElena,+79251111111\n", "utf-8")
    assert await run(["import", "leads", str(path), "--dry-run"], database_url) == 0
    assert "would import 2 leads rows: 2 created" in capsys.readouterr().out
    out = tmp_path / "leads.xlsx"
    assert await run(["export", "leads", str(out)], database_url) == 0
    assert "exported 0 leads rows" in capsys.readouterr().out
    assert await run(["import", "leads", str(path)], database_url) == 0
    assert await run(["export", "leads", str(out)], database_url) == 0
    assert "exported 2 leads rows" in capsys.readouterr().out
    assert await run(["import", "leads", str(out)], database_url) == 0
    assert "0 created, 0 updated, 2 unchanged" in capsys.readouterr().out
