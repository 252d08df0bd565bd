"""Renders a calls-versus-deals report: text table, CSV, XLSX, JSON and an SVG bar chart (pure, no I/O)."""

from __future__ import annotations

import csv
import io
import json
import re
from collections.abc import Callable, Collection, Iterable, Sequence
from dataclasses import dataclass
from html import escape
from typing import Any

from crmtel.i18n import Translator
from crmtel.reports.models import UNASSIGNED, CallsVsDeals, ManagerFigures, Period, change_pct
from crmtel.timestamps import iso_instant

Value = int | float | str | None


@dataclass(frozen=True, slots=True)
class Column:
    """One report column: its key (JSON, and ``report.col_<key>`` in the catalogues) and how a row yields its value."""

    key: str
    get: Callable[[ManagerFigures], Value]
    decimals: int = 0


def _minutes(seconds: float) -> float:
    return seconds / 60


def _opt_minutes(seconds: float | None) -> float | None:
    return seconds / 60 if seconds is not None else None


COLUMNS: tuple[Column, ...] = (
    Column("manager", lambda r: r.name),
    Column("login", lambda r: r.login),
    Column("inbound", lambda r: r.inbound),
    Column("outbound", lambda r: r.outbound),
    Column("calls", lambda r: r.calls),
    Column("answered", lambda r: r.answered),
    Column("missed", lambda r: r.missed),
    Column("missed_not_called_back", lambda r: r.missed_not_called_back),
    Column("talk_minutes", lambda r: _minutes(r.talk_seconds), 1),
    Column("avg_talk_seconds", lambda r: r.avg_talk_seconds, 1),
    Column("deals_won", lambda r: r.deals_won),
    Column("deals_opened", lambda r: r.deals_opened),
    Column("calls_per_won_deal", lambda r: r.calls_per_won_deal, 1),
    Column("talk_minutes_per_won_deal", lambda r: r.talk_minutes_per_won_deal, 1),
    Column("leads_received", lambda r: r.leads_received),
    Column("leads_converted", lambda r: r.leads_converted),
    Column("conversion_pct", lambda r: r.conversion_pct, 1),
    Column("called_back_pct", lambda r: r.called_back_pct, 1),
    Column("called_back_in_sla_pct", lambda r: r.called_back_in_sla_pct, 1),
    Column("callback_median_minutes", lambda r: _opt_minutes(r.callback_median_seconds), 1),
    Column("callback_p90_minutes", lambda r: _opt_minutes(r.callback_p90_seconds), 1),
    Column("overdue_tasks", lambda r: r.overdue_tasks),
)
NUMERIC = tuple(c for c in COLUMNS if c.key not in {"manager", "login"})
# The CSV's figure columns for ``excel_csv``: every one after the manager and login, the results' counts too.
CSV_FIGURES = range(len(COLUMNS) - len(NUMERIC), 1 << 16)
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


def title(column: Column, tr: Translator) -> str:
    """A column's heading in the reader's language."""
    return tr.t(f"report.col_{column.key}")


def _default(tr: Translator | None) -> Translator:
    # Without a reader (tests, the JSON), the default language (Russian).
    return tr if tr is not None else Translator.for_locale(None)


def row_name(row: ManagerFigures, tr: Translator) -> str:
    """A row's name; the "(unassigned)" row in the reader's language."""
    return tr.t("report.unassigned") if row.manager_id is None and row.name == UNASSIGNED else row.name


def cell_text(column: Column, value: Value) -> str:
    """The text of a cell as every format shows it (numbers rounded to the column's decimals)."""
    if value is None:
        return ""
    if isinstance(value, str):
        return clean(value)
    if column.decimals:
        return f"{value:.{column.decimals}f}"
    return str(round(value))


def clean(text: str) -> str:
    """Drop control characters (a hostile name must not break a terminal, a CSV row or a workbook)."""
    return _CONTROL.sub("", text)


def period_label(period: Period) -> str:
    """``2026-11-01 – 2026-11-30 (Europe/Moscow)``: the last day shown is the last day included."""
    last = period.end.fromordinal(period.end.toordinal() - 1)
    return f"{period.start.isoformat()} – {last.isoformat()} ({period.tz})"


def _table_rows(report: CallsVsDeals, tr: Translator) -> list[tuple[str, ManagerFigures]]:
    return [
        *(("row", _named(r, row_name(r, tr))) for r in report.rows),
        ("total", _named(report.totals, tr.t("report.total"))),
        ("previous", _named(report.previous_totals, _previous_name(report, tr))),
    ]


def _previous_name(report: CallsVsDeals, tr: Translator) -> str:
    return tr.t("report.previous_total", period=period_label(report.previous_period))


def _named(row: ManagerFigures, name: str) -> ManagerFigures:
    return row if row.name == name else ManagerFigures(**{**_fields(row), "name": name})


def _fields(row: ManagerFigures) -> dict[str, Any]:
    return {name: getattr(row, name) for name in row.__dataclass_fields__}


def change_row(report: CallsVsDeals, tr: Translator | None = None) -> list[str]:
    """Per-column change of the totals against the previous period, in per cent."""
    cur, prev = report.totals, report.previous_totals
    cells = [_default(tr).t("report.change"), ""]
    for column in NUMERIC:
        a, b = column.get(cur), column.get(prev)
        pct = (
            change_pct(float(a), float(b))
            if isinstance(a, int | float) and isinstance(b, int | float)
            else None
        )
        cells.append("" if pct is None else f"{pct:+.1f}")
    return cells


def grid(report: CallsVsDeals, tr: Translator | None = None) -> list[list[str]]:
    """Header, one line per manager, total, previous total and change: every cell as text.

    Headings and row names are in ``tr``'s language; figures stay machine-readable (``1234.5``) so CSV and
    spreadsheets read them as numbers.
    """
    tr = _default(tr)
    codes = result_codes(report)
    lines = [[title(c, tr) for c in COLUMNS] + [result_title(code, tr) for code in codes]]
    lines.extend(
        [cell_text(c, c.get(row)) for c in COLUMNS] + [str(dict(row.results).get(code, 0)) for code in codes]
        for _, row in _table_rows(report, tr)
    )
    lines.append(change_row(report, tr) + ["" for _code in codes])
    return lines


def result_codes(report: CallsVsDeals) -> list[str]:
    """The call results picked in the period, most frequent first (a column each after the figures)."""
    return [code for code, _n in report.totals.results]


def result_name(result: str, tr: Translator) -> str:
    """A built-in result code in ``tr``'s language; a configured text as written."""
    key = f"report.result.{result}"
    text = tr.t(key)
    return result if text == key else text


def result_title(result: str, tr: Translator) -> str:
    """The heading of a result's column: «Результаты звонков: Перезвонить»."""
    return f"{tr.t('report.results.title')}: {result_name(result, tr)}"


def to_table(report: CallsVsDeals, tr: Translator | None = None) -> str:
    """A plain-text table for the terminal."""
    tr = _default(tr)
    lines = grid(report, tr)
    widths = [max(len(line[i]) for line in lines) for i in range(len(lines[0]))]
    out = [
        tr.t(
            "report.title_period_previous",
            period=period_label(report.period),
            previous=period_label(report.previous_period),
        )
    ]

    def fmt(cells: Sequence[str]) -> str:
        first = cells[0].ljust(widths[0])
        rest = (
            cells[i].rjust(widths[i]) if i > 1 else cells[i].ljust(widths[i]) for i in range(1, len(cells))
        )
        return "  ".join([first, *rest]).rstrip()

    out.append(fmt(lines[0]))
    out.append("  ".join("-" * w for w in widths))
    n = len(report.rows)
    out.extend(fmt(line) for line in lines[1 : n + 1])
    out.append("  ".join("-" * w for w in widths))
    out.extend(fmt(line) for line in lines[n + 1 :])
    return "\n".join(out) + "\n"


def _csv_safe(text: str) -> str:
    # A cell starting with = + - @ is a formula to spreadsheet programs (CSV injection); quote it as text.
    return "'" + text if text[:1] in {"=", "+", "-", "@", "\t", "\r"} and not _is_number(text) else text


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def to_csv(report: CallsVsDeals, tr: Translator | None = None) -> str:
    """CSV: the same cells as the table, names guarded against formula injection."""
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\r\n")
    for line in grid(report, tr):
        writer.writerow([_csv_safe(cell) for cell in line])
    return buf.getvalue()


# Signed too: the change row writes «+12.5», which Russian Excel would read as text (or 12 May).
# UTF-8's byte order mark: without it Excel reads a CSV as Windows-1251.
BOM = b"\xef\xbb\xbf"
_DECIMAL = re.compile(r"^[+-]?\d+\.\d+$")


def excel_csv(csv_text: str, *, numeric: Collection[int], sep: str = ";") -> bytes:
    """A CSV that Excel opens as columns, from a comma-separated one: UTF-8 with a BOM (else Excel reads
    Windows-1251), ``;`` as separator (what Excel expects where the decimal mark is a comma, as in Russia)
    with decimal commas in the ``numeric`` columns' figures (a text cell that looks like one — a manager or
    queue named ``12.50`` — is kept), or ``,`` with decimal points. Dates stay ISO (``2026-11-01``), which
    Excel reads in every locale."""
    return BOM + excel_lines(csv.reader(io.StringIO(csv_text)), sep=sep, numeric=numeric)


def excel_lines(lines: Iterable[Sequence[str]], *, sep: str = ";", numeric: Collection[int] = ()) -> bytes:
    """Lines of text cells as CSV bytes without the BOM (a streamed file's parts): with ``;``, a decimal point
    becomes a comma only in the ``numeric`` columns (a text cell such as a client named ``12.50`` is kept)."""
    buf = io.StringIO()
    writer = csv.writer(buf, delimiter=sep, lineterminator="\r\n")
    for line in lines:
        if sep == ";" and numeric:
            line = [
                cell.replace(".", ",") if i in numeric and _DECIMAL.match(cell) else cell
                for i, cell in enumerate(line)
            ]
        writer.writerow(line)
    return buf.getvalue().encode("utf-8")


def excel_table(lines: Sequence[Sequence[str]], *, sep: str = ";", numeric: Collection[int] = ()) -> bytes:
    """Lines of text cells as Excel opens them: a BOM; ``;`` and decimal commas in the ``numeric`` columns,
    or ``,`` with decimal points."""
    return BOM + excel_lines(lines, sep=sep, numeric=numeric)


def to_xlsx(report: CallsVsDeals, tr: Translator | None = None) -> bytes:
    """An Excel workbook: numbers as numbers, text always as text (never a formula)."""
    from openpyxl import Workbook
    from openpyxl.styles import Font

    tr = _default(tr)
    wb = Workbook()
    ws = wb.active
    # Excel allows 31 characters in a sheet name.
    ws.title = tr.t("report.sheet")[:31]
    _text_cell(ws, 1, 1, tr.t("report.title_period", period=period_label(report.period))).font = Font(
        bold=True
    )
    for j, column in enumerate(COLUMNS, start=1):
        _text_cell(ws, 3, j, title(column, tr)).font = Font(bold=True)
    i = 3
    for kind, row in _table_rows(report, tr):
        i += 1
        for j, column in enumerate(COLUMNS, start=1):
            value = column.get(row)
            if isinstance(value, str):
                cell = _text_cell(ws, i, j, value)
            else:
                cell = ws.cell(
                    row=i, column=j, value=None if value is None else round(value, column.decimals)
                )
            if kind != "row":
                cell.font = Font(bold=kind == "total", italic=kind == "previous")
    codes = result_codes(report)
    for k, code in enumerate(codes, start=len(COLUMNS) + 1):
        _text_cell(ws, 3, k, result_title(code, tr)).font = Font(bold=True)
        for i_row, (kind, row) in enumerate(_table_rows(report, tr), start=4):
            cell = ws.cell(row=i_row, column=k, value=dict(row.results).get(code, 0))
            if kind != "row":
                cell.font = Font(bold=kind == "total", italic=kind == "previous")
    i += 1
    for j, text in enumerate(change_row(report, tr), start=1):
        if text:
            ws.cell(row=i, column=j, value=float(text) if j > 2 else text).font = Font(italic=True)
    ws.column_dimensions["A"].width = 30
    buf = io.BytesIO()
    wb.save(buf)
    return buf.getvalue()


def _text_cell(ws: Any, row: int, col: int, text: str) -> Any:
    cell = ws.cell(row=row, column=col)
    cell.value = clean(text)
    cell.data_type = "s"
    return cell


def to_dict(report: CallsVsDeals) -> dict[str, Any]:
    """The report as plain JSON-ready data (numbers unrounded, undefined ratios null)."""

    def row(fig: ManagerFigures) -> dict[str, Any]:
        data: dict[str, Any] = {"manager_id": fig.manager_id}
        data.update({c.key: c.get(fig) for c in COLUMNS})
        data["talk_seconds"] = fig.talk_seconds
        data["results"] = dict(fig.results)
        return data

    def period(p: Period) -> dict[str, str]:
        return {"from": p.start.isoformat(), "to": p.end.isoformat(), "timezone": p.tz}

    return {
        "report": "calls-vs-deals",
        "period": period(report.period),
        "previous_period": period(report.previous_period),
        "filter": {"manager_id": report.filter.manager_id, "team": report.filter.team},
        "generated_at": iso_instant(report.generated_at),
        "rows": [row(r) for r in report.rows],
        "totals": row(report.totals),
        "previous_totals": row(report.previous_totals),
    }


def to_json(report: CallsVsDeals) -> str:
    """JSON text of ``to_dict``."""
    return json.dumps(to_dict(report), ensure_ascii=False, indent=2) + "\n"


# Chart geometry (px).
_LABEL_W = 220
_PANEL_W = 300
_GAP = 70
_ROW_H = 24
_TOP = 46


def to_svg(report: CallsVsDeals, tr: Translator | None = None) -> str:
    """A horizontal bar chart: calls and won deals per manager, each panel on its own scale."""
    tr = _default(tr)
    rows = report.rows
    width = _LABEL_W + 2 * _PANEL_W + _GAP + 60
    height = _TOP + max(len(rows), 1) * _ROW_H + 16
    max_calls = max((r.calls for r in rows), default=0) or 1
    max_won = max((r.deals_won for r in rows), default=0) or 1
    x_calls = _LABEL_W
    x_won = _LABEL_W + _PANEL_W + _GAP
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="report-chart" role="img" '
        f'viewBox="0 0 {width} {height}" width="{width}" height="{height}" font-family="sans-serif" font-size="12">',
        f"<title>{escape(tr.t('report.chart_title'))}</title>",
        f'<text x="{x_calls}" y="18" font-weight="bold">{escape(tr.t("report.chart_calls"))}</text>',
        f'<text x="{x_won}" y="18" font-weight="bold">{escape(tr.t("report.chart_won"))}</text>',
    ]
    if not rows:
        parts.append(f'<text x="{_LABEL_W}" y="{_TOP + 14}">{escape(tr.t("report.chart_empty"))}</text>')
    for i, row in enumerate(rows):
        y = _TOP + i * _ROW_H
        name = escape(clean(row_name(row, tr)), quote=True)
        calls_title = escape(clean(tr.t("report.chart_row_calls", name=row_name(row, tr), count=row.calls)))
        won_title = escape(clean(tr.t("report.chart_row_won", name=row_name(row, tr), count=row.deals_won)))
        w_calls = round(_PANEL_W * row.calls / max_calls, 1)
        w_won = round(_PANEL_W * row.deals_won / max_won, 1)
        parts.append(
            f'<g class="chart-row" data-manager="{name}" data-calls="{row.calls}" data-won="{row.deals_won}">'
            f'<text x="{_LABEL_W - 8}" y="{y + 15}" text-anchor="end">{name}</text>'
            f'<rect class="bar-calls" x="{x_calls}" y="{y + 3}" width="{w_calls}" height="{_ROW_H - 8}" fill="#4a7ab5">'
            f"<title>{calls_title}</title></rect>"
            f'<text x="{x_calls + w_calls + 4}" y="{y + 15}">{row.calls}</text>'
            f'<rect class="bar-won" x="{x_won}" y="{y + 3}" width="{w_won}" height="{_ROW_H - 8}" fill="#4caf50">'
            f"<title>{won_title}</title></rect>"
            f'<text x="{x_won + w_won + 4}" y="{y + 15}">{row.deals_won}</text>'
            "</g>"
        )
    parts.append("</svg>")
    return "".join(parts)
