"""The report page for heads of sales (table, chart, period picker, downloads); managers see their own row.

The web app mounts ``report_routes(...)`` and passes who is logged in as a callable, so this module knows
nothing of sessions: ``create_app(..., routes=[report_routes(queries, current_manager, managers, timezone=…)])``.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from html import escape
from typing import Protocol
from urllib.parse import urlencode

import structlog
from aiohttp import web

from crmtel.domain import Category, Manager, Role
from crmtel.errors import ConfigError, StoreUnavailable
from crmtel.i18n import Translator
from crmtel.push import chrome
from crmtel.reports import queue_render, render
from crmtel.reports.models import (
    PRESETS,
    CallsVsDeals,
    ManagerFigures,
    Period,
    ReportFilter,
    change_pct,
    month_so_far,
    preset_period,
    zone,
)
from crmtel.reports.queries import ReportQueries
from crmtel.reports.queue_models import Heatmap

log = structlog.get_logger(__name__)

CurrentUser = Callable[[web.Request], Manager | None]
Translate = Callable[[web.Request], Translator]
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
    # The preset the period is ("" for dates of one's own): kept in the form and the downloads, so a month so
    # far stays compared with the same days of the month before after a filter is applied or a file taken.
    preset: str = ""

    def query(self) -> str:
        """The query string that asks for the same report."""
        params = {"from": self.period.start.isoformat(), "to": self.period.end.isoformat()}
        if self.preset:
            params["preset"] = self.preset
        if self.team:
            params["team"] = self.team
        if self.manager_login:
            params["manager"] = self.manager_login
        return urlencode(params)


def csv_separator(request: web.Request) -> str:
    """``?sep=comma`` for a comma-separated download; Excel's own ``;`` otherwise."""
    return "," if request.query.get("sep") == "comma" else ";"


# What a report page without a period shows: this month so far (its ``default_period``).
DEFAULT_PRESET = "this_month"


def default_period(today: date, tz: str) -> Period:
    """This month so far (to the end of today), compared with the same days of the last month."""
    return month_so_far(today, tz)


def period_from_query(preset: str | None, today: date, tz: str) -> Period:
    """``?preset=this_month`` (today, yesterday, this/last week, this/last month), else the current month."""
    if not preset:
        return default_period(today, tz)
    try:
        return preset_period(preset, today, tz)
    except ValueError as err:
        raise web.HTTPBadRequest(text=f"preset: {err}") from None


# Dates a period may use: its previous period (up to MAX_DAYS before) and local midnights in UTC stay in range.
FIRST_DAY = date(1970, 1, 1)
LAST_DAY = date(9998, 12, 31)


def _date(raw: str | None, name: str) -> date | None:
    if not raw:
        return None
    try:
        day = date.fromisoformat(raw)
    except ValueError:
        raise web.HTTPBadRequest(text=f"{name}: expected a date like 2026-11-01") from None
    if not FIRST_DAY <= day <= LAST_DAY:
        # 0001-01-01 was a 500: the period before it and its midnight in UTC are out of date's range.
        raise web.HTTPBadRequest(text=f"{name}: expected a date from {FIRST_DAY} to {LAST_DAY}")
    return day


def query_period(request: web.Request, tz: str, today: date) -> tuple[Period, str]:
    """The period a report page asks for and the preset it is ("" for other dates): ``preset`` when ``from``/
    ``to`` are absent or are its very days (the form sends both back), else ``from``/``to``; neither: this
    month so far (400 if bad)."""
    q = request.query
    preset = q.get("preset", "")
    default = period_from_query(preset, today, tz)
    if not q.get("from") and not q.get("to"):
        # A preset (or the default) keeps the days it is compared with (a month so far: the same days before).
        return default, preset or DEFAULT_PRESET
    start = _date(q.get("from"), "from") or default.start
    end = _date(q.get("to"), "to") or default.end
    if preset and (start, end) == (default.start, default.end):
        return default, preset
    if end <= start:
        raise web.HTTPBadRequest(text="to must be after from (the period is [from, to))")
    if (end - start).days > MAX_DAYS:
        raise web.HTTPBadRequest(text=f"the period may be at most {MAX_DAYS} days")
    return Period(start, end, tz), ""


async def parse_request(
    request: web.Request, user: Manager, managers: ManagerDirectory, tz: str, today: date
) -> ReportRequest:
    """Read and check the period and filters; a plain manager is always limited to themself."""
    q = request.query
    period, preset = query_period(request, tz, today)
    if user.role is not Role.HEAD:
        return ReportRequest(period, ReportFilter(manager_id=user.id), "", "", preset)
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
    return ReportRequest(period, ReportFilter(manager_id=manager_id, team=team or None), team, login, preset)


def _e(text: str) -> str:
    return escape(render.clean(text), quote=True)


def _cell(column: render.Column, value: render.Value, tr: Translator) -> str:
    """A cell as a reader of ``tr``'s language writes it (``1 234,5``); downloads keep machine-readable text."""
    if value is None:
        return ""
    if isinstance(value, str):
        return _e(value)
    return _e(tr.number(value, column.decimals))


def _change(column: render.Column, report: CallsVsDeals, tr: Translator) -> str:
    now, before = column.get(report.totals), column.get(report.previous_totals)
    if not (isinstance(now, int | float) and isinstance(before, int | float)):
        return ""
    pct = change_pct(float(now), float(before))
    return "" if pct is None else ("+" if pct > 0 else "") + tr.number(pct, 1)


# Figures that open the manager's calls behind them on the managers' page (the call list's filters).
_DRILL = {
    "inbound": {"direction": "inbound"},
    "outbound": {"direction": "outbound"},
    "calls": {},
    "answered": {"outcome": "answered"},
    "missed": {"direction": "inbound", "outcome": "missed"},
}


def drill_url(login: str, period: Period, **filters: str) -> str:
    """The managers' page's call list for one manager's calls of the period (``from``/``to`` are local days)."""
    params = {"manager": login, "from": period.start.isoformat(), "to": period.end.isoformat(), **filters}
    return "/#calls?" + urlencode(params)


def _table_html(report: CallsVsDeals, tr: Translator) -> str:
    head = "".join(
        f'<th scope="col" data-key="{c.key}">{_e(render.title(c, tr))}</th>' for c in render.COLUMNS
    )
    # A wide table scrolls inside its box on a phone; the box takes focus so the keyboard can scroll it too.
    label = _e(tr.t("report.title"))
    out = [
        f'<div class="table-wrap" tabindex="0" role="region" aria-label="{label}">'
        f'<table id="report-table"><thead><tr>{head}</tr></thead><tbody>'
    ]

    def line(attrs: str, name: str, login: str, cells: Sequence[str]) -> None:
        def td(column: render.Column, cell: str) -> str:
            if login and column.key in _DRILL and cell not in ("", "0"):
                href = _e(drill_url(login, report.period, **_DRILL[column.key]))
                cell = f'<a href="{href}" data-testid="drill-{column.key}">{cell}</a>'
            return f'<td data-key="{column.key}">{cell}</td>'

        tds = "".join(td(c, cell) for c, cell in zip(render.NUMERIC, cells, strict=True))
        who = _e(name)
        if login:
            title = _e(tr.t("page.report.open_calls", name=name))
            who = f'<a href="{_e(drill_url(login, report.period))}" title="{title}" data-testid="drill-manager">{who}</a>'
        out.append(
            f'<tr{attrs}><th scope="row" data-key="manager">{who}</th>'
            f'<td data-key="login">{_e(login)}</td>{tds}</tr>'
        )

    def figures(row: ManagerFigures) -> list[str]:
        return [_cell(c, c.get(row), tr) for c in render.NUMERIC]

    for row in report.rows:
        login = row.login or ""
        line(f' class="manager" data-login="{_e(login)}"', render.row_name(row, tr), login, figures(row))
    line(' class="total"', tr.t("report.total"), "", figures(report.totals))
    previous = tr.t("report.previous_total", period=period_text(report.previous_period, tr))
    line(' class="previous"', previous, "", figures(report.previous_totals))
    line(' class="change"', tr.t("report.change"), "", [_e(_change(c, report, tr)) for c in render.NUMERIC])
    out.append("</tbody></table></div>")
    return "".join(out)


def period_text(period: Period, tr: Translator) -> str:
    """``1 нояб. 2026 г. – 30 нояб. 2026 г.``: the last day shown is the last day included."""
    return f"{tr.day(period.start)} – {tr.day(period.end - timedelta(days=1))}"


def _options(values: Sequence[tuple[str, str]], selected: str) -> str:
    return "".join(
        f'<option value="{_e(v)}"{" selected" if v == selected else ""}>{_e(label)}</option>'
        for v, label in values
    )


def preset_links(path: str, current: str, keep: dict[str, str], tr: Translator) -> str:
    """The period presets as links (``?preset=…`` and the page's other filters): a preset is a choice of its
    own, never mixed up with the dates the form sends back; the current one is marked ``aria-current``."""
    links = []
    for name in PRESETS:
        query = urlencode({"preset": name, **{k: v for k, v in keep.items() if v}})
        mark = ' primary" aria-current="true' if name == current else ""
        links.append(
            f'<a class="btn small{mark}" data-preset="{name}" href="{_e(path)}?{_e(query)}">'
            f"{_e(tr.t('report_queues.preset_' + name))}</a>"
        )
    label = _e(tr.t("report_queues.preset"))
    return (
        f'<p class="downloads presets" role="group" aria-label="{label}" data-testid="presets">'
        f'<span aria-hidden="true">{label}</span> {"".join(links)}</p>'
    )


def _field(name: str, label: str, control: str) -> str:
    return f'<div class="field"><label for="f-{name}">{_e(label)}</label>{control}</div>'


def _filters(req: ReportRequest, user: Manager, all_managers: Sequence[Manager], tr: Translator) -> str:
    period = req.period
    last_day = tr.day(period.end - timedelta(days=1))
    out = [
        _field(
            "from",
            tr.t("page.report.from"),
            f'<input id="f-from" type="date" name="from" value="{period.start.isoformat()}" required>',
        ),
        _field(
            "to",
            tr.t("page.report.to"),
            f'<input id="f-to" type="date" name="to" value="{period.end.isoformat()}" required '
            f'aria-describedby="f-to-hint"><small id="f-to-hint" class="muted">'
            f"{_e(tr.t('page.report.to_hint', day=last_day))}</small>",
        ),
    ]
    if user.role is Role.HEAD:
        teams = [
            ("", tr.t("page.report.all_teams")),
            *((c.value, tr.t(f"page.report.team_{c.value}")) for c in Category),
        ]
        people = [
            ("", tr.t("page.report.all_managers")),
            *((m.login, m.name) for m in all_managers if m.role is Role.MANAGER),
        ]
        out.append(
            _field(
                "team",
                tr.t("page.report.team"),
                f'<select id="f-team" name="team">{_options(teams, req.team)}</select>',
            )
        )
        out.append(
            _field(
                "manager",
                tr.t("page.report.manager"),
                f'<select id="f-manager" name="manager">{_options(people, req.manager_login)}</select>',
            )
        )
    if req.preset:
        out.append(f'<input type="hidden" name="preset" value="{_e(req.preset)}">')
    out.append(
        f'<div class="field submit"><button type="submit" class="btn primary">{_e(tr.t("page.report.show"))}</button></div>'
    )
    return "".join(out)


def page_html(
    report: CallsVsDeals,
    req: ReportRequest,
    user: Manager,
    all_managers: Sequence[Manager],
    prefix: str,
    *,
    tr: Translator,
    heatmap: Heatmap | None = None,
) -> str:
    """The whole report page in ``tr``'s language, under the managers' page header (scripts only from /static)."""
    title = tr.t("report.title")
    heading = title if user.role is Role.HEAD else tr.t("page.report.title_own", name=user.name)
    query = _e(req.query())
    downloads = "".join(
        f'<a class="btn small download" id="download-{fmt}" href="{prefix}/calls-vs-deals.{fmt}?{query}" '
        f"download>{fmt.upper()}</a>"
        for fmt in ("csv", "xlsx", "json")
    ) + (
        f'<a class="btn small download" id="download-csv-comma" href="{prefix}/calls-vs-deals.csv?{query}'
        f'&amp;sep=comma" download>{_e(tr.t("page.report.csv_comma"))}</a>'
    )
    compared = tr.t(
        "page.report.compared", previous=period_text(report.previous_period, tr), zone=report.period.tz
    )
    return (
        chrome.head_html(tr, f"{title} — crmtel")
        + chrome.header_html(user, tr, "reports")
        + '<main class="report views" id="report">'
        f"<h1>{_e(heading)}</h1>"
        f'<p class="period">{_e(tr.t("page.report.period"))} <span id="period" data-testid="report-period">'
        f"{_e(period_text(report.period, tr))}</span> · "
        f'<span data-testid="report-compared">{_e(compared)}</span></p>'
        + preset_links(
            f"{prefix}/calls-vs-deals", req.preset, {"team": req.team, "manager": req.manager_login}, tr
        )
        + f'<form id="period-picker" class="report-filters" method="get" action="{prefix}/calls-vs-deals">'
        f"{_filters(req, user, all_managers, tr)}</form>"
        f'<p class="downloads"><span>{_e(tr.t("page.report.download"))}</span> {downloads}</p>'
        '<section class="report-card">'
        f'<div id="chart" tabindex="0" role="region" aria-label="{_e(tr.t("report.chart_title"))}">'
        f"{render.to_svg(report, tr)}</div></section>"
        f'<section class="report-card">{_table_html(report, tr)}</section>'
        f"{_results_html(report, tr)}"
        f"{_heatmaps_html(heatmap, tr)}"
        f'<p class="note muted">{_e(tr.t("page.report.note"))}</p>'
        "</main></body></html>"
    )


def _results_html(report: CallsVsDeals, tr: Translator) -> str:
    """Per manager, how many of the period's calls got each one-click result."""
    rows = [r for r in report.rows if r.results]
    title = f'<h2 id="results-title">{_e(tr.t("report.results.title"))}</h2>'
    if not rows:
        return (
            f'<section class="report-card" data-testid="report-results">{title}<p class="muted">'
            + _e(tr.t("report.results.none"))
            + "</p></section>"
        )
    order = [code for code, _n in report.totals.results]
    head = "".join(f'<th scope="col">{_e(render.result_name(code, tr))}</th>' for code in order)
    body = ""
    for row in (*rows, report.totals):
        counts = dict(row.results)
        name = render.row_name(row, tr)
        cells = "".join(
            f'<td class="num" data-result="{_e(code)}">{counts.get(code, 0)}</td>' for code in order
        )
        body += f'<tr data-manager="{_e(row.login or "")}"><th scope="row">{_e(name)}</th>{cells}</tr>'
    return (
        f'<section class="report-card" data-testid="report-results">{title}'
        f'<div class="table-wrap"><table class="report-results" aria-labelledby="results-title">'
        f'<thead><tr><th scope="col">{_e(tr.t("report.col_manager"))}</th>{head}</tr></thead>'
        f"<tbody>{body}</tbody></table></div></section>"
    )


def _heatmaps_html(heatmap: Heatmap | None, tr: Translator) -> str:
    if heatmap is None:
        return ""
    return (
        f'<section class="report-card heatmaps">{queue_render.heatmap_svg(heatmap, "inbound", tr)}'
        f"{queue_render.heatmap_svg(heatmap, 'missed', tr)}</section>"
    )


_DOWNLOADS = {"csv": "text/csv; charset=utf-8", "json": "application/json; charset=utf-8"}
_XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


def report_routes(
    queries: ReportQueries,
    current_user: CurrentUser,
    managers: ManagerDirectory,
    *,
    timezone: str,
    prefix: str = "/reports",
    today: Callable[[], date] | None = None,
    translate: Translate | None = None,
    heatmaps: Callable[[Period], Awaitable[Heatmap]] | None = None,
) -> web.RouteTableDef:
    """Routes of the report page and its downloads under ``prefix``; every one needs a logged-in user.

    ``heatmaps(period)`` adds the hour × weekday heatmaps of inbound and missed calls for heads (everyone's
    calls, so never on a plain manager's page).

    ``translate(request)`` gives the reader's language (the web app's ``translator``); without it, Russian.
    """
    zone(timezone)
    fallback = Translator.for_locale(None, zone=timezone)
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
        heatmap = await heatmaps(req.period) if heatmaps is not None and user.role is Role.HEAD else None
        return web.Response(
            text=page_html(
                report,
                req,
                user,
                everyone,
                prefix,
                tr=translate(request) if translate else fallback,
                heatmap=heatmap,
            ),
            content_type="text/html",
            headers={"Cache-Control": "no-store"},
        )

    @routes.get(f"{prefix}/calls-vs-deals.{{fmt:csv|json|xlsx}}")
    async def download(request: web.Request) -> web.Response:
        _, req, report = await _report(request)
        fmt = request.match_info["fmt"]
        name = f"calls-vs-deals_{req.period.start.isoformat()}_{req.period.end.isoformat()}.{fmt}"
        headers = {"Content-Disposition": f'attachment; filename="{name}"', "Cache-Control": "no-store"}
        tr = translate(request) if translate else fallback
        if fmt == "xlsx":
            return web.Response(body=render.to_xlsx(report, tr), headers={**headers, "Content-Type": _XLSX})
        # Headings in the reader's language; the JSON keeps its machine keys.
        if fmt == "csv":
            body = render.excel_csv(
                render.to_csv(report, tr), sep=csv_separator(request), numeric=render.CSV_FIGURES
            )
        else:
            body = render.to_json(report).encode("utf-8")
        return web.Response(body=body, headers={**headers, "Content-Type": _DOWNLOADS[fmt]})

    return routes
