"""`crmtel report queues`: JSON, CSV, XLSX and the table carry the hand-counted queue figures."""

from __future__ import annotations

import asyncio
import csv
import io
import json
from datetime import date
from pathlib import Path

import pytest
from openpyxl import load_workbook

from crmtel.cli import main
from crmtel.store.db import Database
from tests.fixtures import queue_dataset as qd

PERIOD = ["--from", qd.FROM.isoformat(), "--to", qd.TO.isoformat(), "--timezone", qd.TZ]


async def _load(url: str) -> None:
    db = Database(url)
    try:
        await qd.load(db)
    finally:
        await db.dispose()


@pytest.fixture
def loaded_url(database_url: str) -> str:
    """A database holding the queue data set."""
    asyncio.run(_load(database_url))
    return database_url


def _run(url: str, *args: str) -> int:
    return main(["--database-url", url, "report", "queues", *args])


def test_json_has_every_queue_figure_and_member(loaded_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    """JSON {"queues": [...], "period": ...} equals the hand count, members included."""
    assert _run(loaded_url, *PERIOD, "--format", "json") == 0
    data = json.loads(capsys.readouterr().out)
    assert data["period"] == {"from": "2026-11-01", "to": "2026-11-03", "timezone": qd.TZ}
    got = {q["queue"]: {k: q[k] for k in qd.EXPECTED_QUEUES["retail"]} for q in data["queues"]}
    for name, expected in qd.EXPECTED_QUEUES.items():
        assert got[name] == {
            k: (None if v is None else pytest.approx(v, abs=0.005)) for k, v in expected.items()
        }
    members = {
        (q["queue"], m["extension"]): (m["offered"], m["answered"], m["rang_unanswered"])
        for q in data["queues"]
        for m in q["members"]
    }
    assert members == qd.EXPECTED_MEMBERS


def test_queue_option_and_csv_lines(loaded_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    """--queue wholesale gives its line and its two members; figures as text rounded like the table."""
    assert _run(loaded_url, *PERIOD, "--queue", "wholesale", "--format", "csv") == 0
    lines = list(csv.reader(io.StringIO(capsys.readouterr().out)))
    assert len(lines) == 4
    header = lines[0]
    queue = dict(zip(header, lines[1], strict=True))
    assert [queue[h] for h in header[:5]] == ["wholesale", "", "", "2", "1"]
    assert queue[header[-1]] == "50.0"
    assert {line[2] for line in lines[2:]} == {"anna", "gleb"}


def test_xlsx_and_table(loaded_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The workbook has numbers as numbers; the table names both queues."""
    out = tmp_path / "q.xlsx"
    assert _run(loaded_url, *PERIOD, "--format", "xlsx", "--output", str(out)) == 0
    ws = load_workbook(out).active
    assert ws is not None
    rows = [[c.value for c in row] for row in ws.iter_rows(min_row=4)]
    retail = next(r for r in rows if r[0] == "retail" and r[1] is None)
    assert retail[3:5] == [6, 4]
    assert _run(loaded_url, *PERIOD) == 0
    table = capsys.readouterr().out
    assert "retail" in table
    assert "wholesale" in table


def test_bad_arguments_are_one_line_errors(loaded_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    """A reversed period, no period at all, or a preset with dates exit 1..2 with a message, never a traceback."""
    assert _run(loaded_url, "--from", "2026-11-03", "--to", "2026-11-01") != 0
    assert _run(loaded_url) != 0
    assert _run(loaded_url, "--preset", "today", "--from", "2026-11-01") != 0
    assert "Traceback" not in capsys.readouterr().err
    assert _run(loaded_url, "--preset", "last_month", "--format", "json") == 0


def test_calls_vs_deals_takes_a_preset_and_compares_calendar_months(
    loaded_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """`report calls-vs-deals --preset last_month` runs a whole month against the calendar month before it."""
    code = main(
        [
            "--database-url",
            loaded_url,
            "report",
            "calls-vs-deals",
            "--preset",
            "last_month",
            "--format",
            "json",
        ]
    )
    assert code == 0
    data = json.loads(capsys.readouterr().out)
    start = date.fromisoformat(data["period"]["from"])
    prev = data["previous_period"]
    assert start.day == 1
    assert prev["to"] == data["period"]["from"]
    assert date.fromisoformat(prev["from"]).day == 1
    assert main(["--database-url", loaded_url, "report", "calls-vs-deals", "--format", "json"]) != 0
