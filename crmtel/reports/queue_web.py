"""The queue report page for heads (``/reports/queues``): table per queue and member, heatmaps, downloads."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date, datetime
from html import escape
from urllib.parse import urlencode

import structlog
from aiohttp import web

from crmtel.domain import Manager, Role
from crmtel.errors import StoreUnavailable
from crmtel.i18n import Translator
from crmtel.push import chrome
from crmtel.reports import queue_render
from crmtel.reports.models import Period, zone
from crmtel.reports.queue_models import Heatmap, QueueReport
from crmtel.reports.queue_queries import QueueQueries
from crmtel.reports.render import clean, excel_csv
from crmtel.reports.web import CurrentUser, Translate, csv_separator, period_text, preset_links, query_period

log = structlog.get_logger(__name__)
_XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


def _e(text: str) -> str:
    return escape(clean(text), quote=True)


def parse_period(request: web.Request, tz: str, today: date) -> tuple[Period, str | None, str]:
    """The period (``from``/``to`` or ``preset``), the queue (or None) and the preset shown in the form."""
    # No NUL: PostgreSQL refuses it in a parameter (the page was a 503 «store unavailable»).
    queue = request.query.get("queue", "").replace("\x00", "")[:64] or None
    period, preset = query_period(request, tz, today)
    return period, queue, preset


def _query(period: Period, queue: str | None) -> str:
    params = {"from": period.start.isoformat(), "to": period.end.isoformat()}
    if queue:
        params["queue"] = queue
    return urlencode(params)


def _cell(tr: Translator, column: queue_render.Column, value: queue_render.Value) -> str:
    """A figure in the reader's digits (``13,5`` in Russian, as the calls report writes them); text as the grid."""
    if isinstance(value, int | float):
        return tr.number(value, column.decimals)
    return queue_render.cell_text(column, value)


def _heading(report: QueueReport, tr: Translator) -> str:
    """The title line with the days in the reader's words (the CLI's table keeps ISO dates)."""
    period = f"{period_text(report.period, tr)} ({report.period.tz})"
    return tr.t("report_queues.title_period", period=period, seconds=report.service_level_seconds)


def _table(report: QueueReport, tr: Translator) -> str:
    cols = queue_render.COLUMNS
    # On a phone the table scrolls sideways inside its own box (focusable, so a keyboard can scroll it too).
    label = _e(tr.t("report_queues.title"))
    out = [
        f'<div class="table-wrap" tabindex="0" role="region" aria-label="{label}">'
        '<table id="queue-table" data-testid="queue-table"><thead><tr>'
    ]
    out.extend(f'<th data-key="{c.key}">{_e(queue_render.title(tr, c))}</th>' for c in cols)
    out.append("</tr></thead><tbody>")
    current = ""
    for kind, values in queue_render.lines(report):
        if kind == "queue":
            current = str(values[0])
            attrs = f' class="queue" data-queue="{_e(current)}"'
        else:
            attrs = f' class="member" data-queue="{_e(current)}" data-extension="{_e(str(values[1] or ""))}"'
        out.append(f"<tr{attrs}>")
        out.extend(
            f'<td data-key="{c.key}">{_e(_cell(tr, c, v))}</td>' for c, v in zip(cols, values, strict=True)
        )
        out.append("</tr>")
    out.append("</tbody></table></div>")
    if not report.queues:
        out.append(f'<p class="muted" data-testid="queue-empty">{_e(tr.t("report_queues.no_data"))}</p>')
    return "".join(out)


def page_html(
    report: QueueReport, heatmap: Heatmap, user: Manager, preset: str, prefix: str, tr: Translator
) -> str:
    """The whole page in ``tr``'s language (no inline script; the header's module comes from /static)."""
    title = tr.t("report_queues.title")
    p = report.period
    query = _e(_query(p, report.queue))
    downloads = "".join(
        f'<a class="btn small download" id="download-{fmt}" data-testid="download-{fmt}" '
        f'href="{prefix}/queues.{fmt}?{query}" download>{fmt.upper()}</a>'
        for fmt in ("csv", "xlsx", "json")
    ) + (
        f'<a class="btn small download" id="download-csv-comma" data-testid="download-csv-comma" '
        f'href="{prefix}/queues.csv?{query}&amp;sep=comma" download>{_e(tr.t("page.report.csv_comma"))}</a>'
    )
    kept = f'<input type="hidden" name="preset" value="{_e(preset)}">' if preset else ""
    return (
        chrome.head_html(tr, f"{title} — crmtel")
        + chrome.header_html(user, tr, "queues")
        + '<main class="report views" id="queue-report">'
        f"<h1>{_e(title)}</h1>"
        f'<p class="period" data-testid="report-period">{_e(_heading(report, tr))}</p>'
        + preset_links(f"{prefix}/queues", preset, {"queue": report.queue or ""}, tr)
        + f'<form id="period-picker" class="report-filters" method="get" action="{prefix}/queues">{kept}'
        f'<label>{_e(tr.t("report_queues.from"))} <input type="date" name="from" value="{p.start.isoformat()}"></label>'
        f'<label>{_e(tr.t("report_queues.to"))} <input type="date" name="to" value="{p.end.isoformat()}"></label>'
        f'<label>{_e(tr.t("report_queues.col_queue"))} <input name="queue" maxlength="64" '
        f'value="{_e(report.queue or "")}" placeholder="{_e(tr.t("report_queues.all_queues"))}"></label>'
        f'<button type="submit" class="btn">{_e(tr.t("report_queues.show"))}</button></form>'
        f'<p class="downloads"><span>{_e(tr.t("report_queues.download"))}</span> {downloads}</p>'
        f'<section class="report-card">{_table(report, tr)}</section>'
        f'<section class="report-card heatmaps">{queue_render.heatmap_svg(heatmap, "inbound", tr)}'
        f"{queue_render.heatmap_svg(heatmap, 'missed', tr)}</section>"
        f'<p class="note muted">{_e(tr.t("report_queues.note", seconds=report.service_level_seconds))}</p>'
        "</main></body></html>"
    )


def queue_routes(
    queries: QueueQueries,
    current_user: CurrentUser,
    *,
    timezone: str,
    translate: Translate | None = None,
    prefix: str = "/reports",
    today: Callable[[], date] | None = None,
) -> web.RouteTableDef:
    """``{prefix}/queues`` and its CSV/XLSX/JSON downloads; heads only (queues are everyone's calls)."""
    zone(timezone)
    fallback = Translator.for_locale(None, zone=timezone)
    routes = web.RouteTableDef()

    def _head(request: web.Request) -> Manager:
        user = current_user(request)
        if user is None or not user.active:
            raise web.HTTPUnauthorized(text="login required")
        if user.role is not Role.HEAD:
            raise web.HTTPForbidden(text="the queue report is for heads of sales")
        return user

    def _today() -> date:
        return today() if today is not None else datetime.now(zone(timezone)).date()

    async def _report(request: web.Request) -> tuple[Manager, Period, str | None, str, QueueReport]:
        user = _head(request)
        period, queue, preset = parse_period(request, timezone, _today())
        try:
            report = await queries.queues(period, queue)
        except StoreUnavailable as err:
            log.warning("reports.store_unavailable", error=str(err))
            raise web.HTTPServiceUnavailable(text="the record store is unavailable, try again") from err
        return user, period, queue, preset, report

    @routes.get(f"{prefix}/queues")
    async def page(request: web.Request) -> web.Response:
        user, period, _, preset, report = await _report(request)
        heatmap = await queries.heatmap(period)
        tr = translate(request) if translate is not None else fallback
        return web.Response(
            text=page_html(report, heatmap, user, preset, prefix, tr),
            content_type="text/html",
            headers={"Cache-Control": "no-store"},
        )

    @routes.get(f"{prefix}/queues.{{fmt:csv|json|xlsx}}")
    async def download(request: web.Request) -> web.Response:
        _, period, _, _, report = await _report(request)
        tr = translate(request) if translate is not None else fallback
        fmt = request.match_info["fmt"]
        name = f"queues_{period.start.isoformat()}_{period.end.isoformat()}.{fmt}"
        headers = {"Content-Disposition": f'attachment; filename="{name}"', "Cache-Control": "no-store"}
        if fmt == "xlsx":
            return web.Response(
                body=queue_render.to_xlsx(report, tr), headers={**headers, "Content-Type": _XLSX}
            )
        if fmt == "csv":
            body = excel_csv(
                queue_render.to_csv(report, tr), sep=csv_separator(request), numeric=queue_render.CSV_FIGURES
            )
            ctype = "text/csv; charset=utf-8"
        else:
            body, ctype = queue_render.to_json(report).encode("utf-8"), "application/json; charset=utf-8"
        return web.Response(body=body, headers={**headers, "Content-Type": ctype})

    return routes
