"""The report page for heads of sales (table, chart, period picker, downloads); managers see their own row.

The web app mounts ``report_routes(...)`` and passes who is logged in as a callable, so this module knows
nothing of sessions: ``create_app(..., routes=[report_routes(queries, current_manager, managers, timezone=…)])``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from html import escape
from typing import Protocol
from urllib.parse import urlencode

import structlog
from aiohttp import web

from crmtel.domain import Category, Manager, Role
from crmtel.errors import ConfigError, StoreUnavailable
from crmtel.reports import render
from crmtel.reports.models import CallsVsDeals, Period, ReportFilter, zone
from crmtel.reports.queries import ReportQueries

log = structlog.get_logger(__name__)

CurrentUser = Callable[[web.Request], Manager | None]
MAX_DAYS = 731


class ManagerDirectory(Protocol):
    """What the page needs to know about managers (``ManagerRepository`` fits)."""

    async def all(self) -> list[Manager]:
        """Every manager."""
        ...

    async def by_login(self, login: str) -> Manager | None:
        """The manager with this login."""
        ...


@dataclass(frozen=True, slots=True)
class ReportRequest:
    """A validated request: the period, the filter, and what the form should show again."""

    period: Period
    filter: ReportFilter
    team: str
    manager_login: str

    def query(self) -> str:
        """The query string that asks for the same report."""
        params = {"from": self.period.start.isoformat(), "to": self.period.end.isoformat()}
        if self.team:
            params["team"] = self.team
        if self.manager_login:
            params["manager"] = self.manager_login
        return urlencode(params)


def default_period(today: date, tz: str) -> Period:
    """The current calendar month."""
    start = today.replace(day=1)
    end = (
        start.replace(year=start.year + 1, month=1)
        if start.month == 12
        else start.replace(month=start.month + 1)
    )
    return Period(start, end, tz)


def _date(raw: str | None, name: str) -> date | None:
    if not raw:
        return None
    try:
        return date.fromisoformat(raw)
    except ValueError:
        raise web.HTTPBadRequest(text=f"{name}: expected a date like 2026-11-01") from None


async def parse_request(
    request: web.Request, user: Manager, managers: ManagerDirectory, tz: str, today: date
) -> ReportRequest:
    """Read and check the period and filters; a plain manager is always limited to themself."""
    q = request.query
    default = default_period(today, tz)
    start = _date(q.get("from"), "from") or default.start
    end = _date(q.get("to"), "to") or default.end
    if end <= start:
        raise web.HTTPBadRequest(text="to must be after from (the period is [from, to))")
    if (end - start).days > MAX_DAYS:
        raise web.HTTPBadRequest(text=f"the period may be at most {MAX_DAYS} days")
    period = Period(start, end, tz)
    if user.role is not Role.HEAD:
        return ReportRequest(period, ReportFilter(manager_id=user.id), "", "")
    team = q.get("team", "")
    if team and team not in {c.value for c in Category}:
        raise web.HTTPBadRequest(text="team: unknown team")
    login = q.get("manager", "")[:100]
    manager_id = None
    if login:
        found = await managers.by_login(login)
        if found is None:
            raise web.HTTPBadRequest(text="manager: no such manager")
        manager_id = found.id
    return ReportRequest(period, ReportFilter(manager_id=manager_id, team=team or None), team, login)


def _e(text: str) -> str:
    return escape(render.clean(text), quote=True)


def _table_html(report: CallsVsDeals) -> str:
    lines = render.grid(report)
    n = len(report.rows)
    out = ['<table id="report-table"><thead><tr>']
    out.extend(f'<th data-key="{c.key}">{_e(c.title)}</th>' for c in render.COLUMNS)
    out.append("</tr></thead><tbody>")
    for i, cells in enumerate(lines[1:]):
        if i < n:
            login = report.rows[i].login or ""
            attrs = f' class="manager" data-login="{_e(login)}"'
        else:
            attrs = f' class="{("total", "previous", "change")[i - n]}"'
        out.append(f"<tr{attrs}>")
        out.extend(
            f'<td data-key="{c.key}">{_e(cell)}</td>' for c, cell in zip(render.COLUMNS, cells, strict=True)
        )
        out.append("</tr>")
    out.append("</tbody></table>")
    return "".join(out)


def _options(values: Sequence[tuple[str, str]], selected: str) -> str:
    return "".join(
        f'<option value="{_e(v)}"{" selected" if v == selected else ""}>{_e(label)}</option>'
        for v, label in values
    )


def page_html(
    report: CallsVsDeals, req: ReportRequest, user: Manager, all_managers: Sequence[Manager], prefix: str
) -> str:
    """The whole report page (no scripts; the style sheet is served beside it)."""
    query = req.query()
    filters = ""
    if user.role is Role.HEAD:
        teams = [("", "All teams"), *((c.value, c.value.capitalize()) for c in Category)]
        people = [("", "All managers"), *((m.login, m.name) for m in all_managers if m.role is Role.MANAGER)]
        filters = (
            f'<label>Team <select name="team">{_options(teams, req.team)}</select></label>'
            f'<label>Manager <select name="manager">{_options(people, req.manager_login)}</select></label>'
        )
    heading = "Calls vs deals" if user.role is Role.HEAD else f"Calls vs deals: {_e(user.name)}"
    downloads = "".join(
        f'<a class="download" id="download-{fmt}" href="{prefix}/calls-vs-deals.{fmt}?{_e(query)}" download>{fmt.upper()}</a>'
        for fmt in ("csv", "xlsx", "json")
    )
    return (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        f'<title>Calls vs deals</title><link rel="stylesheet" href="{prefix}/report.css"></head><body>'
        f"<h1>{heading}</h1>"
        f'<p class="period">Period: <span id="period">{_e(render.period_label(report.period))}</span>; '
        f"compared with {_e(render.period_label(report.previous_period))}</p>"
        f'<form id="period-picker" method="get" action="{prefix}/calls-vs-deals">'
        f'<label>From <input type="date" name="from" value="{report.period.start.isoformat()}" required></label>'
        f'<label>To (not included) <input type="date" name="to" value="{report.period.end.isoformat()}" required></label>'
        f'{filters}<button type="submit">Show</button></form>'
        f'<p class="downloads">Download: {downloads}</p>'
        f'<div id="chart">{render.to_svg(report)}</div>'
        f"{_table_html(report)}"
        '<p class="note">Calls: inbound and outbound, one per call however many legs; internal calls excluded. '
        "Missed: unanswered inbound. Deals won: closed as won in the period. "
        "Conversion: leads received in the period that became clients by its end.</p>"
        "</body></html>"
    )


CSS = """
body { font-family: sans-serif; margin: 1.5rem; color: #222; }
form label { margin-right: 1rem; }
table { border-collapse: collapse; margin-top: 1rem; font-size: 0.9rem; }
th, td { border: 1px solid #ccc; padding: 0.25rem 0.5rem; text-align: right; }
th:first-child, td:first-child, td:nth-child(2) { text-align: left; }
tr.total td { font-weight: bold; }
tr.previous td, tr.change td { font-style: italic; color: #555; }
a.download { margin-right: 0.75rem; }
#chart svg { max-width: 100%; height: auto; }
"""

_DOWNLOADS = {
    "csv": ("text/csv; charset=utf-8", render.to_csv),
    "json": ("application/json; charset=utf-8", render.to_json),
}
_XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


def report_routes(
    queries: ReportQueries,
    current_user: CurrentUser,
    managers: ManagerDirectory,
    *,
    timezone: str,
    prefix: str = "/reports",
    today: Callable[[], date] | None = None,
) -> web.RouteTableDef:
    """Routes of the report page and its downloads under ``prefix``; every one needs a logged-in user."""
    zone(timezone)
    routes = web.RouteTableDef()

    def _today() -> date:
        return today() if today is not None else datetime.now(zone(timezone)).date()

    def _user(request: web.Request) -> Manager:
        user = current_user(request)
        if user is None or not user.active:
            raise web.HTTPUnauthorized(text="login required")
        return user

    async def _report(request: web.Request) -> tuple[Manager, ReportRequest, CallsVsDeals]:
        user = _user(request)
        req = await parse_request(request, user, managers, timezone, _today())
        try:
            report = await queries.calls_vs_deals(req.period, req.filter)
        except StoreUnavailable as err:
            log.warning("reports.store_unavailable", error=str(err))
            raise web.HTTPServiceUnavailable(text="the record store is unavailable, try again") from err
        except ConfigError as err:
            raise web.HTTPBadRequest(text=str(err)) from err
        return user, req, report

    @routes.get(f"{prefix}/calls-vs-deals")
    async def page(request: web.Request) -> web.Response:
        user, req, report = await _report(request)
        everyone = await managers.all() if user.role is Role.HEAD else []
        return web.Response(
            text=page_html(report, req, user, everyone, prefix),
            content_type="text/html",
            headers={"Cache-Control": "no-store"},
        )

    @routes.get(f"{prefix}/calls-vs-deals.{{fmt:csv|json|xlsx}}")
    async def download(request: web.Request) -> web.Response:
        _, req, report = await _report(request)
        fmt = request.match_info["fmt"]
        name = f"calls-vs-deals_{req.period.start.isoformat()}_{req.period.end.isoformat()}.{fmt}"
        headers = {"Content-Disposition": f'attachment; filename="{name}"', "Cache-Control": "no-store"}
        if fmt == "xlsx":
            return web.Response(body=render.to_xlsx(report), headers={**headers, "Content-Type": _XLSX})
        content_type, fn = _DOWNLOADS[fmt]
        return web.Response(
            body=fn(report).encode("utf-8"), headers={**headers, "Content-Type": content_type}
        )

    @routes.get(f"{prefix}/report.css")
    async def css(request: web.Request) -> web.Response:
        _user(request)
        return web.Response(text=CSS, content_type="text/css", headers={"Cache-Control": "max-age=3600"})

    return routes
