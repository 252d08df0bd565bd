"""The report page and downloads over real HTTP: who sees which rows, the period picker, bad input."""

from __future__ import annotations

import csv
import io
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import date
from html.parser import HTMLParser

import aiohttp
import pytest
from aiohttp import web
from openpyxl import load_workbook

from crmtel.domain import Manager
from crmtel.i18n import Translator
from crmtel.reports.queries import ReportQueries
from crmtel.reports.web import report_routes
from crmtel.store.db import Database
from crmtel.store.managers import ManagerRepository
from tests.fixtures import report_dataset as ds

QUERY = f"from={ds.FROM.isoformat()}&to={ds.TO.isoformat()}"


class TableCells(HTMLParser):
    """Collects the report table's rows as {column key: text}, keyed by each row's data-login or class."""

    def __init__(self) -> None:
        super().__init__()
        self.rows: dict[str, dict[str, str]] = {}
        self._row: str | None = None
        self._key: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if tag == "tr" and a.get("class") is not None:
            self._row = a.get("data-login") if a.get("class") == "manager" else a.get("class")
            self.rows[self._row or ""] = {}
        elif tag == "td" and self._row is not None:
            self._key = a.get("data-key")
            self.rows[self._row][self._key or ""] = ""

    def handle_endtag(self, tag: str) -> None:
        if tag == "td":
            self._key = None
        elif tag == "tr":
            self._row = None

    def handle_data(self, data: str) -> None:
        if self._row is not None and self._key is not None:
            self.rows[self._row][self._key] += data


def table(html: str) -> dict[str, dict[str, str]]:
    """The report table of a page."""
    parser = TableCells()
    parser.feed(html)
    return parser.rows


@dataclass
class Site:
    """A running app serving the report routes; ``get(path, login)`` says who the fake session has logged in."""

    url: str
    http: aiohttp.ClientSession
    users: dict[str, Manager]

    async def get(self, path: str, user: str | None) -> aiohttp.ClientResponse:
        headers = {"X-Test-User": user} if user else {}
        return await self.http.get(self.url + path, headers=headers)


@pytest.fixture
async def site(db: Database) -> AsyncIterator[Site]:
    """The report routes on 127.0.0.1 (ephemeral port) over the data set, with a header-based fake login."""
    await ds.load(db)
    repo = ManagerRepository(db)
    users = {m.login: m for m in await repo.all()}

    def current_user(request: web.Request) -> Manager | None:
        return users.get(request.headers.get("X-Test-User", ""))

    app = web.Application()
    app.router.add_routes(
        report_routes(
            ReportQueries(db),
            current_user,
            repo,
            timezone=ds.TZ,
            today=lambda: date(2026, 11, 2),
            translate=lambda request: Translator.for_locale(
                request.headers.get("X-Test-Lang", "en"), zone=ds.TZ
            ),
        )
    )
    runner = web.AppRunner(app)
    await runner.setup()
    tcp = web.TCPSite(runner, "127.0.0.1", 0)
    await tcp.start()
    port = runner.addresses[0][1]
    async with aiohttp.ClientSession() as http:
        yield Site(f"http://127.0.0.1:{port}", http, users)
    await runner.cleanup()


async def test_head_sees_every_manager_with_the_known_figures(site: Site) -> None:
    """A head gets every row; the table cells are the hand-counted figures."""
    resp = await site.get(f"/reports/calls-vs-deals?{QUERY}", "hugo")
    assert resp.status == 200
    rows = table(await resp.text())
    assert set(rows) == {"anna", "boris", "vera", "", "total", "previous", "change"}
    assert (rows["anna"]["inbound"], rows["anna"]["deals_won"], rows["anna"]["talk_minutes"]) == (
        "4",
        "2",
        "33.0",
    )
    assert (rows["total"]["calls"], rows["total"]["missed_not_called_back"]) == ("16", "4")


async def test_page_escapes_names_and_has_chart_picker_and_downloads(site: Site) -> None:
    """Markup in a name is shown as text; the page has the SVG chart, the date form and three downloads."""
    html = await (await site.get(f"/reports/calls-vs-deals?{QUERY}", "hugo")).text()
    assert "Vera &lt;b&gt;Lebedeva&lt;/b&gt;" in html
    assert "<b>Lebedeva</b>" not in html
    assert '<svg xmlns="http://www.w3.org/2000/svg" class="report-chart"' in html
    assert 'name="from" value="2026-11-01"' in html
    assert 'name="to" value="2026-11-03"' in html
    for fmt in ("csv", "xlsx", "json"):
        assert f'href="/reports/calls-vs-deals.{fmt}?from=2026-11-01&amp;to=2026-11-03"' in html
    assert '<select id="f-manager" name="manager">' in html


async def test_manager_sees_only_their_own_row_whatever_they_ask(site: Site) -> None:
    """Anna asking for Vera's or the whole team's figures still gets her own row only, and no filters."""
    for query in (QUERY, f"{QUERY}&manager=vera", f"{QUERY}&team=wholesale"):
        resp = await site.get(f"/reports/calls-vs-deals?{query}", "anna")
        html = await resp.text()
        rows = table(html)
        assert [k for k in rows if k not in {"total", "previous", "change"}] == ["anna"], query
        assert rows["total"]["calls"] == "5"
        assert 'name="manager"' not in html
    data = await (await site.get(f"/reports/calls-vs-deals.json?{QUERY}&manager=vera", "anna")).json()
    assert [row["login"] for row in data["rows"]] == ["anna"]


async def test_head_filters_by_manager_and_team(site: Site) -> None:
    """?manager=vera and ?team=retail narrow a head's report."""
    rows = table(await (await site.get(f"/reports/calls-vs-deals?{QUERY}&manager=vera", "hugo")).text())
    assert set(rows) == {"vera", "total", "previous", "change"}
    rows = table(await (await site.get(f"/reports/calls-vs-deals?{QUERY}&team=retail", "hugo")).text())
    assert set(rows) == {"anna", "boris", "total", "previous", "change"}


async def test_without_a_login_every_route_is_refused(site: Site) -> None:
    """No logged-in user: 401 for the page and the downloads."""
    for path in ("/reports/calls-vs-deals", "/reports/calls-vs-deals.csv"):
        assert (await site.get(path, None)).status == 401


async def test_default_period_is_the_current_month(site: Site) -> None:
    """Without dates the page shows this month so far (today is 2 Nov 2026 here) against the same days of the
    previous month, in the reader's words."""
    html = await (await site.get("/reports/calls-vs-deals", "hugo")).text()
    assert "Nov 1, 2026 – Nov 2, 2026" in html
    assert "compared with Oct 1, 2026 – Oct 2, 2026 (time zone Europe/Moscow)" in html
    resp = await site.http.get(
        site.url + "/reports/calls-vs-deals", headers={"X-Test-User": "hugo", "X-Test-Lang": "ru"}
    )
    html = (await resp.text()).replace("\xa0", " ").replace("\u202f", " ")  # Babel's no-break spaces
    assert '<html lang="ru">' in html
    assert "1 нояб. 2026 г. – 2 нояб. 2026 г." in html
    assert "сравнение с 1 окт. 2026 г. – 2 окт. 2026 г." in html


async def test_csv_and_xlsx_downloads(site: Site) -> None:
    """Downloads are attachments named after the period, with the same figures as the page; the CSV is what
    Russian Excel opens as columns (a BOM, ``;``, decimal commas), or comma-separated when asked."""
    resp = await site.get(f"/reports/calls-vs-deals.csv?{QUERY}", "hugo")
    assert resp.status == 200
    assert resp.headers["Content-Type"].startswith("text/csv")
    assert 'filename="calls-vs-deals_2026-11-01_2026-11-03.csv"' in resp.headers["Content-Disposition"]
    raw = await resp.read()
    assert raw.startswith(b"\xef\xbb\xbf")
    lines = list(csv.reader(io.StringIO(raw[3:].decode("utf-8")), delimiter=";"))
    vera = next(line for line in lines if line[1] == "vera")
    assert vera[2] == "5"
    assert not any("." in cell and cell.replace(".", "").isdigit() for cell in vera)
    comma = await (await site.get(f"/reports/calls-vs-deals.csv?{QUERY}&sep=comma", "hugo")).read()
    assert comma.startswith(b"\xef\xbb\xbf")
    lines = list(csv.reader(io.StringIO(comma[3:].decode("utf-8"))))
    assert next(line for line in lines if line[1] == "vera")[2] == "5"
    resp = await site.get(f"/reports/calls-vs-deals.xlsx?{QUERY}", "hugo")
    assert resp.headers["Content-Type"] == "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
    ws = load_workbook(io.BytesIO(await resp.read())).active
    assert ws.cell(row=1, column=1).value.startswith("Calls vs deals, 2026-11-01")


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("from=yesterday&to=2026-11-03", "from: expected a date"),
        ("from=2026-11-03&to=2026-11-01", "to must be after from"),
        ("from=2020-01-01&to=2026-11-01", "at most 731 days"),
        # The period before year 1 and its midnight in UTC are out of date's range (was a 500).
        ("from=0001-01-01&to=0001-01-05", "from: expected a date from 1970-01-01"),
        ("from=9999-12-01&to=9999-12-31", "from: expected a date from 1970-01-01"),
        (f"{QUERY}&team=%3Cscript%3E", "team: unknown team"),
        (f"{QUERY}&manager=nobody", "manager: no such manager"),
    ],
)
async def test_bad_input_is_a_400_with_a_reason(site: Site, query: str, message: str) -> None:
    """Malformed dates, reversed or huge periods, unknown teams and managers give 400, not a 500."""
    resp = await site.get(f"/reports/calls-vs-deals?{query}", "hugo")
    assert resp.status == 400
    assert message in await resp.text()
