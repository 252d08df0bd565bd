"""The CRM pages as a Russian sales team uses them, in real Chromium at 1366×900 and 390×844: the client list
finds what people type and opens the card, the head's list filters, sorts and pages, an edit persists with its
audit entry, a merge moves numbers, the card's timeline shows a call with its note, a deal is moved to won in
the pipeline, a callback planned for tomorrow survives an outbound call today, numbers are written one way and
each is called with one click, a call transferred out says to which number in the call list and its detail,
a call answered on a mobile says on which number, who answered stays readable word by word on a phone,
another manager's client, lead, deal and task are neither shown nor reachable through the API by id, a write
without the CSRF token is refused — and axe finds no serious or critical violation on any page."""

from __future__ import annotations

import csv
import io
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Protocol
from zoneinfo import ZoneInfo

import pytest
from aiohttp.test_utils import TestServer
from playwright.async_api import Browser, BrowserContext, Locator, Page, Route, expect

from crmtel.callbacks.service import EndedCall, book_ended_calls
from crmtel.calls.service import CallService
from crmtel.config import CallsSettings, DealsSettings, WebSettings
from crmtel.crm.models import Kind, Viewer
from crmtel.crm.web import CrmApi, crm_routes
from crmtel.deals.web import deal_routes
from crmtel.domain import PartyKind
from crmtel.i18n.models import LocaleOptions
from crmtel.phones import display
from crmtel.push.cards import StoreCards
from crmtel.push.context import current_manager, translator
from crmtel.push.hub import Hub
from crmtel.push.notifier import ManagerNames, Notifier
from crmtel.push.web import create_app
from crmtel.reports.queries import ReportQueries
from crmtel.reports.web import report_routes
from crmtel.store.calls import CallRepository
from crmtel.store.crm_deals import CrmDeals
from crmtel.store.crm_lists import PartyLists
from crmtel.store.crm_merge import PartyMerger
from crmtel.store.crm_parties import PartyCards
from crmtel.store.crm_tasks import CrmTasks, NewTask
from crmtel.store.crm_timeline import Timelines
from crmtel.store.db import Database
from crmtel.store.deals import DealRepository, NewDeal
from crmtel.store.history import CallHistory
from crmtel.store.managers import ManagerRepository
from crmtel.store.models import CallRow, TaskRow
from crmtel.store.notes import NoteRepository
from crmtel.store.parties import NewClient, NewLead, PartyRepository
from crmtel.tasks.web import task_routes
from tests.e2e.browsing import SIZES, ZONE, download, excel_rows, russian_page
from tests.e2e.pagecheck import assert_fits, assert_language, assert_no_axe
from tests.e2e.test_popup_calls import index_of, replaying, ringall_trace
from tests.fixtures.call_records import call_record
from tests.fixtures.races import RACES_PROCESSES
from tests.integration.test_web_app import PASSWORD, seed_managers

pytestmark = [pytest.mark.e2e, pytest.mark.slow, RACES_PROCESSES]

SEEN = 8_000
DATA = ("Vera Lebedeva", "Boris Orlov", "Head of Sales", "VIP", "kuznetsov@example.ru")


@dataclass
class Crm:
    """The running app and the seeded records."""

    server: TestServer
    db: Database
    ids: dict[str, int]
    hub: Hub

    def url(self, path: str) -> str:
        return str(self.server.make_url(path))


@asynccontextmanager
async def crm_site(db: Database) -> AsyncIterator[Crm]:
    """The web app with the CRM's routes as app.py mounts them, zone Europe/Moscow; Anna's clients (one reached
    through a contact person), an unassigned duplicate, Boris's client, a past call with a note."""
    managers = await seed_managers(db)
    parties = PartyRepository(db)
    anna, boris = managers["anna"].id, managers["boris"].id
    petrov = await parties.add_client(
        NewClient(name="ИП Пётр Кузнецов", phones=("89167770007",), manager_id=anna)
    )
    romashka = await parties.add_client(
        NewClient(name="ООО «Ромашка»", phones=("+74951234567",), manager_id=anna)
    )
    await parties.add_contact("Семёнова Алёна", ["+79035554433"], [romashka.id])
    await parties.set_details(romashka.id, inn="7723286019")
    dup = await parties.add_client(NewClient(name="Кузнецов (дубль)", phones=("+79030000001",)))
    vector = await parties.add_client(
        NewClient(name="ООО «Вектор»", phones=("+74957654321",), manager_id=boris)
    )
    calls = CallRepository(db)
    at = datetime.now(UTC) - timedelta(days=2)
    record = call_record("past-1", "+79167770007", at, ring=5, talk=175)
    ids = await calls.upsert_many([(record, None)])
    call_id = ids[("pbx1", "past-1")]
    assert call_id is not None
    async with db.session() as session:
        row = await session.get(CallRow, call_id)
        assert row is not None
        row.party_kind, row.party_id, row.party_name = "client", petrov.id, "ИП Пётр Кузнецов"
    await NoteRepository(db).add(
        call_id, anna, topic="Счёт", result="Договорились", comment="Ждёт КП до пятницы"
    )
    deal = await DealRepository(db).add(
        NewDeal(title="Поставка плитки", amount=Decimal("150000.50"), manager_id=anna, client_id=petrov.id)
    )
    repo = ManagerRepository(db)
    api = CrmApi(
        lists=PartyLists(db),
        cards=PartyCards(db),
        merger=PartyMerger(db),
        timelines=Timelines(db),
        parties=parties,
        managers=repo,
        region="RU",
        recordings_dir=None,
        deals=DealsSettings(),
    )
    hub = Hub()
    app = create_app(
        WebSettings(port=0),
        db=db,
        hub=hub,
        routes=(
            report_routes(ReportQueries(db), current_manager, repo, timezone=ZONE, translate=translator),
            crm_routes(api),
            deal_routes(CrmDeals(db), repo, CallHistory(db), DealsSettings(), "RU"),
            task_routes(CrmTasks(db), repo, "RU"),
        ),
        locale=LocaleOptions(timezone=ZONE),
    )
    server = TestServer(app, host="127.0.0.1", port=0)
    await server.start_server()
    try:
        yield Crm(
            server,
            db,
            {
                "anna": anna,
                "petrov": petrov.id,
                "romashka": romashka.id,
                "dup": dup.id,
                "vector": vector.id,
                "deal": deal.id,
                "boris": boris,
            },
            hub,
        )
    finally:
        await server.close()


async def login(
    browser: Browser, site: Crm, who: str, width: int, height: int
) -> tuple[BrowserContext, Page]:
    """A Russian browser of ``who`` on a screen of that size, logged in."""
    context, page = await russian_page(browser, width, height)
    await page.goto(site.url("/"))
    await page.fill("#login-name", who)
    await page.fill("#login-password", PASSWORD)
    await page.click("#login-submit")
    await expect(page.locator("[data-testid=app-header]")).to_be_visible(timeout=SEEN)
    return context, page


async def _anna_called_petrov(db: Database, linkedid: str, talk: float) -> None:
    """Anna's outbound call to Пётр Кузнецов (89167770007), started now and talked ``talk`` seconds, written and
    passed to the callback rules as the call writer does."""
    call = call_record(
        linkedid,
        "89167770007",
        datetime.now(UTC),
        outbound=True,
        talk=talk,
        # As the tracker records it: the outside party's number is what the callback rules match on.
        extra={"party_number": "+79167770007"},
    )
    ids = await CallRepository(db).upsert_many([(call, None)])
    async with db.session() as session:
        await book_ended_calls(
            session, [EndedCall(call, ids[("pbx1", linkedid)], None)], CallsSettings(), 10, title=str
        )


async def _search(page: Page, typed: str) -> list[str]:
    await page.fill("[data-testid=party-search]", typed)
    rows = page.locator("[data-testid=party-row] [data-testid=party-open]")
    await expect(rows.first).to_be_visible(timeout=SEEN)
    await page.wait_for_timeout(400)  # the list is asked 200 ms after the last key
    return [t.strip() for t in await rows.all_inner_texts()]


@pytest.mark.parametrize(("width", "height"), SIZES)
async def test_the_client_list_finds_what_people_type_and_the_card_edits_with_an_audit_entry(
    db: Database, browser: Browser, width: int, height: int
) -> None:
    """8…, spaced and bracketed numbers, a contact person, «ип» lower case, «Петр» for «Пётр»; the found
    client opens; an edit (INN, e-mail, a number with its kind, a tag) persists and the audit says who did it;
    numbers are written +7 916 777-00-07."""
    async with crm_site(db) as site:
        context, page = await login(browser, site, "anna", width, height)
        await page.goto(site.url("/#clients"))
        await expect(page.locator("[data-testid=party-row]")).to_have_count(3, timeout=SEEN)
        assert "ООО «Вектор»" not in await page.locator("[data-testid=party-list]").inner_text()
        await expect(page.locator("[data-testid=party-list]")).to_contain_text("+7 916 777-00-07")
        await assert_fits(page)
        await assert_no_axe(page, "the client list")
        await assert_language(page, "ru", DATA)
        for typed in ("89167770007", "8 (916) 777-00-07", "ип", "Петр", "777-00-07"):
            assert "ИП Пётр Кузнецов" in await _search(page, typed), typed
        assert await _search(page, "семенова") == ["ООО «Ромашка»"]
        await _search(page, "Петр")
        await page.locator("[data-testid=party-open]", has_text="ИП Пётр Кузнецов").click()
        await expect(page.locator("[data-testid=party-title]")).to_have_text("ИП Пётр Кузнецов", timeout=SEEN)
        form = page.locator("[data-testid=party-form]")
        await form.locator("input[name=email]").fill("kuznetsov@example.ru")
        await form.get_by_label("ИНН").fill("1234567890")
        await form.locator("[data-testid=card-save]").click()
        # A wrong INN is refused at its field, nothing is saved.
        await expect(form.locator(".field-error")).to_contain_text("ИНН", timeout=SEEN)
        await form.get_by_label("ИНН").fill("7707083893")
        await form.locator("input[name=tags]").fill("VIP")
        await form.locator("[data-testid=phone-add]").click()
        new_phone = form.locator("[data-testid=phone-row]").last
        await new_phone.locator("input").fill("+7 (495) 111-22-33")
        await new_phone.locator("select").select_option("work")
        await form.locator("[data-testid=card-save]").click()
        await expect(form.locator("[data-testid=card-msg]")).to_have_text("Сохранено.", timeout=SEEN)
        await page.reload()
        await expect(page.locator("[data-testid=party-title]")).to_have_text("ИП Пётр Кузнецов", timeout=SEEN)
        await expect(page.locator("[data-testid=party-form] input[name=email]")).to_have_value(
            "kuznetsov@example.ru"
        )
        await expect(page.locator(".party-head")).to_contain_text("+7 495 111-22-33")
        audit = page.locator("[data-testid=audit]")
        await audit.locator("summary").click()
        entry = audit.locator("[data-testid=audit-entry]").first
        await expect(entry).to_contain_text("Анна Смирнова")
        await expect(entry).to_contain_text("kuznetsov@example.ru")
        await expect(entry).to_contain_text("7707083893")
        # The timeline: the past call with its note.
        call = page.locator("[data-testid=timeline-call]").first
        await expect(call).to_contain_text("Ждёт КП до пятницы", timeout=SEEN)
        await expect(page.locator("[data-testid=timeline-deal]")).to_contain_text("Поставка плитки")
        await assert_fits(page)
        await assert_no_axe(page, "the client's card")
        await assert_language(page, "ru", DATA)
        await context.close()


@pytest.mark.parametrize(("width", "height"), SIZES)
async def test_a_duplicate_is_merged_into_the_client_and_its_number_moves(
    db: Database, browser: Browser, width: int, height: int
) -> None:
    """Found by its number from the card's merge box, confirmed, gone: its number is the client's now."""
    async with crm_site(db) as site:
        context, page = await login(browser, site, "anna", width, height)
        await page.goto(site.url(f"/#clients/client/{site.ids['petrov']}"))
        await expect(page.locator("[data-testid=party-title]")).to_have_text("ИП Пётр Кузнецов", timeout=SEEN)
        merge = page.locator("[data-testid=merge]")
        await merge.locator("summary").click()
        await merge.locator("[data-testid=merge-search]").fill("дубль")
        await expect(merge.locator("[data-testid=merge-pick]")).to_be_visible(timeout=SEEN)
        await assert_no_axe(page, "the merge dialog")
        page.once("dialog", lambda dialog: dialog.accept())
        await merge.locator("[data-testid=merge-pick]").click(timeout=SEEN)
        await expect(page.locator(".party-head")).to_contain_text("+7 903 000-00-01", timeout=SEEN)
        await page.goto(site.url(f"/#clients/client/{site.ids['dup']}"))
        await expect(page.locator("[data-testid=card-error]")).to_be_visible(timeout=SEEN)
        await assert_no_axe(page, "a missing card")
        await context.close()


@pytest.mark.parametrize(("width", "height"), SIZES)
async def test_a_deal_is_moved_through_the_pipeline_to_won(
    db: Database, browser: Browser, width: int, height: int
) -> None:
    """In the pipeline: to «Коммерческое предложение», then won; the list of won deals has it."""
    async with crm_site(db) as site:
        context, page = await login(browser, site, "anna", width, height)
        await page.goto(site.url("/#deals"))
        card = page.locator("[data-testid=deal-card]", has_text="Поставка плитки")
        await expect(card).to_be_visible(timeout=SEEN)
        await expect(page.locator("[data-testid=stage][data-stage=new]")).to_contain_text("150 000,50")
        await assert_no_axe(page, "the pipeline")
        await assert_language(page, "ru", DATA)
        await card.locator("[data-testid=deal-stage]").select_option("proposal")
        moved = page.locator("[data-testid=stage][data-stage=proposal] [data-testid=deal-card]")
        await expect(moved).to_contain_text("Поставка плитки", timeout=SEEN)
        await moved.locator("[data-testid=deal-won]").click()
        await expect(page.locator("[data-testid=deal-card]", has_text="Поставка плитки")).to_have_count(
            0, timeout=SEEN
        )
        await page.locator("[data-testid=deals-mode-list]").click()
        await page.locator("[data-testid=deal-status-filter]").select_option("won")
        await expect(page.locator("[data-testid=deal-list] [data-testid=deal-card]")).to_contain_text(
            "Выиграна", timeout=SEEN
        )
        await assert_fits(page)
        await context.close()
        (won,) = (await CrmDeals(db).find(Viewer(site.ids["anna"], head=True), status="won"))[0]
        assert won.closed_at is not None


@pytest.mark.parametrize(("width", "height"), SIZES)
async def test_the_callbacks_search_box_finds_what_the_client_list_finds_and_opens_the_card(
    db: Database, browser: Browser, width: int, height: int
) -> None:
    """«Перезвонить»'s search box: a number in any spelling, «ип», a contact person, an INN; a hit opens."""
    async with crm_site(db) as site:
        context, page = await login(browser, site, "anna", width, height)
        await page.goto(site.url("/#callbacks"))
        box = page.locator("[data-testid=search-input]")
        hits = page.locator("[data-testid=search-hit]")
        for typed, name in (
            ("89167770007", "ИП Пётр Кузнецов"),
            ("8 (916) 777-00-07", "ИП Пётр Кузнецов"),
            ("ип", "ИП Пётр Кузнецов"),
            ("семенова", "ООО «Ромашка»"),
            ("7723286019", "ООО «Ромашка»"),
        ):
            await box.fill(typed)
            await expect(hits.filter(has_text=name)).to_have_count(1, timeout=SEEN)
        await box.fill("8 (916) 777-00-07")
        hit = hits.filter(has_text="ИП Пётр Кузнецов")
        await expect(hit).to_contain_text("+7 916 777-00-07", timeout=SEEN)
        await assert_no_axe(page, "the callbacks search")
        await hit.locator("[data-testid=search-hit-open]").click()
        await expect(page.locator("[data-testid=party-title]")).to_have_text("ИП Пётр Кузнецов", timeout=SEEN)
        await context.close()


_STICKING_OUT = """(sel) => [...document.querySelectorAll(sel)].filter((e) => e.offsetParent
  && e.getBoundingClientRect().right > document.documentElement.clientWidth + 0.5)
  .map((e) => [e.className, Math.round(e.getBoundingClientRect().right)])"""
_HEADINGS_OVERLAP = """() => {
  const spans = [...document.querySelectorAll('.party-cols > span')].filter((e) => e.offsetParent);
  const out = [];
  for (const e of spans) {
    if (e.scrollWidth > e.clientWidth + 0.5) out.push(['overflows', e.textContent]);
    const r = e.getBoundingClientRect();
    for (const f of spans) {
      if (f === e) continue;
      const q = f.getBoundingClientRect();
      if (r.left < q.right - 0.5 && q.left < r.right - 0.5 && r.top < q.bottom - 0.5 && q.top < r.bottom - 0.5) {
        out.push(['overlaps', e.textContent, f.textContent]);
      }
    }
  }
  return [spans.length, out];
}"""


async def test_list_headings_never_overlap_and_the_call_list_fits_a_phone(
    db: Database, browser: Browser
) -> None:
    """The client list's column headings at 1366×900 (and the narrowest desk width) stay apart; the call list
    at 390 px is no wider."""
    async with crm_site(db) as site:
        for width in (1366, 1000):  # 1000: the narrowest desk layout, every column at its minimum
            context, page = await login(browser, site, "anna", width, 900)
            await page.goto(site.url("/#clients"))
            await expect(page.locator("[data-testid=party-row]").first).to_be_visible(timeout=SEEN)
            count, problems = await page.evaluate(_HEADINGS_OVERLAP)
            assert count >= 5
            assert problems == [], width
            await context.close()
        # A missed call from weeks ago: its full date and «Пропущен» are the row's widest cells.
        weeks_ago = datetime.now(UTC) - timedelta(days=20)
        missed = call_record("missed-old", "+79031112233", weeks_ago, ring=20, talk=None)
        await CallRepository(db).upsert_many([(missed, None)])
        context, page = await login(browser, site, "anna", 390, 844)
        await page.goto(site.url("/#calls"))
        await expect(page.locator(".call-row .c-outcome[data-outcome=missed]").first).to_be_visible(
            timeout=SEEN
        )
        assert await page.evaluate(_STICKING_OUT, ".call-row, .call-row *") == []
        await assert_fits(page)
        await context.close()


# Each cell's lines (the distinct tops of its text's line boxes) and words: more lines than words means a word
# was broken across lines, a column squeezed to a few letters.
_BROKEN_WORDS = """(sel) => [...document.querySelectorAll(sel)].filter((e) => e.offsetParent && e.textContent.trim())
  .map((e) => { const r = document.createRange(); r.selectNodeContents(e);
    const tops = new Set([...r.getClientRects()].map((q) => Math.round(q.top)));
    return [e.textContent, tops.size, e.textContent.trim().split(/\\s+/).length]; })
  .filter(([, lines, words]) => lines > words)"""


async def test_who_answered_a_days_old_call_reads_whole_words_on_a_phone(
    db: Database, browser: Browser
) -> None:
    """At 390 px a call of an earlier day (its full date, «Входящий», «Отвечен» and the talk time beside it) keeps
    «Анна Смирнова (101)» in whole words, not squeezed into a column a letter wide."""
    async with crm_site(db) as site:
        context, page = await login(browser, site, "anna", 390, 844)
        await page.goto(site.url("/#calls"))
        who = page.locator("[data-testid=history-row] .c-who")
        await expect(who.first).to_have_text("Анна Смирнова (101)", timeout=SEEN)
        assert await page.evaluate(_BROKEN_WORDS, "[data-testid=history-row] > *") == []
        await assert_fits(page)
        await context.close()


_EMPTY_BOXES = """() => [...document.querySelectorAll('.filters')]
  .filter((e) => e.offsetHeight > 0 && ![...e.children].some((c) => c.offsetHeight > 0)).length"""


async def test_a_managers_deals_and_tasks_show_no_empty_filter_box_and_the_weeks_days_read_as_russian(
    db: Database, browser: Browser
) -> None:
    """Anna (no manager filter) sees no empty box under the deals' heading nor the week calendar's (its status
    filter hidden), and the week's days are headed «Пн, 7 декабря»: the first letter capital, the month in lower
    case."""
    async with crm_site(db) as site:
        context, page = await login(browser, site, "anna", 1366, 900)
        await page.goto(site.url("/#deals"))
        await expect(page.locator("[data-testid=deal-card]").first).to_be_visible(timeout=SEEN)
        assert await page.evaluate(_EMPTY_BOXES) == 0
        await page.goto(site.url("/#tasks"))
        await page.locator("[data-testid=tasks-mode-week]").click()
        days = page.locator("[data-testid=cal-day] h2")
        await expect(days).to_have_count(7, timeout=SEEN)
        assert await page.evaluate(_EMPTY_BOXES) == 0
        for text in await days.all_inner_texts():
            assert re.fullmatch(r"[А-Яа-я]{2}, \d{1,2} [а-я]+", text), text
        first = await days.first.evaluate("(e) => getComputedStyle(e, '::first-letter').textTransform")
        assert first == "uppercase"
        await context.close()


async def test_the_task_list_pages_on_past_its_first_hundred(db: Database, browser: Browser) -> None:
    """230 open tasks: the list shows 100 and «Показать ещё» until every one is listed, none twice."""
    async with crm_site(db) as site:
        now = datetime.now(UTC)
        async with db.session() as session:
            session.add_all(
                TaskRow(
                    kind="call",
                    manager_id=site.ids["anna"],
                    client_id=site.ids["petrov"],
                    title=f"Задача {i:03d}",
                    status="open",
                    due_at=now + timedelta(hours=i),
                    created_at=now,
                    updated_at=now,
                    source="planned",
                    missed_count=0,
                )
                for i in range(230)
            )
        context, page = await login(browser, site, "anna", 1366, 900)
        await page.goto(site.url("/#tasks"))
        rows = page.locator("[data-testid=task-list] [data-testid=task-row]", has_text="Задача ")
        await expect(rows).to_have_count(100, timeout=SEEN)
        more = page.locator("[data-testid=task-more]")
        await more.click()
        await expect(rows).to_have_count(200, timeout=SEEN)
        await more.click()
        await expect(rows).to_have_count(230, timeout=SEEN)
        await expect(more).to_be_hidden()
        texts = await rows.all_inner_texts()
        assert len({m for t in texts for m in re.findall(r"Задача \d{3}", t)}) == 230
        await context.close()


@pytest.mark.parametrize(("width", "height"), SIZES)
async def test_a_callback_planned_for_tomorrow_survives_an_outbound_call_today(
    db: Database, browser: Browser, width: int, height: int
) -> None:
    """Set on the card for tomorrow 10:00 with the date and time pickers; a 3-second outbound call to the
    number now leaves it open; it is listed, and the week calendar shows it on tomorrow."""
    async with crm_site(db) as site:
        context, page = await login(browser, site, "anna", width, height)
        await page.goto(site.url(f"/#clients/client/{site.ids['petrov']}"))
        task = page.locator("[data-testid=quick-task]")
        await task.locator("summary").click(timeout=SEEN)
        await task.locator("[data-testid=task-save]").click()
        await expect(task.locator("[data-testid=task-msg]")).to_have_text("Сохранено.", timeout=SEEN)
        await _anna_called_petrov(db, "out-today", talk=3)
        await page.goto(site.url("/#tasks"))
        row = page.locator("[data-testid=task-row]", has_text="ИП Пётр Кузнецов")
        await expect(row).to_have_count(1, timeout=SEEN)
        await expect(row).to_have_attribute("data-status", "open")
        await expect(row).to_contain_text("+7 916 777-00-07")
        await assert_no_axe(page, "the task list")
        await assert_language(page, "ru", DATA)
        await page.locator("[data-testid=tasks-mode-week]").click()
        tomorrow = (datetime.now(UTC) + timedelta(days=1)).astimezone(ZoneInfo(ZONE)).date()
        day = page.locator(f"[data-testid=cal-day][data-date='{tomorrow.isoformat()}']")
        if await day.count() == 0:  # tomorrow is in next week (today is Sunday)
            await page.locator("[data-testid=cal-next]").click()
        await expect(day.locator("[data-testid=cal-task]")).to_contain_text("Перезвонить", timeout=SEEN)
        await assert_fits(page)
        await assert_no_axe(page, "the week calendar")
        await context.close()


class _ClickToCall(Protocol):
    async def __call__(self, button: Locator, number: str, shown: str, where: str) -> None: ...


async def _dials_taken(page: Page) -> _ClickToCall:
    """The page's POST /api/dial answered as the PBX answers a click it accepted; the returned check clicks a
    «Позвонить» button and asserts that exactly ``number`` (as stored) was asked for and that the status line
    says in Russian that phone 101 rings for it, written as ``shown``."""
    asked: list[str] = []

    async def pbx_takes_it(route: Route) -> None:
        # Answered as POST /api/dial answers a click the PBX accepted (dial.web.result_json), in the
        # page's own words: message_key and params, no server-side message.
        sent = route.request.post_data_json
        assert isinstance(sent, dict)
        number = str(sent["number"])
        asked.append(number)
        params = {"number": display(number), "extension": "101", "detail": ""}
        body = {
            "type": "dial.result",
            "status": "calling",
            "ok": True,
            "duplicate": False,
            "number": number,
            "message_key": "dial.status.calling",
            "params": params,
        }
        await route.fulfill(status=202, json=body)

    await page.route("**/api/dial", pbx_takes_it)
    status = page.locator("[data-testid=dial-status]")

    async def click_to_call(button: Locator, number: str, shown: str, where: str) -> None:
        await expect(button).to_be_visible(timeout=SEEN)
        await expect(button).to_have_attribute("data-number", number)
        await page.evaluate(
            "() => { const s = document.querySelector('[data-testid=dial-status]'); if (s) s.textContent = ''; }"
        )
        before = len(asked)
        await button.click()
        await expect(status).to_have_text(
            f"Звоним на ваш телефон 101: снимите трубку, и crmtel наберёт {shown}", timeout=SEEN
        )
        await expect(status).to_have_attribute("data-ok", "yes")
        assert asked[before:] == [number], where
        await assert_fits(page)

    return click_to_call


@pytest.mark.parametrize(("width", "height"), SIZES)
async def test_every_number_on_the_crm_pages_is_called_with_one_click(
    db: Database, browser: Browser, width: int, height: int
) -> None:
    """Anna clicks «Позвонить» beside a number in the client list, on the client's card, on its timeline's
    call, on the deal's card in the pipeline and in the deal list, in the task list and in the call list: each
    click POSTs /api/dial with that number as stored, and the page says in Russian that her phone 101 rings
    for that number written one way; her deal with Boris's client shows no number of his client. (The PBX
    side of the click is tested with the fake Asterisk in test_click_to_call.) Desk and phone, axe-clean."""
    async with crm_site(db) as site:
        await DealRepository(db).add(
            NewDeal(
                title="Кровля Вектору",
                amount=Decimal(1),
                manager_id=site.ids["anna"],
                client_id=site.ids["vector"],
            )
        )
        await CrmTasks(db).create(
            NewTask(
                kind="callback",
                title="Перезвонить Алёне",
                due_at=datetime.now(UTC) + timedelta(hours=3),
                manager_id=site.ids["anna"],
                party_kind=Kind.CLIENT,
                party_id=site.ids["romashka"],
                phone="+79035554433",
            ),
            Viewer(site.ids["anna"], head=False),
        )
        context, page = await login(browser, site, "anna", width, height)
        click_to_call = await _dials_taken(page)
        dial = "[data-testid=dial-button]"
        await page.goto(site.url("/#clients"))
        row = page.locator("[data-testid=party-row]").filter(has_text="Пётр Кузнецов")
        await click_to_call(row.locator(dial), "+79167770007", "+7 916 777-00-07", "the client list")
        await assert_no_axe(page, "the client list calling a number")

        await page.goto(site.url(f"/#clients/client/{site.ids['petrov']}"))
        head = page.locator(".card-sub").filter(has=page.locator(dial))
        await click_to_call(head.locator(dial), "+79167770007", "+7 916 777-00-07", "the client's card")
        call = page.locator("[data-testid=timeline-call]")
        await click_to_call(call.locator(dial), "+79167770007", "+7 916 777-00-07", "the card's timeline")
        await assert_no_axe(page, "the client's card calling a number")

        await page.goto(site.url(f"/#clients/client/{site.ids['romashka']}"))
        head = page.locator(".card-sub").filter(has=page.locator(dial))
        await click_to_call(head.locator(dial), "+74951234567", "+7 495 123-45-67", "a company's card")

        await page.goto(site.url("/#deals"))
        deal = page.locator("[data-testid=pipeline] [data-testid=deal-card]").filter(
            has_text="Поставка плитки"
        )
        await expect(deal.locator("[data-testid=deal-phones] .phone-number")).to_have_text(
            ["+7 916 777-00-07"], timeout=SEEN
        )
        await click_to_call(deal.locator(dial), "+79167770007", "+7 916 777-00-07", "the pipeline's deal")
        await assert_no_axe(page, "the pipeline calling a number")
        theirs = page.locator("[data-testid=deal-card]").filter(has_text="Кровля Вектору")
        await expect(theirs).to_contain_text("ООО «Вектор»")
        await expect(theirs.locator("[data-testid=deal-phones]")).to_have_count(0)
        await page.locator("[data-testid=deals-mode-list]").click()
        deal = page.locator("[data-testid=deal-list] [data-testid=deal-card]").filter(
            has_text="Поставка плитки"
        )
        await click_to_call(deal.locator(dial), "+79167770007", "+7 916 777-00-07", "the deal list")
        await assert_no_axe(page, "the deal list calling a number")

        await page.goto(site.url("/#tasks"))
        task = page.locator("[data-testid=task-row]").filter(has_text="Перезвонить Алёне")
        await click_to_call(task.locator(dial), "+79035554433", "+7 903 555-44-33", "the task list")
        await assert_no_axe(page, "the task list calling a number")

        await page.goto(site.url("/#calls"))
        past = page.locator("[data-testid=history-row]")
        await expect(past).to_have_count(1, timeout=SEEN)
        await click_to_call(past.locator(dial), "+79167770007", "+7 916 777-00-07", "the call list")
        await assert_no_axe(page, "the call list calling a number")
        await context.close()


@pytest.mark.parametrize(("width", "height"), SIZES)
async def test_a_call_transferred_out_says_to_which_number_in_the_call_list_and_its_detail(
    db: Database, browser: Browser, width: int, height: int
) -> None:
    """Anna answered a call from +7 495 111-22-33 and blind-transferred it to a colleague's mobile: her call list
    marks that row «Переведён на +7 916 111-00-01» (the number written one way, called with one click), the
    call's detail says the same beside «Ответил», and the call that stayed hers has no such mark; the head sees
    the mark too. Russian, desk and phone, the page no wider than the screen, axe-clean."""
    async with crm_site(db) as site:
        at = datetime.now(UTC) - timedelta(hours=1)
        moved = call_record("xfer-out-1", "+74951112233", at, talk=236, transferred_to="+79161110001")
        await CallRepository(db).upsert_many([(moved, None)])
        context, page = await login(browser, site, "anna", width, height)
        click_to_call = await _dials_taken(page)
        await page.goto(site.url("/#calls"))
        rows = page.locator("[data-testid=history-row]")
        await expect(rows).to_have_count(2, timeout=SEEN)
        row = rows.filter(has_text="+7 495 111-22-33")
        mark = row.locator("[data-testid=history-transferred]")
        await expect(mark).to_have_text(re.compile(r"^↪ Переведён на \+7 916 111-00-01\b"), timeout=SEEN)
        await expect(
            rows.filter(has_text="ИП Пётр Кузнецов").locator("[data-testid=history-transferred]")
        ).to_have_count(0)
        await click_to_call(
            mark.locator("[data-testid=dial-button]"),
            "+79161110001",
            "+7 916 111-00-01",
            "the call list's mark",
        )
        await assert_language(page, "ru", DATA)
        await assert_no_axe(page, "the call list with a call transferred out")

        await row.locator("[data-testid=history-open]").click()
        detail = page.locator("[data-testid=call-detail]")
        await expect(detail).to_be_visible(timeout=SEEN)
        fact = detail.locator("[data-testid=detail-transferred]")
        await expect(fact.locator(".phone-number")).to_have_text("+7 916 111-00-01", timeout=SEEN)
        # The fact's own heading, right before it: «Переведён на», after who answered.
        heading = detail.locator("dt:has(+ [data-testid=detail-transferred])")
        await expect(heading).to_have_text("Переведён на")
        assert await detail.locator("dt").all_inner_texts() == [
            "Когда",
            "Направление",
            "Итог",
            "Звонил на",
            "Ответил",
            "Переведён на",
            "Ожидание",
            "Разговор",
        ]
        await click_to_call(
            fact.locator("[data-testid=dial-button]"), "+79161110001", "+7 916 111-00-01", "the call's detail"
        )
        await assert_language(page, "ru", DATA)
        await assert_no_axe(page, "the detail of a call transferred out")
        await detail.locator("[data-testid=detail-close]").click()
        await context.close()

        context, page = await login(browser, site, "head", width, height)
        await page.goto(site.url("/#calls"))
        mark = page.locator("[data-testid=history-row] [data-testid=history-transferred]")
        await expect(mark).to_have_count(1, timeout=SEEN)
        await expect(mark.locator(".phone-number")).to_have_text("+7 916 111-00-01")
        await assert_fits(page)
        await context.close()


# For every word of the cells matched: the distinct line tops its letters are drawn on (one for a word kept whole).
_WORD_LINES = """(selector) => [...document.querySelectorAll(selector)].flatMap((cell) => {
  const out = [];
  const walker = document.createTreeWalker(cell, NodeFilter.SHOW_TEXT);
  for (let node = walker.nextNode(); node; node = walker.nextNode()) {
    for (const m of node.data.matchAll(/\\S+/g)) {
      const range = document.createRange();
      range.setStart(node, m.index);
      range.setEnd(node, m.index + m[0].length);
      const tops = new Set([...range.getClientRects()].filter((r) => r.width > 0).map((r) => Math.round(r.top)));
      out.push([m[0], tops.size]);
    }
  }
  return out;
})"""


async def test_who_answered_stays_readable_word_by_word_on_a_phone_beside_an_earlier_days_date(
    db: Database, browser: Browser
) -> None:
    """The head's call list at 390×844 with calls from earlier days (the wider date column) answered by «Анна
    Смирнова (101)» and by «Константин Константинопольский (1001)»: every word of «Кто» is drawn on one line —
    the name wraps between words, never letter by letter (the date squeezed the column to one letter a line) —
    in Russian and in English, the page no wider than the screen, axe-clean. (On a desk «Кто» is a 7.5rem
    column: a surname as long as Константинопольский is still broken there.)"""
    width, height = 390, 844
    async with crm_site(db) as site:
        await ManagerRepository(db).save(
            login="kostya", name="Константин Константинопольский", extensions=("1001",)
        )
        at = datetime.now(UTC) - timedelta(days=20)
        long_name = call_record("long-name-1", "+74951112233", at, talk=236, ext="1001")
        await CallRepository(db).upsert_many([(long_name, None)])
        context, page = await login(browser, site, "head", width, height)
        await page.goto(site.url("/#calls"))
        who = page.locator("[data-testid=history-row] .c-who")
        await expect(who).to_have_text(
            ["Константин Константинопольский (1001)", "Анна Смирнова (101)"], timeout=SEEN
        )
        for language, where in (("ru", "Russian"), ("en", "English")):
            if language == "en":
                await page.locator("[data-testid=lang-select]").select_option("en")
                await expect(page.locator("[data-testid=history-row] .c-dir").first).to_have_text(
                    "Inbound", timeout=SEEN
                )
                await expect(who).to_have_count(2, timeout=SEEN)
            words = await page.evaluate(_WORD_LINES, "[data-testid=history-row] .c-who")
            assert [w for w, _ in words] == [
                "Константин",
                "Константинопольский",
                "(1001)",
                "Анна",
                "Смирнова",
                "(101)",
            ]
            assert [w for w, lines in words if lines != 1] == [], (where, words)
            await assert_fits(page)
            await assert_no_axe(page, f"the call list in {where} with long names")
        await context.close()


@pytest.mark.parametrize(("width", "height"), SIZES)
async def test_a_call_forwarded_to_a_mobile_says_on_which_number_it_was_answered(
    db: Database, browser: Browser, width: int, height: int
) -> None:
    """Anna's phone forwarded a call from +7 495 111-22-33 (no caller name) to her mobile, where she answered it:
    the call's detail is headed by the caller's number written one way (+7 495 111-22-33, not +74951112233),
    says «Ответил: Анна Смирнова (101)» and, right after, «Ответил на номере: +7 916 123-45-67», called with one
    click like every number; in English the fact is «Answered on». Desk and phone, axe-clean."""
    async with crm_site(db) as site:
        at = datetime.now(UTC) - timedelta(hours=1)
        forwarded = call_record(
            "forwarded-1", "+74951112233", at, ring=9, talk=111, answered_on="+79161234567"
        )
        await CallRepository(db).upsert_many([(forwarded, None)])
        context, page = await login(browser, site, "anna", width, height)
        click_to_call = await _dials_taken(page)
        await page.goto(site.url("/#calls"))
        row = page.locator("[data-testid=history-row]").filter(has_text="+7 495 111-22-33")
        await row.locator("[data-testid=history-open]").click()
        detail = page.locator("[data-testid=call-detail]")
        await expect(detail.locator("[data-testid=detail-title]")).to_have_text(
            "+7 495 111-22-33", timeout=SEEN
        )
        fact = detail.locator("[data-testid=detail-answered-on]")
        await expect(fact.locator(".phone-number")).to_have_text("+7 916 123-45-67", timeout=SEEN)
        assert await detail.locator("dt").all_inner_texts() == [
            "Когда",
            "Направление",
            "Итог",
            "Звонил на",
            "Ответил",
            "Ответил на номере",
            "Ожидание",
            "Разговор",
        ]
        await expect(detail.locator("dt:text-is('Ответил') + dd")).to_have_text("Анна Смирнова (101)")
        await click_to_call(
            fact.locator("[data-testid=dial-button]"), "+79161234567", "+7 916 123-45-67", "the call's detail"
        )
        await assert_language(page, "ru", DATA)
        await assert_no_axe(page, "the detail of a call answered on a mobile")
        await detail.locator("[data-testid=detail-close]").click()

        await page.locator("[data-testid=lang-select]").select_option("en")
        await expect(row.locator(".c-dir")).to_have_text("Inbound", timeout=SEEN)
        await row.locator("[data-testid=history-open]").click()
        await expect(detail.locator("dt:has(+ [data-testid=detail-answered-on])")).to_have_text(
            "Answered on", timeout=SEEN
        )
        await expect(detail.locator("[data-testid=detail-title]")).to_have_text("+7 495 111-22-33")
        await assert_fits(page)
        await assert_no_axe(page, "the English detail of a call answered on a mobile")
        await context.close()


# Sends a request the way the page's api.js does, with the CSRF token from the cookie or without it.
_FETCH = """async ([method, path, body, withToken]) => {
    const headers = {'Content-Type': 'application/json'};
    if (withToken) {
        const cookie = document.cookie.split('; ').find((c) => c.startsWith('crmtel_csrf='));
        headers['X-CSRF-Token'] = decodeURIComponent(cookie.slice('crmtel_csrf='.length));
    }
    const init = {method, headers};
    if (body !== null) init.body = JSON.stringify(body);
    return (await fetch(path, init)).status;
}"""


@pytest.mark.parametrize(("width", "height"), SIZES)
async def test_a_manager_never_reaches_another_managers_records_and_every_write_needs_the_token(
    db: Database, browser: Browser, width: int, height: int
) -> None:
    """Anna does not see Boris's client, lead, deal or task in her lists, and opening his client or lead by id
    says «not found»; asked directly by id (IDOR), the API answers 404 to every read and write of them, and
    nothing of his changes; a write to her own records without the CSRF token is 403 and the same write with
    it goes through. Russian, desk and phone, axe-clean."""
    async with crm_site(db) as site:
        anna, boris = site.ids["anna"], site.ids["boris"]
        lead = await PartyRepository(db).add_lead(
            NewLead(name="Жуков Андрей", phones=("+79260001122",), manager_id=boris)
        )
        his_deal = await DealRepository(db).add(
            NewDeal(
                title="Кровля для склада",
                amount=Decimal(90000),
                manager_id=boris,
                client_id=site.ids["vector"],
            )
        )
        tasks = CrmTasks(db)
        due = datetime.now(UTC) + timedelta(days=1)
        his_task = await tasks.create(
            NewTask(
                kind="callback",
                title="Позвонить Вектору",
                due_at=due,
                manager_id=boris,
                party_kind=Kind.CLIENT,
                party_id=site.ids["vector"],
            ),
            Viewer(boris, head=False),
        )
        mine = await tasks.create(
            NewTask(
                kind="callback",
                title="Перезвонить Петру",
                due_at=due,
                manager_id=anna,
                party_kind=Kind.CLIENT,
                party_id=site.ids["petrov"],
            ),
            Viewer(anna, head=False),
        )
        context, page = await login(browser, site, "anna", width, height)

        await page.goto(site.url("/#clients"))
        names = page.locator("[data-testid=party-row] [data-testid=party-open]")
        await expect(names).to_have_count(3, timeout=SEEN)  # her two clients and the unassigned duplicate
        assert not any("Вектор" in n for n in await names.all_inner_texts())
        await assert_no_axe(page, "the manager's client list")
        await page.goto(site.url("/#deals"))
        await page.locator("[data-testid=deals-mode-list]").click()
        deals = page.locator("[data-testid=deal-list] [data-testid=deal-card]")
        await expect(deals).to_have_count(1, timeout=SEEN)
        await expect(deals).to_have_attribute("data-id", str(site.ids["deal"]))
        await page.goto(site.url("/#tasks"))
        rows = page.locator("[data-testid=task-row]")
        await expect(rows).to_have_count(1, timeout=SEEN)
        await expect(rows).to_have_attribute("data-id", str(mine.id))
        await assert_fits(page)
        await assert_no_axe(page, "the manager's task list")
        for kind, party in (("client", site.ids["vector"]), ("lead", lead.id)):
            await page.goto(site.url(f"/#clients/{kind}/{party}"))
            await expect(page.locator("[data-testid=card-error]")).to_have_text(
                "Клиент или лид не найден", timeout=SEEN
            )
        await assert_fits(page)
        await assert_no_axe(page, "another manager's card")

        vector, deal_id, task_id = site.ids["vector"], his_deal.id, his_task.id
        his: list[tuple[str, str, object]] = [
            ("GET", f"/api/clients/{vector}", None),
            ("GET", f"/api/leads/{lead.id}", None),
            ("GET", f"/api/deals/{deal_id}", None),
            ("GET", f"/api/clients/{vector}/timeline", None),
            ("PATCH", f"/api/clients/{vector}", {"name": "Взломано"}),
            ("PATCH", f"/api/leads/{lead.id}", {"name": "Взломано"}),
            ("PATCH", f"/api/deals/{deal_id}", {"title": "Взломано"}),
            ("PATCH", f"/api/tasks/{task_id}", {"title": "Взломано"}),
            ("POST", f"/api/tasks/{task_id}/complete", {"result": "Взломано"}),
            ("POST", f"/api/clients/{vector}/notes", {"text": "Взломано"}),
        ]
        for method, path, body in his:
            status = await page.evaluate(_FETCH, [method, path, body, True])
            assert status == 404, f"{method} {path} answered {status}"
        boss = Viewer(boris, head=False)
        client, his_lead = (
            await PartyCards(db).get(Kind.CLIENT, vector, boss),
            await PartyCards(db).get(Kind.LEAD, lead.id, boss),
        )
        deal, task = await CrmDeals(db).get(deal_id, boss), await tasks.get(task_id, boss)
        assert client is not None
        assert his_lead is not None
        assert deal is not None
        assert task is not None
        assert (client.name, his_lead.name, deal.title) == (
            "ООО «Вектор»",
            "Жуков Андрей",
            "Кровля для склада",
        )
        assert (task.title, task.done_at) == ("Позвонить Вектору", None)

        own: list[tuple[str, str, object]] = [
            ("PATCH", f"/api/clients/{site.ids['petrov']}", {"comment": "Без токена"}),
            ("PATCH", f"/api/deals/{site.ids['deal']}", {"title": "Без токена"}),
            ("PATCH", f"/api/tasks/{mine.id}", {"title": "Без токена"}),
            ("POST", f"/api/tasks/{mine.id}/complete", {"result": "Без токена"}),
        ]
        for method, path, body in own:
            status = await page.evaluate(_FETCH, [method, path, body, False])
            assert status == 403, f"{method} {path} without the token answered {status}"
        for method, path, body in own:
            status = await page.evaluate(_FETCH, [method, path, body, True])
            assert status == 200, f"{method} {path} with the token answered {status}"
        await context.close()


@pytest.mark.parametrize(("width", "height"), SIZES)
async def test_a_head_drills_down_from_the_report_to_a_managers_calls(
    db: Database, browser: Browser, width: int, height: int
) -> None:
    """The report's row for Anna links to her calls of the period on the call list, filtered, with names
    instead of extensions; the answered figure links to her answered calls."""
    async with crm_site(db) as site:
        context, page = await login(browser, site, "head", width, height)
        today = datetime.now(ZoneInfo(ZONE)).date()
        start = (today - timedelta(days=7)).isoformat()
        end = (today + timedelta(days=1)).isoformat()
        await page.goto(site.url(f"/reports/calls-vs-deals?from={start}&to={end}"))
        link = page.locator("tr[data-login=anna] [data-testid=drill-manager]")
        await expect(link).to_have_text("Анна Смирнова", timeout=SEEN)
        await link.click()
        rows = page.locator("[data-testid=history-row]")
        await expect(rows).to_have_count(1, timeout=SEEN)
        await expect(rows.first).to_contain_text("Анна Смирнова (101)")
        await expect(page.locator("[data-testid=calls-filter-from]")).to_have_value(start)
        await expect(page.locator("[data-testid=calls-filter-manager]")).to_have_value("anna")
        await assert_fits(page)
        await assert_no_axe(page, "the filtered call list")
        await assert_language(page, "ru", DATA)
        # Missed only: nothing (her one call was answered); the number filter finds it again.
        await page.locator("[data-testid=calls-filter-outcome]").select_option("missed")
        await page.locator("[data-testid=calls-filter-apply]").click()
        await expect(rows).to_have_count(0, timeout=SEEN)
        await page.locator("[data-testid=calls-filter-outcome]").select_option("")
        await page.locator("[data-testid=calls-filter-number]").fill("777-00-07")
        await page.locator("[data-testid=calls-filter-apply]").click()
        await expect(rows).to_have_count(1, timeout=SEEN)
        await context.close()


async def test_the_ringing_card_shows_the_clients_timeline_above_the_fold(
    db: Database, browser: Browser, traces_dir: Path
) -> None:
    """Vera's client rings (a real trace through the fake AMI server): on a 1366×900 screen its open deal and
    its history — the last call with the note written on it — are on the card without scrolling."""
    async with crm_site(db) as site:
        vera = await ManagerRepository(db).by_login("vera")
        assert vera is not None
        client = await PartyRepository(db).add_client(
            NewClient(name="ООО «Ромашка-Юг»", phones=("+79031234567",), manager_id=vera.id)
        )
        past = datetime.now(UTC) - timedelta(days=1)
        ids = await CallRepository(db).upsert_many(
            [
                (
                    call_record(
                        "yesterday",
                        "+79031234567",
                        past,
                        ring=0,
                        talk=120,
                        ext="103",
                        party_kind=PartyKind.CLIENT,
                        party_id=client.id,
                        party_name="ООО «Ромашка-Юг»",
                    ),
                    None,
                )
            ]
        )
        call_row = ids[("pbx1", "yesterday")]
        assert call_row is not None
        await NoteRepository(db).add(
            call_row, vera.id, topic="Опт", result="КП", comment="Выслать прайс на плитку"
        )
        await DealRepository(db).add(
            NewDeal(title="Плитка, 300 м²", amount=Decimal(240000), manager_id=vera.id, client_id=client.id)
        )
        stream = ringall_trace(traces_dir)
        answer = index_of(stream, "DialEnd", DialStatus="ANSWER")
        context, page = await login(browser, site, "vera", 1366, 900)
        await expect(page.locator("[data-testid=conn].on")).to_be_visible(timeout=SEEN)
        async with (
            Notifier(site.hub, StoreCards(db), ManagerNames(db)) as notifier,
            replaying(
                CallService(db, CallsSettings(), PartyRepository(db), notifier), stream, pause_after=answer
            ) as ami,
        ):
            card = page.locator("[data-testid=call-card]")
            await expect(card).to_have_attribute("data-state", "ringing", timeout=SEEN)
            history = card.locator("[data-testid=card-timeline]")
            await expect(history).to_contain_text("Выслать прайс на плитку", timeout=SEEN)
            await expect(card.locator(".open-deals")).to_contain_text("Плитка, 300 м²")
            for part in (history.locator("[data-testid=timeline-call]").first, card.locator(".open-deals")):
                box = await part.bounding_box()
                assert box is not None
                assert box["y"] + box["height"] <= 900, "below the fold"
            await assert_no_axe(page, "a ringing card with the client's timeline")
            await assert_language(page, "ru", (*DATA, "retail"))
            # Once the call has ended the card's timeline is read again: the call itself says how it went
            # (never left as «Идёт» or missing).
            this_call = history.locator("[data-testid=timeline-call]").first
            ami.pause_after = len(stream)
            ami.resume()
            await expect(card).to_have_attribute("data-state", "ended", timeout=SEEN)
            await expect(this_call).to_have_attribute("data-outcome", "answered", timeout=SEEN)
            await expect(history.locator("[data-testid=timeline-call]")).to_have_count(2)
        await context.close()


@pytest.mark.parametrize(("width", "height"), SIZES)
async def test_a_call_in_progress_on_the_timelines_turns_into_its_result_without_a_reload(
    db: Database, browser: Browser, traces_dir: Path, width: int, height: int
) -> None:
    """Vera has her client's page open when the client rings (a real trace through the fake AMI server): the
    call, stored while it rings, is on the ringing card's timeline and on the page's timeline as «Идёт»; when
    it ends both entries show how it went («Отвечен» with its talk time) — the same page, never reloaded."""
    async with crm_site(db) as site:
        vera = await ManagerRepository(db).by_login("vera")
        assert vera is not None
        client = await PartyRepository(db).add_client(
            NewClient(name="ООО «Ромашка-Юг»", phones=("+79031234567",), manager_id=vera.id)
        )
        stream = ringall_trace(traces_dir)
        answer = index_of(stream, "DialEnd", DialStatus="ANSWER")
        context, page = await login(browser, site, "vera", width, height)
        await page.goto(site.url(f"/#clients/client/{client.id}"))
        await expect(page.locator("[data-testid=party-title]")).to_have_text("ООО «Ромашка-Юг»", timeout=SEEN)
        on_page = page.locator(".party-history [data-testid=timeline-call]")
        await expect(page.locator(".party-history [data-testid=timeline]")).to_contain_text(
            "Пока ничего", timeout=SEEN
        )
        await expect(on_page).to_have_count(0)
        await expect(page.locator("[data-testid=conn].on")).to_be_visible(timeout=SEEN)
        await page.evaluate("window.__sameDocument = true")
        async with (
            Notifier(site.hub, StoreCards(db), ManagerNames(db)) as notifier,
            replaying(
                CallService(db, CallsSettings(), PartyRepository(db), notifier), stream, pause_after=answer
            ) as ami,
        ):
            card = page.locator("[data-testid=call-card]")
            await expect(card).to_have_count(1, timeout=SEEN)
            call_id = await card.get_attribute("data-call-id")
            assert call_id
            on_card = card.locator(f"[data-testid=timeline-call][data-call-id='{call_id}']")
            this_on_page = page.locator(
                f".party-history [data-testid=timeline-call][data-call-id='{call_id}']"
            )
            for entry in (on_card, this_on_page):
                await expect(entry).to_have_attribute("data-outcome", "live", timeout=SEEN)
                await expect(entry.locator(".c-outcome")).to_have_text("Идёт")
            await assert_fits(page)
            await assert_no_axe(page, "a call in progress on the card's and the page's timelines")

            ami.pause_after = len(stream)
            ami.resume()
            await expect(card).to_have_attribute("data-state", "ended", timeout=SEEN)
            for entry in (on_card, this_on_page):
                await expect(entry).to_have_attribute("data-outcome", "answered", timeout=SEEN)
                await expect(entry.locator(".c-outcome")).to_have_text("Отвечен")
                await expect(entry).to_contain_text(re.compile(r"\d+ с"))
            await expect(on_page).to_have_count(1)
            assert await page.evaluate("window.__sameDocument === true"), "the page was reloaded"
            await assert_language(page, "ru", (*DATA, "retail"))
        await context.close()


@pytest.mark.parametrize(("width", "height"), SIZES)
async def test_a_heads_csv_download_opens_in_russian_excel(
    db: Database, browser: Browser, width: int, height: int
) -> None:
    """A Russian head downloads the report as CSV from the report page: UTF-8 with a BOM, `;` between cells,
    Russian headings, managers by name, decimal commas; the «через запятую» link gives `,` and decimal points
    with the same cells — on a desk and on a phone, the page axe-clean."""
    async with crm_site(db) as site:
        context, page = await login(browser, site, "head", width, height)
        today = datetime.now(ZoneInfo(ZONE)).date()
        start, end = (today - timedelta(days=7)).isoformat(), (today + timedelta(days=1)).isoformat()
        await page.goto(site.url(f"/reports/calls-vs-deals?from={start}&to={end}"))
        await expect(page.locator("tr[data-login=anna]")).to_be_visible(timeout=SEEN)
        await assert_fits(page)
        await assert_no_axe(page, "the report page")
        rows = await excel_rows(page, "#download-csv")
        assert rows[0][:2] == ["Менеджер", "Логин"], rows[0]
        assert all(len(r) == len(rows[0]) for r in rows), "one column per heading on every line"
        anna = next(r for r in rows if r[1] == "anna")
        assert anna[0] == "Анна Смирнова"
        cells = [c for r in rows[1:] for c in r]
        assert not any(re.fullmatch(r"-?\d+\.\d+", c) for c in cells), "a decimal point Excel reads as text"
        comma = (await download(page, "#download-csv-comma")).decode("utf-8-sig")
        as_comma = list(csv.reader(io.StringIO(comma)))
        assert [[c.replace(".", ",") for c in r] for r in as_comma] == [
            [c.replace(".", ",") for c in r] for r in rows
        ]
        assert ";" not in comma.splitlines()[0]
        await context.close()


@pytest.mark.parametrize(("width", "height"), SIZES)
async def test_a_lead_found_in_the_lead_list_becomes_a_client_with_its_person_number_and_note(
    db: Database, browser: Browser, width: int, height: int
) -> None:
    """Anna finds her lead in the lead list by its company, opens it, writes a note and presses «Сделать
    клиентом»: she lands on the new client's card named after the company, with the lead's number, the lead's
    person with the lead's number as its contact person (found by that number in the client list) and the note
    on its timeline; the lead can no longer be converted."""
    async with crm_site(db) as site:
        anna = site.ids["anna"]
        lead = await PartyRepository(db).add_lead(
            NewLead(
                name="Олег Тарасов", company="ООО «Гранит-Строй»", phones=("+79165550011",), manager_id=anna
            )
        )
        context, page = await login(browser, site, "anna", width, height)
        await page.goto(site.url("/#clients/leads"))
        await page.fill("[data-testid=party-search]", "гранит")
        row = page.locator("[data-testid=party-row]", has_text="Олег Тарасов")
        await expect(row).to_have_count(1, timeout=SEEN)
        await row.locator("[data-testid=party-open]").click()
        await expect(page.locator("[data-testid=party-title]")).to_have_text("Олег Тарасов", timeout=SEEN)
        await page.fill("[data-testid=note-text]", "Хочет счёт на сваи")
        await page.locator("[data-testid=note-save]").click()
        await expect(page.locator(".party-history [data-testid=timeline-note]")).to_contain_text(
            "Хочет счёт на сваи", timeout=SEEN
        )
        await assert_no_axe(page, "a lead's card")
        await page.locator("[data-testid=lead-convert]").click()
        await expect(page.locator("[data-testid=party-title]")).to_have_text(
            "ООО «Гранит-Строй»", timeout=SEEN
        )
        assert re.search(r"#clients/client/\d+$", page.url), page.url
        await expect(page.locator(".party-history [data-testid=timeline-note]")).to_contain_text(
            "Хочет счёт на сваи", timeout=SEEN
        )
        client_id = int(page.url.rsplit("/", 1)[1])
        card = await page.evaluate("async (id) => (await fetch('/api/clients/' + id)).json()", client_id)
        # The lead's person, with the lead's number, is the client's contact person now.
        assert [(c["name"], [p["display"] for p in c["phones"]]) for c in card["contacts"]] == [
            ("Олег Тарасов", ["+7 916 555-00-11"])
        ]
        await assert_fits(page)
        await assert_no_axe(page, "the client a lead became")
        await assert_language(page, "ru", (*DATA, "retail"))
        # The number as people type it finds the client in the client list.
        await page.goto(site.url("/#clients"))
        assert await _search(page, "8 (916) 555-00-11") == ["ООО «Гранит-Строй»"]
        await page.goto(site.url(f"/#clients/lead/{lead.id}"))
        await expect(page.locator("[data-testid=party-title]")).to_have_text("Олег Тарасов", timeout=SEEN)
        await expect(page.locator("[data-testid=lead-convert]")).to_have_count(0)
        await context.close()


@pytest.mark.parametrize(("width", "height"), SIZES)
async def test_an_overdue_task_is_handed_to_boris_who_completes_it_with_a_result(
    db: Database, browser: Browser, width: int, height: int
) -> None:
    """Anna's call-back due yesterday is marked overdue in the head's task list; the head hands it to Boris;
    Boris sees it in his list and completes it with «Договорились о встрече», which the list shows once closed;
    he reopens it. Russian, desk and phone, axe-clean."""
    async with crm_site(db) as site:
        task = await CrmTasks(db).create(
            NewTask(
                kind="callback",
                title="Перезвонить по плитке",
                due_at=datetime.now(UTC) - timedelta(days=1),
                manager_id=site.ids["anna"],
                party_kind=Kind.CLIENT,
                party_id=site.ids["petrov"],
            ),
            Viewer(site.ids["anna"], head=False),
        )
        context, page = await login(browser, site, "head", width, height)
        await page.goto(site.url("/#tasks"))
        row = page.locator(f"[data-testid=task-row][data-id='{task.id}']")
        await expect(row).to_have_attribute("data-overdue", "yes", timeout=SEEN)
        await expect(row.locator("[data-testid=task-overdue]")).to_have_text("Просрочено")
        await expect(row).to_contain_text("Анна Смирнова")
        await assert_fits(page)
        await assert_no_axe(page, "the head's task list")
        await row.locator("[data-testid=task-reassign]").select_option("boris")
        # The row names its manager once the list is read again after the change (the picker's own options
        # name Boris already).
        await expect(row.locator(".task-main > .muted")).to_have_text("Boris Orlov", timeout=SEEN)
        await context.close()

        context, page = await login(browser, site, "boris", width, height)
        await page.goto(site.url("/#tasks"))
        row = page.locator(f"[data-testid=task-row][data-id='{task.id}']")
        await expect(row).to_have_attribute("data-status", "open", timeout=SEEN)
        await row.locator("[data-testid=task-result]").fill("Договорились о встрече")
        await row.locator("[data-testid=task-complete]").click()
        # A closed task leaves the open list; all of them shows it.
        await expect(row).to_have_count(0, timeout=SEEN)
        await page.locator("[data-testid=task-status-filter]").select_option("all")
        await expect(row).to_have_attribute("data-status", "closed", timeout=SEEN)
        await expect(row).to_contain_text("Договорились о встрече")
        await assert_no_axe(page, "a completed task")
        await assert_language(page, "ru", DATA)
        await row.locator("[data-testid=task-reopen]").click()
        await expect(row).to_have_attribute("data-status", "open", timeout=SEEN)
        await context.close()


@pytest.mark.parametrize(("width", "height"), SIZES)
async def test_the_heads_client_list_filters_sorts_and_pages(
    db: Database, browser: Browser, width: int, height: int
) -> None:
    """The head's client list: by responsible manager (and «без менеджера»), with or without open deals, not
    called for 7 days, sorted by name either way; Boris's 56 clients page on with «Показать ещё», none twice."""
    async with crm_site(db) as site:
        boris = await ManagerRepository(db).by_login("boris")
        assert boris is not None
        parties = PartyRepository(db)
        for i in range(55):
            await parties.add_client(
                NewClient(name=f"ООО «Клиент {i:02d}»", phones=(f"+7495100{i:04d}",), manager_id=boris.id)
            )
        context, page = await login(browser, site, "head", width, height)
        await page.goto(site.url("/#clients"))
        names = page.locator("[data-testid=party-row] [data-testid=party-open]")
        await expect(names).to_have_count(50, timeout=SEEN)

        async def shown() -> list[str]:
            await page.wait_for_timeout(400)  # the list is asked 200 ms after the last change
            return [t.strip() for t in await names.all_inner_texts()]

        manager = page.locator("[data-testid=filter-manager]")
        await expect(manager.locator("option[value=anna]")).to_have_count(1, timeout=SEEN)
        await manager.select_option("anna")
        await expect(names).to_have_count(2, timeout=SEEN)
        assert sorted(await shown()) == ["ИП Пётр Кузнецов", "ООО «Ромашка»"]
        await assert_no_axe(page, "the client list filtered by manager")
        await assert_language(page, "ru", DATA)
        # Only Пётр has an open deal; only he was called in the last 7 days.
        await page.locator("[data-testid=filter-deals]").select_option("yes")
        await expect(names).to_have_count(1, timeout=SEEN)
        assert await shown() == ["ИП Пётр Кузнецов"]
        await page.locator("[data-testid=filter-deals]").select_option("no")
        await expect(names).to_have_text(["ООО «Ромашка»"], timeout=SEEN)
        await page.locator("[data-testid=filter-deals]").select_option("")
        await page.locator("[data-testid=filter-silent]").select_option("7")
        await expect(names).to_have_text(["ООО «Ромашка»"], timeout=SEEN)
        await page.locator("[data-testid=filter-silent]").select_option("")
        await manager.select_option("none")
        await expect(names).to_have_text(["Кузнецов (дубль)"], timeout=SEEN)
        # Boris's 56: sorted Я→А, «Вектор» last of all; 50 and then the rest.
        await manager.select_option("boris")
        await page.locator("[data-testid=sort]").select_option("-name")
        await expect(names.first).to_have_text("ООО «Клиент 54»", timeout=SEEN)
        await expect(names).to_have_count(50)
        await page.locator("[data-testid=party-more]").click()
        await expect(names).to_have_count(56, timeout=SEEN)
        listed = await shown()
        assert listed == sorted(listed, reverse=True)
        assert len(set(listed)) == 56
        assert listed[-1] == "ООО «Вектор»"
        await expect(page.locator("[data-testid=party-more]")).to_be_hidden()
        await assert_fits(page)
        await assert_no_axe(page, "the client list sorted and paged")
        await context.close()


@pytest.mark.parametrize(("width", "height"), SIZES)
async def test_the_call_lists_csv_keeps_its_filters_and_opens_in_russian_excel(
    db: Database, browser: Browser, width: int, height: int
) -> None:
    """The head's call list, filtered to Anna's calls of the week, downloads them as Russian Excel reads them:
    a BOM, `;`, Russian headings, the local start time Excel takes for a date, the number written one way
    (never a bare number Excel would cut), the manager by name, seconds with decimal commas; «CSV с запятыми»
    has the same cells with `,` and decimal points; with «Пропущен» picked the file has no call."""
    async with crm_site(db) as site:
        context, page = await login(browser, site, "head", width, height)
        today = datetime.now(ZoneInfo(ZONE)).date()
        start, end = (today - timedelta(days=7)).isoformat(), (today + timedelta(days=1)).isoformat()
        await page.goto(site.url(f"/#calls?manager=anna&from={start}&to={end}"))
        await expect(page.locator("[data-testid=history-row]")).to_have_count(1, timeout=SEEN)
        await assert_fits(page)
        await assert_no_axe(page, "the call list with its downloads")
        await assert_language(page, "ru", DATA)
        rows = await excel_rows(page, "[data-testid=calls-csv]")
        assert rows[0] == [
            "Когда",
            "Направление",
            "Номер",
            "Клиент или лид",
            "Ответил",
            "Итог",
            "Ожидание, с",
            "Разговор, с",
            "Очередь",
            "Результат",
            "Переведён на",
            "Ответил на номере",
        ]
        (call,) = rows[1:]
        assert re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d", call[0]), call[0]
        started = datetime.fromisoformat(call[0]).replace(tzinfo=ZoneInfo(ZONE))
        assert abs(started - (datetime.now(UTC) - timedelta(days=2))) < timedelta(minutes=10)
        assert call[1:8] == [
            "Входящий",
            "+7 916 777-00-07",
            "ИП Пётр Кузнецов",
            "Анна Смирнова (101)",
            "Отвечен",
            "5,0",
            "175,0",
        ]
        comma_csv = (await download(page, "[data-testid=calls-csv-comma]")).decode("utf-8-sig")
        comma = list(csv.reader(io.StringIO(comma_csv)))
        assert comma[1][6:8] == ["5.0", "175.0"]
        assert [r[:6] for r in comma] == [r[:6] for r in rows]
        # The file follows the filters applied on the page.
        await page.locator("[data-testid=calls-filter-outcome]").select_option("missed")
        await page.locator("[data-testid=calls-filter-apply]").click()
        await expect(page.locator("[data-testid=history-row]")).to_have_count(0, timeout=SEEN)
        missed_csv = (await download(page, "[data-testid=calls-csv]")).decode("utf-8-sig")
        missed = list(csv.reader(io.StringIO(missed_csv), delimiter=";"))
        assert missed == rows[:1]
        await context.close()


@pytest.mark.parametrize(("width", "height"), SIZES)
async def test_the_deal_lists_csv_opens_in_russian_excel_and_keeps_its_filter(
    db: Database, browser: Browser, width: int, height: int
) -> None:
    """Anna's deal list downloads as Russian Excel reads it: a BOM, `;`, Russian headings, the stage and status
    in words, the amount 150 000,50 as the number 150000,50; «CSV с запятыми» has 150000.50; with «Выиграна»
    picked the file has no deal."""
    async with crm_site(db) as site:
        context, page = await login(browser, site, "anna", width, height)
        await page.goto(site.url("/#deals"))
        await page.locator("[data-testid=deals-mode-list]").click()
        await expect(page.locator("[data-testid=deal-list] [data-testid=deal-card]")).to_have_count(
            1, timeout=SEEN
        )
        await assert_fits(page)
        await assert_no_axe(page, "the deal list with its downloads")
        await assert_language(page, "ru", DATA)

        rows = await excel_rows(page, "[data-testid=deals-csv]")
        assert rows[0][:6] == ["Сделка", "Клиент или лид", "Этап", "Сумма, ₽", "Статус", "Причина"]
        (deal,) = rows[1:]
        assert deal[:7] == [
            "Поставка плитки",
            "ИП Пётр Кузнецов",
            "Новая",
            "150000,50",
            "Открыта",
            "",
            "Анна Смирнова",
        ]
        assert re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d", deal[9]), deal[9]
        comma = await excel_rows(page, "[data-testid=deals-csv-comma]", ",")
        assert comma[1][3] == "150000.50"
        await page.locator("[data-testid=deal-status-filter]").select_option("won")
        await expect(page.locator("[data-testid=deal-list] [data-testid=deal-card]")).to_have_count(
            0, timeout=SEEN
        )
        assert await excel_rows(page, "[data-testid=deals-csv]") == rows[:1]
        await context.close()


@pytest.mark.parametrize(("width", "height"), SIZES)
async def test_the_task_lists_csv_opens_in_russian_excel_and_keeps_its_filter(
    db: Database, browser: Browser, width: int, height: int
) -> None:
    """The head's task list downloads as Russian Excel reads it: a BOM, `;`, Russian headings, the due time
    local as a date Excel reads, the kind in words, the number written one way, «Просрочено» for Anna's
    overdue call-back, her name; «CSV с запятыми» has the same cells with `,`; with «Выполненные» picked the
    file has none."""
    async with crm_site(db) as site:
        due = datetime(2026, 12, 1, 7, 0, tzinfo=UTC)  # 10:00 in Moscow, long past
        await CrmTasks(db).create(
            NewTask(
                kind="callback",
                title="Перезвонить по плитке",
                due_at=due,
                manager_id=site.ids["anna"],
                party_kind=Kind.CLIENT,
                party_id=site.ids["petrov"],
            ),
            Viewer(site.ids["anna"], head=False),
        )
        context, page = await login(browser, site, "head", width, height)
        await page.goto(site.url("/#tasks"))
        await expect(page.locator("[data-testid=task-row]")).to_have_count(1, timeout=SEEN)
        await assert_fits(page)
        await assert_no_axe(page, "the task list with its downloads")
        await assert_language(page, "ru", DATA)

        rows = await excel_rows(page, "[data-testid=tasks-csv]")
        assert rows[0][:3] == ["Срок", "Тип задачи", "Что сделать"]
        (task,) = rows[1:]
        assert task[:8] == [
            "2026-12-01 10:00",
            "Перезвонить",
            "Перезвонить по плитке",
            "ИП Пётр Кузнецов",
            "+7 916 777-00-07",
            "Анна Смирнова",
            "Открыта",
            "Просрочено",
        ]
        assert await excel_rows(page, "[data-testid=tasks-csv-comma]", ",") == rows
        await page.locator("[data-testid=task-status-filter]").select_option("closed")
        await expect(page.locator("[data-testid=task-row]")).to_have_count(0, timeout=SEEN)
        assert await excel_rows(page, "[data-testid=tasks-csv]") == rows[:1]
        await context.close()


@pytest.mark.parametrize(("width", "height"), SIZES)
async def test_the_client_lists_csv_is_what_the_list_shows_and_opens_in_russian_excel(
    db: Database, browser: Browser, width: int, height: int
) -> None:
    """The head's client list downloads as Russian Excel reads it: a BOM, `;`, Russian headings, the clients in
    the list's order, numbers written one way (never a bare number Excel would cut), the manager by name, the
    open deals as a number, the last call's local time; searched for «ип», the file has Пётр alone; «CSV с
    запятыми» has the same cells with `,`."""
    async with crm_site(db) as site:
        context, page = await login(browser, site, "head", width, height)
        await page.goto(site.url("/#clients"))
        names = page.locator("[data-testid=party-row] [data-testid=party-open]")
        await expect(names).to_have_count(4, timeout=SEEN)
        await assert_fits(page)
        await assert_no_axe(page, "the client list with its downloads")
        await assert_language(page, "ru", DATA)

        rows = await excel_rows(page, "[data-testid=party-csv]")
        assert rows[0][:2] == ["Название или ФИО", "Компания"]
        assert [r[0] for r in rows[1:]] == [t.strip() for t in await names.all_inner_texts()]
        petrov = next(r for r in rows if r[0] == "ИП Пётр Кузнецов")
        assert (petrov[4], petrov[5], petrov[6]) == ("Анна Смирнова", "+7 916 777-00-07", "1")
        assert re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d", petrov[7]), petrov[7]
        assert await excel_rows(page, "[data-testid=party-csv-comma]", ",") == rows
        assert await _search(page, "ип") == ["ИП Пётр Кузнецов"]
        assert [r[0] for r in (await excel_rows(page, "[data-testid=party-csv]"))[1:]] == ["ИП Пётр Кузнецов"]
        await context.close()


@pytest.mark.parametrize(("width", "height"), SIZES)
async def test_a_deal_is_lost_only_with_a_reason_which_the_list_names(
    db: Database, browser: Browser, width: int, height: int
) -> None:
    """«Проиграна» without a reason is refused at the card («Укажите причину проигрыша»); with «Дорого» the deal
    leaves the open ones and the lost list shows it with its reason."""
    async with crm_site(db) as site:
        context, page = await login(browser, site, "anna", width, height)
        await page.goto(site.url("/#deals"))
        await page.locator("[data-testid=deals-mode-list]").click()
        card = page.locator("[data-testid=deal-list] [data-testid=deal-card]", has_text="Поставка плитки")
        await expect(card).to_have_attribute("data-status", "open", timeout=SEEN)
        await card.locator("[data-testid=deal-lost]").click()
        await card.locator("[data-testid=deal-lost-confirm]").click()
        await expect(card.locator("[data-testid=deal-action-msg]")).to_have_text(
            "Укажите причину проигрыша", timeout=SEEN
        )
        await assert_no_axe(page, "a deal being lost")
        await card.locator("[data-testid=deal-lost-reason]").select_option("price")
        await card.locator("[data-testid=deal-lost-confirm]").click()
        await page.locator("[data-testid=deal-status-filter]").select_option("lost")
        lost = page.locator("[data-testid=deal-list] [data-testid=deal-card]", has_text="Поставка плитки")
        await expect(lost).to_have_attribute("data-status", "lost", timeout=SEEN)
        await expect(lost).to_contain_text("Дорого")
        await assert_fits(page)
        await assert_language(page, "ru", DATA)
        await context.close()
        (found,) = (await CrmDeals(db).find(Viewer(site.ids["anna"], head=True), status="lost"))[0]
        assert found.lost_reason == "price"


@pytest.mark.parametrize(("width", "height"), SIZES)
async def test_a_task_closed_by_a_long_call_names_the_call_and_is_reopened(
    db: Database, browser: Browser, width: int, height: int
) -> None:
    """A callback due in an hour is closed by a 2-minute answered call to the client now: the task list says
    «Закрыта звонком» with the call's time and length; the manager reopens it."""
    async with crm_site(db) as site:
        task = await CrmTasks(db).create(
            NewTask(
                kind="callback",
                title="Перезвонить про сваи",
                due_at=datetime.now(UTC) + timedelta(hours=1),
                manager_id=site.ids["anna"],
                party_kind=Kind.CLIENT,
                party_id=site.ids["petrov"],
            ),
            Viewer(site.ids["anna"], head=False),
        )
        await _anna_called_petrov(db, "out-long", talk=120)
        context, page = await login(browser, site, "anna", width, height)
        await page.goto(site.url("/#tasks"))
        await page.locator("[data-testid=task-status-filter]").select_option("all")
        row = page.locator(f"[data-testid=task-row][data-id='{task.id}']")
        await expect(row).to_have_attribute("data-status", "closed", timeout=SEEN)
        await expect(row.locator("[data-testid=task-closed-by-call]")).to_contain_text(
            "Закрыта звонком", timeout=SEEN
        )
        await expect(row.locator("[data-testid=task-closed-by-call]")).to_contain_text("2 мин")
        await assert_fits(page)
        await assert_no_axe(page, "a task closed by a call")
        await assert_language(page, "ru", DATA)
        await row.locator("[data-testid=task-reopen]").click()
        await expect(row).to_have_attribute("data-status", "open", timeout=SEEN)
        await context.close()


@pytest.mark.parametrize(("width", "height"), SIZES)
async def test_the_call_list_filters_by_direction_and_recording_and_the_day_calendar_steps(
    db: Database, browser: Browser, width: int, height: int
) -> None:
    """Anna's calls: «Исходящий» shows her recorded outbound call alone, «Входящий» the client's call, «Только с
    записью» the recorded one; the day calendar shows today's task today and tomorrow's on «Вперёд»."""
    async with crm_site(db) as site:
        at = datetime.now(UTC) - timedelta(hours=3)
        outbound = call_record(
            "out-rec", "+74951234567", at, outbound=True, ring=6, talk=54, recording_file="out-rec.wav"
        )
        await CallRepository(db).upsert_many([(outbound, None)])
        zone = ZoneInfo(ZONE)
        today = datetime.now(zone).date()
        for title, day in (("Позвонить сегодня", today), ("Встреча завтра", today + timedelta(days=1))):
            await CrmTasks(db).create(
                NewTask(
                    kind="call",
                    title=title,
                    due_at=datetime.combine(day, datetime.min.time(), zone).replace(hour=12),
                    manager_id=site.ids["anna"],
                    party_kind=Kind.CLIENT,
                    party_id=site.ids["petrov"],
                ),
                Viewer(site.ids["anna"], head=False),
            )
        context, page = await login(browser, site, "anna", width, height)
        await page.goto(site.url("/#calls"))
        rows = page.locator("[data-testid=history-row]")
        await expect(rows).to_have_count(2, timeout=SEEN)
        await page.locator("[data-testid=calls-filter-box] summary").click()
        direction = page.locator("[data-testid=calls-filter-direction]")
        apply = page.locator("[data-testid=calls-filter-apply]")
        await direction.select_option("outbound")
        await apply.click()
        await expect(rows).to_have_count(1, timeout=SEEN)
        await expect(rows.first).to_contain_text("+7 495 123-45-67")
        await direction.select_option("inbound")
        await apply.click()
        await expect(rows).to_have_count(1, timeout=SEEN)
        await expect(rows.first).to_contain_text("+7 916 777-00-07")
        await direction.select_option("")
        await page.locator("[data-testid=calls-filter-recording]").check()
        await apply.click()
        await expect(rows).to_have_count(1, timeout=SEEN)
        await expect(rows.first).to_contain_text("+7 495 123-45-67")
        await assert_fits(page)
        await assert_no_axe(page, "the call list filtered")

        await page.goto(site.url("/#tasks"))
        await page.locator("[data-testid=tasks-mode-day]").click()
        shown = page.locator(f"[data-testid=cal-day][data-date='{today.isoformat()}']")
        await expect(shown).to_contain_text("Позвонить сегодня", timeout=SEEN)
        assert "Встреча завтра" not in await shown.inner_text()
        await assert_no_axe(page, "the day calendar")
        await assert_language(page, "ru", DATA)
        await page.locator("[data-testid=cal-next]").click()
        tomorrow = page.locator(
            f"[data-testid=cal-day][data-date='{(today + timedelta(days=1)).isoformat()}']"
        )
        await expect(tomorrow).to_contain_text("Встреча завтра", timeout=SEEN)
        await expect(page.locator("[data-testid=cal-day]")).to_have_count(1)
        await assert_fits(page)
        await context.close()
