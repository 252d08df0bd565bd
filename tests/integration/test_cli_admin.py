"""The CLI as an admin uses it: managers, closed pipes, binary output, terminals and progress bars."""

from __future__ import annotations

import asyncio
import io
import json
import os
import pty
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from crmtel.cli import build_parser
from crmtel.config import Settings
from crmtel.domain import CallRecord, Direction, Outcome
from crmtel.store.calls import CallRepository
from crmtel.store.db import Database
from crmtel.store.managers import ManagerRepository
from tests.fixtures.daemon import child_env


async def run(argv: list[str], database_url: str) -> int:
    args = build_parser().parse_args(argv)
    code: int = await args.handler(args, Settings(database_url=database_url))
    return code


def _crmtel(*args: str, cwd: Path, **kwargs: object) -> subprocess.Popen[bytes]:
    return subprocess.Popen(  # type: ignore[call-overload, no-any-return]
        [sys.executable, "-m", "crmtel.cli", *args], cwd=cwd, env=child_env(), **kwargs
    )


async def test_manager_list_passwd_deactivate_activate(
    db: Database, database_url: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """list shows every manager; passwd (stdin when not a terminal) changes the login; deactivate stops it."""
    repo = ManagerRepository(db)
    await repo.save(login="anna", name="Анна", extensions=("101",), password="old-pass")
    await repo.save(login="boris", name="Борис", extensions=())

    assert await run(["manager", "list", "--format", "json"], database_url) == 0
    listed = json.loads(capsys.readouterr().out)
    assert [(m["login"], m["extensions"], m["active"]) for m in listed] == [
        ("anna", ["101"], True),
        ("boris", [], True),
    ]
    assert await run(["manager", "list"], database_url) == 0
    table = capsys.readouterr().out.splitlines()
    assert table[0].split() == ["login", "name", "role", "extensions", "mobile", "active"]
    assert table[1].split() == ["anna", "Анна", "manager", "101", "-", "yes"]

    monkeypatch.setattr("sys.stdin", io.StringIO("new-pass-42\n"))
    assert await run(["manager", "passwd", "anna"], database_url) == 0
    assert "new-pass-42" not in capsys.readouterr().out
    assert await repo.authenticate("anna", "old-pass") is None
    assert await repo.authenticate("anna", "new-pass-42") is not None

    assert await run(["manager", "deactivate", "anna"], database_url) == 0
    assert await repo.authenticate("anna", "new-pass-42") is None
    assert await run(["manager", "activate", "anna"], database_url) == 0
    assert await repo.authenticate("anna", "new-pass-42") is not None

    from crmtel.errors import CrmtelError

    with pytest.raises(CrmtelError, match="no manager with login 'nobody'"):
        await run(["manager", "deactivate", "nobody"], database_url)


def test_manager_add_refuses_an_extension_that_is_not_a_number(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """`--extension abc` (or 1, or 1234567) is a usage error naming the value; nothing runs."""
    for bad in ("abc", "1", "1234567", "10 1"):
        with pytest.raises(SystemExit) as stop:
            build_parser().parse_args(["manager", "add", "--login", "a", "--name", "A", "--extension", bad])
        assert stop.value.code == 2
        assert f"{bad!r} is not an extension number (2 to 6 digits, e.g. 101)" in capsys.readouterr().err


async def _many_calls(db: Database, count: int) -> None:
    start = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)
    records = [
        CallRecord(
            pbx="pbx1",
            linkedid=f"1795400000.{i}",
            direction=Direction.INBOUND,
            caller_number=f"+7916{i:07d}",
            caller_name=None,
            dialled="4951234567",
            started_at=start + timedelta(seconds=i),
            ended_at=start + timedelta(seconds=i + 30),
            outcome=Outcome.ANSWERED,
            route_kind="queue",
            route_target="retail",
            route_reason="unknown caller",
        )
        for i in range(count)
    ]
    await CallRepository(db).upsert_many([(r, None) for r in records])


@pytest.mark.slow
async def test_calls_list_into_a_closed_pipe_ends_quietly(
    db: Database, database_url: str, tmp_path: Path
) -> None:
    """`crmtel calls list --format json | head -c 100`: no BrokenPipe traceback, SIGPIPE's exit status."""
    await _many_calls(db, 3000)
    proc = _crmtel(
        "--database-url", database_url, "calls", "list", "--format", "json",
        cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )  # fmt: skip
    assert proc.stdout is not None
    assert proc.stderr is not None
    first = await asyncio.to_thread(proc.stdout.read, 100)
    proc.stdout.close()  # what `head` does once it has its lines
    err = await asyncio.to_thread(proc.stderr.read)
    proc.stderr.close()
    code = await asyncio.to_thread(proc.wait, 60)
    assert first.startswith(b"[")
    assert b"Traceback" not in err
    assert b"BrokenPipe" not in err
    assert code == 141, err


async def test_calls_list_json_carries_the_route(
    db: Database, database_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """route_kind, route_target and route_reason of each call are in `calls list --format json`."""
    await _many_calls(db, 2)
    assert await run(["calls", "list", "--format", "json"], database_url) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [(r["route_kind"], r["route_target"], r["route_reason"]) for r in rows] == [
        ("queue", "retail", "unknown caller")
    ] * 2


def _migrated(path: Path) -> str:
    """The URL of a new SQLite database at ``path``, migrated by `crmtel db upgrade`."""
    url = f"sqlite+aiosqlite:///{path}"
    subprocess.run(
        [sys.executable, "-m", "crmtel.cli", "--database-url", url, "db", "upgrade"],
        check=True,
        cwd=path.parent,
        env=child_env(),
        capture_output=True,
    )
    return url


def _on_a_terminal(*args: str, cwd: Path, stream: str) -> tuple[int, bytes, bytes]:
    """Run crmtel with ``stream`` ("stdout" or "stderr") on a pseudo-terminal, the other one on a pipe."""
    master, slave = pty.openpty()
    kwargs: dict[str, object] = {"stdin": subprocess.DEVNULL}
    kwargs[stream] = slave
    kwargs["stderr" if stream == "stdout" else "stdout"] = subprocess.PIPE
    proc = _crmtel(*args, cwd=cwd, **kwargs)
    os.close(slave)
    seen = b""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            chunk = os.read(master, 65536)
        except OSError:  # EIO: the child closed the terminal
            break
        if not chunk:
            break
        seen += chunk
    os.close(master)
    other = proc.communicate(timeout=60)[0 if stream == "stderr" else 1]
    return proc.returncode, seen, other or b""


@pytest.mark.slow
def test_xlsx_report_to_a_terminal_needs_output(tmp_path: Path) -> None:
    """`report … --format xlsx` with standard output on a terminal: refused, nothing binary written."""
    url = _migrated(tmp_path / "r.db")
    code, terminal, err = _on_a_terminal(
        "--database-url", url, "report", "calls-vs-deals", "--from", "2026-11-01", "--to", "2026-12-01",
        "--format", "xlsx", cwd=tmp_path, stream="stdout",
    )  # fmt: skip
    assert code == 1
    assert b"PK" not in terminal
    assert b"--output" in err


@pytest.mark.slow
def test_import_shows_a_progress_bar_on_a_terminal_and_nothing_in_a_pipe(tmp_path: Path) -> None:
    """stderr on a terminal: the tqdm bar with the step and row count; stderr a pipe: only the messages."""
    url = _migrated(tmp_path / "p.db")
    rows = "\n".join(f"m{i};Manager {i};{100 + i}" for i in range(500))
    (tmp_path / "m.csv").write_text(f"login;name;extensions\n{rows}\n", encoding="utf-8")
    args = ("--database-url", url, "import", "managers", "m.csv")
    code, terminal, out = _on_a_terminal(*args, cwd=tmp_path, stream="stderr")
    assert code == 0, terminal
    assert b"import managers:" in terminal
    assert b"500 rows" in terminal
    assert b"managers" in out  # the summary still goes to stdout
    piped = subprocess.run(
        [sys.executable, "-m", "crmtel.cli", *args],
        cwd=tmp_path,
        env=child_env(),
        capture_output=True,
        check=False,
    )
    assert piped.returncode == 0
    assert b"import managers:" not in piped.stderr
    assert b"\r" not in piped.stderr
