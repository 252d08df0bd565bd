"""The report page in headless Chromium, inside the real web app: chart present, numbers equal to the CLI's."""

from __future__ import annotations

import asyncio
import csv
import io
import subprocess
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import pytest
from aiohttp.test_utils import TestServer
from playwright.async_api import Browser, BrowserContext, Page, expect

from crmtel.config import WebSettings
from crmtel.push.context import current_manager, translator
from crmtel.push.hub import Hub
from crmtel.push.web import create_app
from crmtel.reports.queries import ReportQueries
from crmtel.reports.web import report_routes
from crmtel.store.db import Database
from crmtel.store.managers import ManagerRepository
from tests.fixtures import report_dataset as ds
from tests.fixtures.races import RACES_PROCESSES

pytestmark = [pytest.mark.e2e, RACES_PROCESSES]

PASSWORD = "report-e2e-pw"
SEEN = 10_000


@dataclass
class Site:
    """The web app with the report routes mounted, on 127.0.0.1, over the data set."""

    server: TestServer
    database_url: str
    browser: Browser

    def url(self, path: str) -> str:
        return str(self.server.make_url(path))

    async def page_for(self, login: str) -> tuple[BrowserContext, Page]:
        """A fresh browser profile logged in as ``login`` through the app's login API."""
        context = await self.browser.new_context(accept_downloads=True)
        response = await context.request.post(
            self.url("/api/login"), data={"login": login, "password": PASSWORD}
        )
        assert response.ok, await response.text()
        return context, await context.new_page()


@pytest.fixture
async def site(db: Database, database_url: str, browser: Browser) -> AsyncIterator[Site]:
    """The push engineer's app (sessions, CSP) with ``report_routes`` mounted the way app.py mounts them."""
    await ds.load(db, password=PASSWORD)
    reports = report_routes(
        ReportQueries(db),
        current_manager,
        ManagerRepository(db),
        timezone=ds.TZ,
        today=lambda: date(2026, 11, 2),
        translate=translator,
    )
    server = TestServer(
        create_app(WebSettings(port=0), db=db, hub=Hub(), routes=(reports,)), host="127.0.0.1", port=0
    )
    await server.start_server()
    try:
        yield Site(server, database_url, browser)
    finally:
        await server.close()


def _cli_csv(url: str, start: str, end: str, *extra: str) -> list[list[str]]:
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "crmtel.cli",
            "--database-url",
            url,
            "report",
            "calls-vs-deals",
            "--from",
            start,
            "--to",
            end,
            "--timezone",
            ds.TZ,
            "--format",
            "csv",
            # English headings and row names: the lines below look for "Total", "Calls", "Deals won".
            "--lang",
            "en",
            *extra,
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return list(csv.reader(io.StringIO(result.stdout)))


async def _page_grid(page: Page) -> dict[str, list[str]]:
    """The page's manager rows and total, keyed by login ("total"), each cell as the CLI writes it."""
    rows: dict[str, list[str]] = {}
    for row in await page.locator("#report-table tbody tr.manager, #report-table tbody tr.total").all():
        cells = [t.strip() for t in await row.locator("th, td").all_inner_texts()]
        login = await row.get_attribute("data-login")
        key = "total" if login is None else login
        # The page writes numbers for its reader (en: 1,234.5); the CLI's CSV plainly (1234.5).
        rows[key] = [cells[0], cells[1], *(c.replace(",", "") for c in cells[2:])]
    return rows


def _cli_rows(cli: list[list[str]]) -> dict[str, list[str]]:
    """The CLI's manager rows and total in the same shape as ``_page_grid``."""
    body = cli[1:]
    total = next(line for line in body if line[0] == "Total")
    managers = body[: body.index(total)]
    return {**{line[1]: line for line in managers}, "total": ["Total", "", *total[2:]]}


async def test_head_sees_chart_and_the_same_numbers_as_the_cli(site: Site, tmp_path: Path) -> None:
    """Every table cell equals the CLI's CSV cell; the chart has one visible bar pair per manager."""
    context, page = await site.page_for("hugo")
    await page.goto(site.url(f"/reports/calls-vs-deals?from={ds.FROM}&to={ds.TO}"))
    chart = page.locator("#chart svg.report-chart")
    await expect(chart).to_be_visible(timeout=SEEN)
    cli = await asyncio.to_thread(_cli_csv, site.database_url, ds.FROM.isoformat(), ds.TO.isoformat())
    grid = await _page_grid(page)
    assert grid == _cli_rows(cli)
    rows = page.locator("#chart g.chart-row")
    assert await rows.count() == 4  # Boris, Vera, Анна, unassigned
    by_login = {line[1]: line for line in cli[1:]}
    calls_col = cli[0].index("Calls")
    won_col = cli[0].index("Deals won")
    for i in range(await rows.count()):
        g = rows.nth(i)
        name = await g.get_attribute("data-manager")
        line = next(row for row in cli[1:] if row[0] == name)
        assert await g.get_attribute("data-calls") == line[calls_col]
        assert await g.get_attribute("data-won") == line[won_col]
    widest = await page.locator("#chart rect.bar-calls").evaluate_all(
        "bars => Math.max(...bars.map(b => b.getBoundingClientRect().width))"
    )
    assert widest > 100  # the busiest manager's bar is really drawn
    assert by_login["vera"][0] == "Vera <b>Lebedeva</b>"  # shown as text, not markup
    assert await page.locator("#report-table b").count() == 0
    await page.screenshot(path=str(tmp_path / "report.png"), full_page=True)
    await context.close()


async def test_period_picker_and_csv_download_follow_the_cli(site: Site) -> None:
    """Picking the previous two days shows their figures; the CSV download is what Russian Excel opens (a BOM,
    ``;``, decimal commas) with the CLI's cells, and the comma-separated one is the CLI's after its BOM."""
    context, page = await site.page_for("hugo")
    await page.goto(site.url("/reports/calls-vs-deals"))
    # The default is this month so far (today is 2 Nov 2026 on this site).
    await expect(page.locator("#period")).to_have_text("Nov 1, 2026 – Nov 2, 2026", timeout=SEEN)
    await page.fill("input[name=from]", "2026-10-30")
    await page.fill("input[name=to]", "2026-11-01")
    await page.click("#period-picker button[type=submit]")
    await expect(page.locator("#period")).to_have_text("Oct 30, 2026 – Oct 31, 2026", timeout=SEEN)
    cli = await asyncio.to_thread(_cli_csv, site.database_url, "2026-10-30", "2026-11-01")
    assert await _page_grid(page) == _cli_rows(cli)
    async with page.expect_download() as info:
        await page.click("#download-csv")
    download = await info.value
    path = await download.path()
    assert path is not None
    raw = await asyncio.to_thread(Path(path).read_bytes)
    assert raw.startswith(b"\xef\xbb\xbf")
    rows = list(csv.reader(io.StringIO(raw.decode("utf-8-sig")), delimiter=";"))
    assert rows == [
        [cell.replace(".", ",") if cell.replace(".", "", 1).isdigit() else cell for cell in row]
        for row in cli
    ]
    async with page.expect_download() as info:
        await page.click("#download-csv-comma")
    path = await (await info.value).path()
    assert path is not None
    text = await asyncio.to_thread(Path(path).read_text, encoding="utf-8-sig")
    assert list(csv.reader(io.StringIO(text))) == cli
    await context.close()


async def test_manager_sees_only_their_own_row_and_bar(site: Site) -> None:
    """Anna, a plain manager, gets her row and her bars only, equal to `--manager anna` on the CLI."""
    context, page = await site.page_for("anna")
    await page.goto(site.url(f"/reports/calls-vs-deals?from={ds.FROM}&to={ds.TO}&manager=vera"))
    await expect(page.locator("#chart svg.report-chart")).to_be_visible(timeout=SEEN)
    assert await page.locator("#chart g.chart-row").count() == 1
    assert await page.locator("select[name=manager]").count() == 0
    cli = await asyncio.to_thread(
        _cli_csv, site.database_url, ds.FROM.isoformat(), ds.TO.isoformat(), "--manager", "anna"
    )
    assert await _page_grid(page) == _cli_rows(cli)
    await context.close()


async def test_report_page_requires_a_login(site: Site) -> None:
    """Without a session the browser is sent to the app's login page, not shown figures."""
    context = await site.browser.new_context()
    page = await context.new_page()
    await page.goto(site.url(f"/reports/calls-vs-deals?from={ds.FROM}&to={ds.TO}"))
    assert await page.locator("#report-table").count() == 0
    await context.close()


async def test_head_on_a_phone_gets_the_shared_header_and_a_page_that_fits(site: Site) -> None:
    """At 390 px the report is no wider than the screen; the header names the head, links every page heads
    have (calls, reports, queues, board), and its logout ends the session."""
    context = await site.browser.new_context(
        viewport={"width": 390, "height": 844}, is_mobile=True, has_touch=True
    )
    response = await context.request.post(
        site.url("/api/login"), data={"login": "hugo", "password": PASSWORD}
    )
    assert response.ok
    page = await context.new_page()
    await page.goto(site.url(f"/reports/calls-vs-deals?from={ds.FROM}&to={ds.TO}"))
    await expect(page.locator("#report-table")).to_be_attached(timeout=SEEN)
    assert await page.evaluate("document.documentElement.scrollWidth") <= 390
    assert await page.get_attribute("meta[name=viewport]", "content") == "width=device-width, initial-scale=1"
    for target in ("calls", "reports", "queues", "board"):
        await expect(page.locator(f"[data-testid=nav-{target}]")).to_be_visible()
    await expect(page.locator("[data-testid=nav-reports]")).to_have_attribute("aria-current", "page")
    await page.click("[data-testid=logout]")
    await expect(page.locator("#login-form")).to_be_visible(timeout=SEEN)
    assert (await context.request.get(site.url("/api/me"))).status == 401
    await context.close()
