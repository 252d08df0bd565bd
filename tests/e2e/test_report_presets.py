"""The report pages' period presets and their CSV downloads in a Russian Chromium (ru-RU; 1366×900 and 390×844;
axe finds no serious or critical violation): this month so far is compared with the same days of the month
before — on the page, after a filter is applied and in the CSV downloaded from it — and a preset link picks
its days; the queue report's CSV opens in Russian Excel (a BOM, `;`, decimal commas, ISO dates; `,` on
request)."""

from __future__ import annotations

import csv
import io
import re
from collections.abc import AsyncIterator, Callable, Iterable
from contextlib import asynccontextmanager
from datetime import UTC, date, datetime
from zoneinfo import ZoneInfo

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from playwright.async_api import Browser, BrowserContext, Page, expect

from crmtel.config import WebSettings
from crmtel.domain import CallRecord
from crmtel.i18n import Translator
from crmtel.push.context import current_manager, translator
from crmtel.push.hub import Hub
from crmtel.push.web import create_app
from crmtel.reports import render
from crmtel.reports.queries import ReportQueries
from crmtel.reports.queue_queries import QueueQueries
from crmtel.reports.queue_web import queue_routes
from crmtel.reports.web import report_routes
from crmtel.store.calls import CallRepository
from crmtel.store.db import Database
from crmtel.store.managers import ManagerRepository
from tests.e2e.browsing import SIZES, ZONE, download, excel_rows, russian_page
from tests.e2e.pagecheck import assert_fits, assert_language, assert_no_axe
from tests.fixtures import queue_dataset as qd
from tests.fixtures.call_records import call_record
from tests.fixtures.races import RACES_PROCESSES
from tests.integration.test_web_app import PASSWORD, seed_managers

pytestmark = [pytest.mark.e2e, pytest.mark.slow, RACES_PROCESSES]

SEEN = 10_000
RU = Translator.for_locale("ru", zone=ZONE)
# Names and words shown as stored: the seeded managers, the zone, the queue names.
DATA = (
    *("Boris Orlov", "Vera Lebedeva", "Head of Sales", ZONE, "anna", "boris", "vera"),
    *("Hugo Head", "Vera <b>Lebedeva</b>", "Gleb Kozlov", "gleb", "retail", "wholesale"),
)
# Anna's answered calls by local day: two in December so far; in November one on the 4th (the same days as
# 1–6 Dec), three on the 20th and one on the 28th (the six days just before December).
ANNA_CALLS = (
    (date(2026, 12, 3), 2),
    (date(2026, 11, 4), 1),
    (date(2026, 11, 20), 3),
    (date(2026, 11, 28), 1),
)


def _answered(linkedid: str, day: date) -> CallRecord:
    at = datetime(day.year, day.month, day.day, 12, 0, tzinfo=ZoneInfo(ZONE)).astimezone(UTC)
    return call_record(linkedid, "+79167770007", at, ring=5, talk=115)


@asynccontextmanager
async def serving(db: Database, routes: web.RouteTableDef) -> AsyncIterator[Callable[[str], str]]:
    """The web app (sessions, CSP, the header) with ``routes`` mounted; yields ``url(path)``."""
    server = TestServer(
        create_app(WebSettings(port=0), db=db, hub=Hub(), routes=(routes,)), host="127.0.0.1", port=0
    )
    await server.start_server()
    try:
        yield lambda path: str(server.make_url(path))
    finally:
        await server.close()


@asynccontextmanager
async def _calls_report(
    db: Database, days: Iterable[tuple[date, int]], today: date
) -> AsyncIterator[Callable[[str], str]]:
    """The seeded managers, Anna's answered calls (``days``: a local day and how many) and the calls-vs-deals
    report served as on ``today``; yields ``url(path)``."""
    await seed_managers(db)
    calls = [_answered(f"{day}-{i}", day) for day, count in days for i in range(count)]
    await CallRepository(db).upsert_many([(c, None) for c in calls])
    routes = report_routes(
        ReportQueries(db),
        current_manager,
        ManagerRepository(db),
        timezone=ZONE,
        today=lambda: today,
        translate=translator,
    )
    async with serving(db, routes) as url:
        yield url


async def logged_in(
    browser: Browser, url: Callable[[str], str], login: str, password: str, width: int, height: int
) -> tuple[BrowserContext, Page]:
    """A Russian browser profile on a screen of that size, logged in as ``login``, downloads captured."""
    context, page = await russian_page(browser, width, height, accept_downloads=True)
    response = await context.request.post(url("/api/login"), data={"login": login, "password": password})
    assert response.ok, await response.text()
    return context, page


async def _checked(page: Page, where: str) -> None:
    """Axe-clean, no wider than the screen, Russian throughout."""
    await assert_no_axe(page, where)
    await assert_fits(page, where)
    await assert_language(page, "ru", DATA)


async def _excel_rows(page: Page) -> list[list[str]]:
    """The page's CSV download as Russian Excel reads it: a BOM, then `;`-separated cells."""
    rows = await excel_rows(page, "#download-csv")
    assert all(len(r) == len(rows[0]) for r in rows), "one column per heading on every line"
    return rows


def _calls(rows: list[list[str]], first_cell: str) -> str:
    """The «calls» cell of the line whose first cell is ``first_cell``."""
    column = rows[0].index(render.title(next(c for c in render.COLUMNS if c.key == "calls"), RU))
    (line,) = [r for r in rows if r[0] == first_cell]
    return line[column]


def _days(start: date, last: date) -> str:
    """How the page writes a period (its last day included)."""
    return f"{RU.day(start)} – {RU.day(last)}"


@pytest.mark.parametrize(("width", "height"), SIZES)
async def test_this_month_so_far_is_compared_with_the_same_days_of_the_month_before(
    db: Database, browser: Browser, width: int, height: int
) -> None:
    """On 6 December the report is 1–6 Dec against 1–6 Nov (2 calls against 1, not against November's 6 nor
    the 28th's one in the six days just before); a manager picked in the form keeps that comparison, and so
    does the CSV taken from the page; «Прошлый месяц» is November against October, keeping the manager."""
    async with _calls_report(db, ANNA_CALLS, date(2026, 12, 6)) as url:
        context, page = await logged_in(browser, url, "head", PASSWORD, width, height)
        await page.goto(url("/reports/calls-vs-deals"))
        presets = page.locator("[data-testid=presets]")
        await expect(presets.locator("[aria-current=true]")).to_have_text("Этот месяц", timeout=SEEN)
        await expect(page.locator("#period")).to_have_text(_days(date(2026, 12, 1), date(2026, 12, 6)))
        same_days = _days(date(2026, 11, 1), date(2026, 11, 6))
        await expect(page.locator("[data-testid=report-compared]")).to_contain_text(same_days)
        await _checked(page, "the report, this month so far")
        rows = await _excel_rows(page)
        previous = "Итого за предыдущий период (2026-11-01 – 2026-11-06 (Europe/Moscow))"
        assert (_calls(rows, "Итого"), _calls(rows, previous)) == ("2", "1")
        assert _calls(rows, "Изменение к предыдущему, %") == "+100,0"

        # A filter applied through the form: the same comparison, on the page and in the file.
        await page.locator("#f-manager").select_option("anna")
        await page.locator("#period-picker button[type=submit]").click()
        await expect(page.locator("#f-manager")).to_have_value("anna", timeout=SEEN)
        await expect(page.locator("[data-testid=report-compared]")).to_contain_text(same_days)
        rows = await _excel_rows(page)
        assert (_calls(rows, "Анна Смирнова"), _calls(rows, previous)) == ("2", "1")

        # «Прошлый месяц»: all of November against all of October, still Anna's.
        await presets.get_by_role("link", name="Прошлый месяц").click()
        await expect(page.locator("#period")).to_have_text(
            _days(date(2026, 11, 1), date(2026, 11, 30)), timeout=SEEN
        )
        await expect(page.locator("[data-testid=report-compared]")).to_contain_text(
            _days(date(2026, 10, 1), date(2026, 10, 31))
        )
        await expect(presets.locator("[aria-current=true]")).to_have_text("Прошлый месяц")
        await expect(page.locator("#f-manager")).to_have_value("anna")
        await _checked(page, "the report, last month")
        rows = await _excel_rows(page)
        before = "Итого за предыдущий период (2026-10-01 – 2026-10-31 (Europe/Moscow))"
        assert (_calls(rows, "Итого"), _calls(rows, before)) == ("5", "0")

        # Dates of one's own: the period typed, against as many days just before (27 Nov – 1 Dec).
        await page.locator("#f-from").fill("2026-12-02")
        await page.locator("#f-to").fill("2026-12-07")
        await page.locator("#period-picker button[type=submit]").click()
        await expect(page.locator("[data-testid=report-compared]")).to_contain_text(
            _days(date(2026, 11, 27), date(2026, 12, 1)), timeout=SEEN
        )
        await expect(presets.locator("[aria-current=true]")).to_have_count(0)
        await context.close()


async def test_on_the_31st_of_march_the_month_so_far_is_compared_with_all_of_february(
    db: Database, browser: Browser
) -> None:
    """1–31 March against 1–28 February (a shorter month is compared whole, never past its end into March)."""
    days = ((date(2026, 3, 31), 1), (date(2026, 2, 28), 2), (date(2026, 3, 1), 1))
    async with _calls_report(db, days, date(2026, 3, 31)) as url:
        context, page = await logged_in(browser, url, "head", PASSWORD, 1366, 900)
        await page.goto(url("/reports/calls-vs-deals?preset=this_month"))
        await expect(page.locator("[data-testid=report-compared]")).to_contain_text(
            _days(date(2026, 2, 1), date(2026, 2, 28)), timeout=SEEN
        )
        rows = await _excel_rows(page)
        previous = "Итого за предыдущий период (2026-02-01 – 2026-02-28 (Europe/Moscow))"
        assert (_calls(rows, "Итого"), _calls(rows, previous)) == ("2", "2")
        await context.close()


def _ru_days(first: int, last: int) -> re.Pattern[str]:
    """November days as the queue page writes them to a Russian reader: «1 нояб. 2026 г. – 2 нояб. 2026 г.»
    (Babel puts a narrow no-break space before «г.», hence any space)."""
    day = r"{} нояб\.\s2026\sг\."
    return re.compile(day.format(first) + r"\s–\s" + day.format(last))


@pytest.mark.parametrize(("width", "height"), SIZES)
async def test_the_queue_reports_presets_pick_their_days_and_its_csv_opens_in_russian_excel(
    db: Database, browser: Browser, width: int, height: int
) -> None:
    """«Вчера» on 2 Nov shows 1 Nov (a picked preset is never overridden by the form's old dates); the CSV
    taken from the queue page has a BOM, `;`, Russian headings, decimal commas and no decimal point Excel
    would read as text or a date; «через запятую» gives the same cells with `,` and decimal points."""
    await qd.load(db, password=PASSWORD)
    routes = queue_routes(
        QueueQueries(db),
        current_manager,
        timezone=qd.TZ,
        translate=translator,
        today=lambda: date(2026, 11, 2),
    )
    async with serving(db, routes) as url:
        context, page = await logged_in(browser, url, "hugo", PASSWORD, width, height)
        await page.goto(url(f"/reports/queues?from={qd.FROM}&to={qd.TO}"))
        period = page.locator("[data-testid=report-period]")
        await expect(period).to_contain_text(_ru_days(1, 2), timeout=SEEN)
        presets = page.locator("[data-testid=presets]")
        await expect(presets.locator("[aria-current=true]")).to_have_count(0)
        await _checked(page, "the queue report")
        await presets.get_by_role("link", name="Вчера").click()
        await expect(period).to_contain_text(_ru_days(1, 1), timeout=SEEN)
        await expect(presets.locator("[aria-current=true]")).to_have_text("Вчера")
        await page.goto(url(f"/reports/queues?from={qd.FROM}&to={qd.TO}"))
        await expect(page.locator("tr.queue").first).to_be_visible(timeout=SEEN)

        rows = await _excel_rows(page)
        assert rows[0][0] == RU.t("report_queues.col_queue"), rows[0]
        cells = [c for r in rows[1:] for c in r]
        assert any(re.fullmatch(r"\d+,\d+", c) for c in cells), "a decimal comma somewhere"
        assert not any(re.fullmatch(r"[+-]?\d+\.\d+", c) for c in cells), (
            "a decimal point Excel reads as text"
        )
        comma = (await download(page, "#download-csv-comma")).decode("utf-8-sig")
        as_comma = list(csv.reader(io.StringIO(comma)))
        assert ";" not in comma.splitlines()[0]
        assert [[re.sub(r"^([+-]?\d+)\.(\d+)$", r"\1,\2", c) for c in r] for r in as_comma] == rows
        await context.close()
