"""Rendering of the calls-versus-deals report: table, CSV, XLSX, JSON and SVG, with hostile names."""

from __future__ import annotations

import csv
import io
import json
import xml.etree.ElementTree as ET
from datetime import UTC, date, datetime

from openpyxl import load_workbook

from crmtel.i18n import Translator
from crmtel.reports import queue_render, render
from crmtel.reports.models import UNASSIGNED, CallsVsDeals, ManagerFigures, Period, ReportFilter

HOSTILE = '=HYPERLINK("http://evil")<script>alert(1)</script>&"\x07'


def _report() -> CallsVsDeals:
    period = Period(date(2026, 11, 1), date(2026, 12, 1), "Europe/Moscow")
    rows = (
        ManagerFigures(
            1,
            "Анна Смирнова",
            "anna",
            inbound=30,
            outbound=10,
            answered=35,
            missed=5,
            missed_not_called_back=2,
            talk_seconds=4200.0,
            deals_won=4,
            deals_opened=6,
            leads_received=8,
            leads_converted=2,
        ),
        ManagerFigures(2, HOSTILE, "evil", inbound=3, outbound=0, answered=1, missed=2, talk_seconds=90.0),
        ManagerFigures(None, UNASSIGNED, None, inbound=1, missed=1, missed_not_called_back=1),
    )
    previous = (
        ManagerFigures(1, "Анна Смирнова", "anna", inbound=20, answered=20, talk_seconds=600.0, deals_won=5),
    )
    return CallsVsDeals(
        period=period,
        filter=ReportFilter(),
        rows=rows,
        previous_period=period.previous(),
        previous_rows=previous,
        generated_at=datetime(2026, 12, 1, 8, 0, tzinfo=UTC),
    )


# The headings these tests read are the English ones; Russian is the default (see the test at the end).
EN = Translator.for_locale("en")


def test_grid_has_header_rows_total_previous_and_change() -> None:
    """Grid lines: header, each manager, total, previous total, change; numbers rounded per column."""
    lines = render.grid(_report(), EN)
    assert len(lines) == 1 + 3 + 3
    header = lines[0]
    anna = dict(zip(header, lines[1], strict=True))
    assert anna["Calls"] == "40"
    assert anna["Talk, min"] == "70.0"
    assert anna["Avg talk, s"] == "120.0"
    assert anna["Calls per won deal"] == "10.0"
    assert anna["Talk min per won deal"] == "17.5"
    assert anna["Conversion, %"] == "25.0"
    total = dict(zip(header, lines[4], strict=True))
    assert (total["Manager"], total["Calls"], total["Missed"], total["Not called back"]) == (
        "Total",
        "44",
        "8",
        "3",
    )
    previous = dict(zip(header, lines[5], strict=True))
    assert previous["Calls"] == "20"
    change = dict(zip(header, lines[6], strict=True))
    assert change["Calls"] == "+120.0"  # 44 vs 20
    assert change["Deals won"] == "-20.0"  # 4 vs 5
    assert change["Leads"] == ""  # 8 vs 0: undefined


def test_undefined_ratios_are_blank_not_zero() -> None:
    """No won deals and no leads: the per-deal and conversion cells are empty, not 0 or a division error."""
    evil = dict(zip(render.grid(_report(), EN)[0], render.grid(_report(), EN)[2], strict=True))
    assert evil["Calls per won deal"] == ""
    assert evil["Conversion, %"] == ""


def test_text_table_aligns_and_strips_control_characters() -> None:
    """The terminal table shows every row, the period, and no raw control characters (no BEL)."""
    text = render.to_table(_report(), EN)
    assert "2026-11-01 – 2026-11-30 (Europe/Moscow)" in text
    assert "Анна Смирнова" in text
    assert "\x07" not in text
    widths = {len(line) for line in text.splitlines()[1:3]}
    assert len(widths) == 1 or max(widths) - min(widths) < 3


def test_csv_quotes_formula_like_names() -> None:
    """A name starting with = is written as text ('=…) so a spreadsheet never runs it; numbers stay numbers."""
    rows = list(csv.reader(io.StringIO(render.to_csv(_report(), EN))))
    assert rows[0][0] == "Manager"
    assert rows[2][0].startswith("'=HYPERLINK")
    assert rows[1][4] == "40"
    assert rows[-1][4] == "+120.0"  # a signed number is not a formula


def test_xlsx_keeps_text_as_text_and_numbers_as_numbers() -> None:
    """The workbook holds the hostile name as a string cell (no formula) and the counts as numbers."""
    wb = load_workbook(io.BytesIO(render.to_xlsx(_report(), EN)))
    ws = wb.active
    assert ws.cell(row=3, column=1).value == "Manager"
    assert ws.cell(row=4, column=1).value == "Анна Смирнова"
    assert ws.cell(row=4, column=5).value == 40
    evil = ws.cell(row=5, column=1)
    assert evil.data_type == "s"
    assert evil.value == HOSTILE.replace("\x07", "")
    assert ws.cell(row=7, column=1).value == "Total"
    assert ws.cell(row=7, column=5).value == 44


def test_json_carries_raw_figures_and_nulls() -> None:
    """JSON has the period, per-row figures with ids, null for undefined ratios, and both totals."""
    data = json.loads(render.to_json(_report()))
    assert data["period"] == {"from": "2026-11-01", "to": "2026-12-01", "timezone": "Europe/Moscow"}
    assert data["previous_period"]["from"] == "2026-10-01"
    anna = data["rows"][0]
    assert (anna["manager_id"], anna["calls"], anna["talk_seconds"]) == (1, 40, 4200.0)
    assert data["rows"][1]["calls_per_won_deal"] is None
    assert data["totals"]["calls"] == 44
    assert data["previous_totals"]["deals_won"] == 5


def test_svg_is_well_formed_with_escaped_names_and_one_bar_pair_per_row() -> None:
    """The chart parses as XML even with <script> in a name; each row has a calls bar and a won-deals bar."""
    svg = render.to_svg(_report(), EN)
    root = ET.fromstring(svg)
    ns = "{http://www.w3.org/2000/svg}"
    groups = root.findall(f"{ns}g")
    assert [g.get("data-calls") for g in groups] == ["40", "3", "1"]
    assert [g.get("data-won") for g in groups] == ["4", "0", "0"]
    assert len(root.findall(f".//{ns}rect")) == 6
    assert "<script>" not in svg
    assert groups[1].get("data-manager") == HOSTILE.replace("\x07", "")
    widest = max(float(r.get("width", "0")) for r in root.iter(f"{ns}rect") if r.get("class") == "bar-calls")
    assert widest == 300.0  # the largest value fills the panel


def test_svg_of_an_empty_report_says_so() -> None:
    """No rows: the chart still renders, with a 'No data' note."""
    report = _report()
    empty = CallsVsDeals(report.period, report.filter, (), report.previous_period, (), report.generated_at)
    assert "No data for this period" in render.to_svg(empty, EN)
    ET.fromstring(render.to_svg(empty, EN))


def test_headings_row_names_and_chart_default_to_russian() -> None:
    """Without a language the CSV, table, workbook and chart speak Russian (with Russian plurals); figures stay numbers."""
    report = _report()
    header = next(csv.reader(io.StringIO(render.to_csv(report))))
    assert header[:5] == ["Менеджер", "Логин", "Входящие", "Исходящие", "Звонки"]
    table = render.to_table(report)
    assert table.startswith("Звонки и сделки, ")
    assert "(не назначен)" in table
    assert "Итого" in table
    assert "Изменение к предыдущему, %" in table
    wb = load_workbook(io.BytesIO(render.to_xlsx(report)))
    ws = wb.active
    assert ws.title == "Звонки и сделки"
    assert ws.cell(row=3, column=1).value == "Менеджер"
    svg = render.to_svg(report)
    assert "Звонки и выигранные сделки по менеджерам" in svg
    assert "звонк" in svg
    en = render.to_csv(report, EN)
    assert en.startswith("Manager,Login,Inbound")


def test_excel_csv_writes_every_decimal_with_a_comma_signed_or_not() -> None:
    """The ';' CSV gives Russian Excel decimal commas on the change row's signed percentages too (``+686.7``
    stayed with its point, read as text or a date, beside ``-1,7``); the ',' variant keeps points. A manager
    named ``12.50`` with login ``1.5`` keeps the points: only the figure columns are numbers."""
    text = "Изменение,,+686.7,-1.7,+100.0,3.5,+5,2026-11-01\r\n12.50,1.5,2.5\r\n"
    semicolon = render.excel_csv(text, numeric=render.CSV_FIGURES).decode("utf-8-sig")
    change, named = list(csv.reader(io.StringIO(semicolon), delimiter=";"))
    assert change == [
        "Изменение",
        "",
        "+686,7",
        "-1,7",
        "+100,0",
        "3,5",
        "+5",
        "2026-11-01",
    ]
    assert named == ["12.50", "1.5", "2,5"]
    comma = render.excel_csv(text, sep=",", numeric=render.CSV_FIGURES).decode("utf-8-sig")
    assert next(csv.reader(io.StringIO(comma)))[2:4] == ["+686.7", "-1.7"]


def test_the_queue_reports_csv_keeps_a_queue_or_member_named_like_a_decimal() -> None:
    """Queue ``1.5``, member ``12.50``, login ``0.1``: kept as written in the ';' file; the figures after them
    get their decimal comma."""
    text = "1.5,12.50,0.1,3,2.5\r\n"
    semicolon = render.excel_csv(text, numeric=queue_render.CSV_FIGURES).decode("utf-8-sig")
    assert next(csv.reader(io.StringIO(semicolon), delimiter=";")) == ["1.5", "12.50", "0.1", "3", "2,5"]


def test_excel_table_gives_a_decimal_comma_only_in_the_numeric_columns() -> None:
    """A client named ``12.50`` beside a turnover ``12.50``: only the marked column becomes ``12,50``; with `,`
    both keep their point; a BOM first either way."""
    lines = [["Название", "Оборот"], ["12.50", "12.50"], ["-1.5", "-1.5"]]
    semi = render.excel_table(lines, numeric={1})
    assert semi.startswith(render.BOM)
    assert list(csv.reader(io.StringIO(semi.decode("utf-8-sig")), delimiter=";"))[1:] == [
        ["12.50", "12,50"],
        ["-1.5", "-1,5"],
    ]
    comma = render.excel_table(lines, sep=",", numeric={1})
    assert list(csv.reader(io.StringIO(comma.decode("utf-8-sig"))))[1] == ["12.50", "12.50"]
