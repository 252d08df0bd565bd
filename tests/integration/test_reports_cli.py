"""`crmtel report calls-vs-deals`: every output format carries the hand-counted figures."""

from __future__ import annotations

import asyncio
import csv
import io
import json
import subprocess
import sys
from pathlib import Path

import pytest
from openpyxl import load_workbook

from crmtel.cli import main
from crmtel.store.db import Database
from tests.fixtures import report_dataset as ds

PERIOD = ["--from", ds.FROM.isoformat(), "--to", ds.TO.isoformat(), "--timezone", ds.TZ]


async def _load(url: str) -> None:
    db = Database(url)
    try:
        await ds.load(db)
    finally:
        await db.dispose()


@pytest.fixture
def loaded_url(database_url: str) -> str:
    """A database holding the report data set."""
    asyncio.run(_load(database_url))
    return database_url


def _run(url: str, *args: str) -> int:
    return main(["--database-url", url, "report", "calls-vs-deals", *PERIOD, *args])


def test_json_output_has_the_known_figures(loaded_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    """JSON rows per login and the totals equal the hand count."""
    assert _run(loaded_url, "--format", "json") == 0
    data = json.loads(capsys.readouterr().out)
    rows = {row["login"]: row for row in data["rows"]}
    for login, expected in ds.EXPECTED.items():
        assert {k: rows[login][k] for k in expected} == expected, login
    assert {k: data["totals"][k] for k in ds.EXPECTED_TOTALS} == ds.EXPECTED_TOTALS


def test_csv_output_rows_and_totals(loaded_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    """CSV has a header, a line per manager, total, previous total and change."""
    assert _run(loaded_url, "--format", "csv", "--lang", "en") == 0
    lines = list(csv.reader(io.StringIO(capsys.readouterr().out)))
    header = lines[0]
    by_login = {line[1]: dict(zip(header, line, strict=True)) for line in lines[1:]}
    anna = by_login["anna"]
    assert (anna["Inbound"], anna["Answered"], anna["Talk, min"], anna["Deals won"]) == (
        "4",
        "3",
        "33.0",
        "2",
    )
    assert anna["Conversion, %"] == "33.3"
    total = next(dict(zip(header, line, strict=True)) for line in lines if line[0] == "Total")
    assert (total["Calls"], total["Missed"], total["Not called back"]) == ("16", "7", "4")


def test_table_output_is_readable(loaded_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    """The default table (in Russian, the default language) names the period, each manager and the total."""
    assert _run(loaded_url) == 0
    out = capsys.readouterr().out
    assert "2026-11-01 – 2026-11-02 (Europe/Moscow)" in out
    assert out.startswith("Звонки и сделки, ")
    for name in (
        "Анна Смирнова",
        "Boris Orlov",
        "Vera <b>Lebedeva</b>",
        "(не назначен)",
        "Итого",
        "Менеджер",
    ):
        assert name in out


def test_lang_option_and_configured_language_pick_the_headings(
    loaded_url: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """--lang en gives English headings; without it CRMTEL_I18N__LANGUAGE (i18n.language) decides."""
    assert _run(loaded_url, "--lang", "en") == 0
    out = capsys.readouterr().out
    assert "Calls vs deals, " in out
    assert "(unassigned)" in out
    monkeypatch.setenv("CRMTEL_I18N__LANGUAGE", "en")
    assert _run(loaded_url, "--format", "csv") == 0
    assert capsys.readouterr().out.startswith("Manager,Login,")
    assert _run(loaded_url, "--format", "csv", "--lang", "ru") == 0
    assert capsys.readouterr().out.startswith("Менеджер,Логин,")


def test_xlsx_output_file(loaded_url: str, tmp_path: Path) -> None:
    """--format xlsx --output writes a workbook with the figures as numbers."""
    target = tmp_path / "r.xlsx"
    assert _run(loaded_url, "--format", "xlsx", "--output", str(target)) == 0
    ws = load_workbook(target).active
    names = {ws.cell(row=r, column=2).value: r for r in range(4, ws.max_row + 1)}
    assert ws.cell(row=names["vera"], column=3).value == 5  # inbound
    assert ws.cell(row=names["vera"], column=11).value == 1  # deals won


def test_manager_option_limits_to_one_row(loaded_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    """--manager vera gives Vera's row alone."""
    assert _run(loaded_url, "--manager", "vera", "--format", "json") == 0
    data = json.loads(capsys.readouterr().out)
    assert [row["login"] for row in data["rows"]] == ["vera"]


def test_unknown_manager_and_reversed_period_fail_cleanly(
    loaded_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """An unknown login or --to before --from is a one-line error with exit code 1."""
    assert _run(loaded_url, "--manager", "nobody") == 1
    assert "no manager with login 'nobody'" in capsys.readouterr().err
    assert (
        main(
            [
                "--database-url",
                loaded_url,
                "report",
                "calls-vs-deals",
                "--from",
                "2026-11-03",
                "--to",
                "2026-11-01",
            ]
        )
        == 1
    )
    assert "--to must be after --from" in capsys.readouterr().err


def test_malformed_date_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    """A date that is not YYYY-MM-DD is rejected by the argument parser (exit 2)."""
    with pytest.raises(SystemExit) as exc:
        main(["report", "calls-vs-deals", "--from", "1 Nov", "--to", "2026-11-03"])
    assert exc.value.code == 2
    assert "expected a date like 2026-11-01" in capsys.readouterr().err


def test_console_entry_point_runs_the_report(loaded_url: str, tmp_path: Path) -> None:
    """`python -m crmtel.cli report calls-vs-deals` in a child process prints the JSON report."""
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "crmtel.cli",
            "--database-url",
            loaded_url,
            "report",
            "calls-vs-deals",
            *PERIOD,
            "--format",
            "json",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["totals"]["deals_won"] == 3
