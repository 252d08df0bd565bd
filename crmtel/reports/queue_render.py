"""Renders the queue report (table, CSV, XLSX, JSON) and the heatmap (SVG); pure, no I/O.

One grid serves the table, CSV and XLSX: a line per queue, then a line per member of that queue.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable
from dataclasses import dataclass
from html import escape
from typing import Any

from crmtel.i18n import Translator
from crmtel.reports.models import Period
from crmtel.reports.queue_models import WEEKDAYS, Heatmap, MemberFigures, QueueFigures, QueueReport
from crmtel.reports.render import _csv_safe, clean, period_label
from crmtel.timestamps import iso_instant

Value = int | float | str | None


@dataclass(frozen=True, slots=True)
class Column:
    """A grid column: JSON-style key, how a queue line and a member line yield its value, decimals."""

    key: str
    queue: Callable[[QueueFigures], Value]
    member: Callable[[QueueFigures, MemberFigures], Value]
    decimals: int = 0


def _none(*_: object) -> Value:
    return None


COLUMNS: tuple[Column, ...] = (
    Column("queue", lambda q: q.queue, lambda q, m: q.queue),
    Column("member", _none, lambda q, m: m.name or m.extension),
    Column("login", _none, lambda q, m: m.login),
    Column("offered", lambda q: q.offered, lambda q, m: m.offered),
    Column("answered", lambda q: q.answered, lambda q, m: m.answered),
    Column("abandoned", lambda q: q.abandoned, _none),
    Column("exited", lambda q: q.exited, _none),
    Column("rang_unanswered", _none, lambda q, m: m.rang_unanswered),
    Column("wait_avg_s", lambda q: q.wait_avg_s, _none, 1),
    Column("wait_p90_s", lambda q: q.wait_p90_s, _none, 1),
    Column("abandon_wait_avg_s", lambda q: q.abandon_wait_avg_s, _none, 1),
    Column("talk_avg_s", lambda q: q.talk_avg_s, _none, 1),
    Column("service_level_pct", lambda q: q.service_level_pct, _none, 1),
)
# The CSV's figure columns for ``excel_csv``: every one after the queue, the member and the login.
CSV_FIGURES = range([c.key for c in COLUMNS].index("offered"), 1 << 16)


def title(tr: Translator, column: Column) -> str:
    """A column's heading in the reader's language."""
    return tr.t(f"report_queues.col_{column.key}")


def cell_text(column: Column, value: Value) -> str:
    """A cell as text: numbers rounded to the column's decimals, blanks for undefined figures."""
    if value is None:
        return ""
    if isinstance(value, str):
        return clean(value)
    return f"{value:.{column.decimals}f}" if column.decimals else str(round(value))


def lines(report: QueueReport) -> list[tuple[str, list[Value]]]:
    """(kind, values) per line: ``queue`` then its ``member`` lines, in queue then extension order."""
    out: list[tuple[str, list[Value]]] = []
    for q in report.queues:
        out.append(("queue", [c.queue(q) for c in COLUMNS]))
        out.extend(("member", [c.member(q, m) for c in COLUMNS]) for m in q.members)
    return out


def grid(report: QueueReport, tr: Translator) -> list[list[str]]:
    """Header plus every line as text."""
    out = [[title(tr, c) for c in COLUMNS]]
    out.extend([cell_text(c, v) for c, v in zip(COLUMNS, values, strict=True)] for _, values in lines(report))
    return out


def heading(report: QueueReport, tr: Translator) -> str:
    """The report's title line."""
    return tr.t(
        "report_queues.title_period", period=period_label(report.period), seconds=report.service_level_seconds
    )


def to_table(report: QueueReport, tr: Translator) -> str:
    """A plain-text table for the terminal."""
    rows = grid(report, tr)
    widths = [max(len(r[i]) for r in rows) for i in range(len(COLUMNS))]

    def fmt(cells: list[str]) -> str:
        return "  ".join(
            c.ljust(w) if i < 3 else c.rjust(w) for i, (c, w) in enumerate(zip(cells, widths, strict=True))
        ).rstrip()

    out = [heading(report, tr), fmt(rows[0]), "  ".join("-" * w for w in widths)]
    out.extend(fmt(r) for r in rows[1:])
    if not report.queues:
        out.append(tr.t("report_queues.no_data"))
    return "\n".join(out) + "\n"


def to_csv(report: QueueReport, tr: Translator) -> str:
    """CSV of the grid, text guarded against formula injection."""
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\r\n")
    for row in grid(report, tr):
        writer.writerow([_csv_safe(cell) for cell in row])
    return buf.getvalue()


def to_xlsx(report: QueueReport, tr: Translator) -> bytes:
    """A workbook: numbers as numbers, text always as text (never a formula)."""
    from openpyxl import Workbook
    from openpyxl.styles import Font

    wb = Workbook()
    ws = wb.active
    ws.title = clean(tr.t("report_queues.title"))[:31]
    _text(ws, 1, 1, heading(report, tr)).font = Font(bold=True)
    for j, column in enumerate(COLUMNS, start=1):
        _text(ws, 3, j, title(tr, column)).font = Font(bold=True)
    for i, (kind, values) in enumerate(lines(report), start=4):
        for j, (column, value) in enumerate(zip(COLUMNS, values, strict=True), start=1):
            if isinstance(value, str):
                cell = _text(ws, i, j, value)
            else:
                cell = ws.cell(
                    row=i, column=j, value=None if value is None else round(value, column.decimals)
                )
            cell.font = Font(bold=kind == "queue")
    ws.column_dimensions["A"].width = 16
    ws.column_dimensions["B"].width = 26
    buf = io.BytesIO()
    wb.save(buf)
    return buf.getvalue()


def _text(ws: Any, row: int, col: int, text: str) -> Any:
    cell = ws.cell(row=row, column=col)
    cell.value = clean(text)
    cell.data_type = "s"
    return cell


def _period(p: Period) -> dict[str, str]:
    return {"from": p.start.isoformat(), "to": p.end.isoformat(), "timezone": p.tz}


def to_dict(report: QueueReport) -> dict[str, Any]:
    """``{"queues": [{"queue": …, "offered": …, …, "members": [...]}], "period": …}`` (numbers unrounded)."""

    def member(m: MemberFigures) -> dict[str, Any]:
        return {
            "extension": m.extension,
            "name": m.name,
            "login": m.login,
            "offered": m.offered,
            "answered": m.answered,
            "rang_unanswered": m.rang_unanswered,
        }

    def queue(q: QueueFigures) -> dict[str, Any]:
        return {
            "queue": q.queue,
            "offered": q.offered,
            "answered": q.answered,
            "abandoned": q.abandoned,
            "exited": q.exited,
            "answered_within_sl": q.answered_within_sl,
            "wait_avg_s": q.wait_avg_s,
            "wait_p90_s": q.wait_p90_s,
            "abandon_wait_avg_s": q.abandon_wait_avg_s,
            "talk_avg_s": q.talk_avg_s,
            "service_level_pct": q.service_level_pct,
            "members": [member(m) for m in q.members],
        }

    return {
        "report": "queues",
        "period": _period(report.period),
        "queue": report.queue,
        "service_level_seconds": report.service_level_seconds,
        "generated_at": iso_instant(report.generated_at),
        "queues": [queue(q) for q in report.queues],
    }


def to_json(report: QueueReport) -> str:
    """JSON text of ``to_dict``."""
    return json.dumps(to_dict(report), ensure_ascii=False, indent=2) + "\n"


# Heatmap geometry (px).
_CELL = 26
_LEFT = 40
_TOP = 34


def heatmap_svg(heatmap: Heatmap, which: str, tr: Translator) -> str:
    """An hour × weekday grid of ``inbound`` or ``missed`` calls, darker for more (server-side SVG, no script).

    Only a viewBox, no width: the grid scales to its column, on a wall screen and on a phone alike.
    """
    grid_values = heatmap.inbound if which == "inbound" else heatmap.missed
    top = max((v for row in grid_values for v in row), default=0) or 1
    hue = "33,102,172" if which == "inbound" else "198,40,40"
    width, height = _LEFT + 24 * _CELL + 8, _TOP + 7 * _CELL + 8
    label = escape(tr.t(f"report_queues.heatmap_{which}"), quote=True)
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="heatmap" data-testid="heatmap-{which}" role="img" '
        f'viewBox="0 0 {width} {height}" font-family="sans-serif" font-size="11">',
        f"<title>{label}</title>",
        f'<text x="0" y="14" font-weight="bold">{label}</text>',
    ]
    parts.extend(
        f'<text x="{_LEFT + h * _CELL + _CELL / 2}" y="{_TOP - 4}" text-anchor="middle">{h}</text>'
        for h in range(24)
    )
    for wd, day in enumerate(WEEKDAYS):
        day_name = escape(tr.t(f"report_queues.day_{day}"), quote=True)
        y = _TOP + wd * _CELL
        parts.append(f'<text x="0" y="{y + _CELL / 2 + 4}">{day_name}</text>')
        for h in range(24):
            n = grid_values[wd][h]
            alpha = 0.06 + 0.94 * n / top if n else 0.0
            tip = escape(
                tr.t("report_queues.heatmap_cell", day=day_name, hour=f"{h:02d}", count=n), quote=True
            )
            parts.append(
                f'<rect class="cell" data-day="{wd}" data-hour="{h}" data-count="{n}" x="{_LEFT + h * _CELL}" '
                f'y="{y}" width="{_CELL - 2}" height="{_CELL - 2}" fill="rgba({hue},{alpha:.2f})" stroke="#ddd">'
                f"<title>{tip}</title></rect>"
            )
            if n:
                ink = "#fff" if alpha > 0.55 else "#222"
                parts.append(
                    f'<text x="{_LEFT + h * _CELL + (_CELL - 2) / 2}" y="{y + _CELL / 2 + 3}" text-anchor="middle" '
                    f'fill="{ink}">{n}</text>'
                )
    parts.append("</svg>")
    return "".join(parts)
