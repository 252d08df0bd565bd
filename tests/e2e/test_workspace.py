"""The managers' workspace as a Russian or English user meets it, on a desk and on a phone, in real Chromium.

A real trace (ring-all queue: 102 and 103 ring, 103 answers) runs through the fake AMI server, the real
client, call service, notifier and web app; Vera (103) works the call from her card while it rings, is
answered and ends, then looks at her history and her report.
"""

from __future__ import annotations

import contextlib
import math
import wave
from collections.abc import AsyncIterator
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from aiohttp.test_utils import TestServer
from playwright.async_api import Browser, Page, expect

from crmtel.ami.protocol import Message
from crmtel.calls.service import CallService
from crmtel.config import CallsSettings, WebSettings
from crmtel.domain import Category
from crmtel.fakepbx.server import Recorded, StreamItem, load_ami, recording_epoch
from crmtel.i18n import Translator
from crmtel.i18n.models import LocaleOptions
from crmtel.push.cards import StoreCards
from crmtel.push.context import current_manager, translator
from crmtel.push.hub import Hub
from crmtel.push.notifier import ManagerNames, Notifier
from crmtel.push.web import create_app
from crmtel.reports.queries import ReportQueries
from crmtel.reports.web import report_routes
from crmtel.store.db import Database
from crmtel.store.deals import DealRepository
from crmtel.store.managers import ManagerRepository
from crmtel.store.notes import NoteRepository
from crmtel.store.parties import NewClient, PartyRepository
from tests.e2e.pagecheck import assert_language, axe_violations
from tests.e2e.test_popup_calls import _call_stored, index_of, replaying, ringall_trace
from tests.fixtures.fake_ami import wait_until
from tests.fixtures.races import RACES_PROCESSES
from tests.integration.test_web_app import PASSWORD, seed_managers

pytestmark = [pytest.mark.e2e, pytest.mark.slow, RACES_PROCESSES]

ZONE = "Europe/Moscow"  # the configured zone; the browser's own zone must not matter
SEEN = 5_000
CLIENT = "ООО «Ромашка»"
COMMENT = "Просил перезвонить после обеда, счёт на 150 000 ₽"
# What the page shows as stored, in whatever language: people's names, the client, numbers.
DATA = (
    CLIENT,
    "retail",
    "Vera Lebedeva",
    "Boris Orlov",
    "+79031234567",
    "Europe/Moscow",
    "vera",
    "103",
    "102",
)
RECORDING = "in-4951234567-1795462077.20.wav"  # the trace's MIXMONITOR_FILENAME, below the recordings folder
AMOUNTS = {"ru": "150 000,50", "en": "150,000.50"}
CASES = [
    pytest.param("ru-RU", "Europe/Moscow", 1366, 900, id="ru-desk"),
    pytest.param("ru-RU", "Europe/Moscow", 390, 844, id="ru-phone"),
    pytest.param("en-US", "UTC", 1366, 900, id="en-desk"),
    pytest.param("en-US", "UTC", 390, 844, id="en-phone"),
]


def _write_wav(path: Path) -> None:
    """Half a second of a 440 Hz tone, as a PBX's 8 kHz mono recording."""
    frames = bytes(
        b
        for i in range(4000)
        for b in int(8000 * math.sin(2 * math.pi * 440 * i / 8000)).to_bytes(2, "little", signed=True)
    )
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(8000)
        out.writeframes(frames)


def _first(stream: list[StreamItem], event: str, header: str, prefix: str) -> Recorded:
    for item in stream:
        if isinstance(item, Recorded):
            msg = Message(item.headers)
            if msg.event == event and (msg.get(header) or "").startswith(prefix):
                return item
    raise AssertionError(f"no {event} with {header} {prefix}…")


def _clock(moment: datetime, lang: str) -> str:
    """The hour and minute as the page writes them: 09:27 (ru), 9:27 PM (en)."""
    return moment.strftime("%H:%M") if lang == "ru" else f"{moment.hour % 12 or 12}:{moment:%M %p}"


def _day(moment: datetime, lang: str) -> str:
    return moment.strftime("%d.%m.%Y") if lang == "ru" else moment.strftime("%m/%d/%Y")


async def _text(page: Page, selector: str) -> str:
    text = await page.locator(selector).first.inner_text()
    return " ".join(text.replace("\u202f", " ").replace("\xa0", " ").split())


async def _fits(page: Page, selector: str) -> None:
    """The page is no wider than the screen and ``selector`` lies wholly inside the viewport."""
    size = page.viewport_size
    assert size is not None
    assert await page.evaluate("document.documentElement.scrollWidth") <= size["width"]
    box = await page.locator(selector).first.bounding_box()
    assert box is not None
    assert box["x"] >= 0
    assert box["y"] >= 0
    assert box["x"] + box["width"] <= size["width"] + 0.5
    assert box["y"] + box["height"] <= size["height"] + 0.5


async def _no_axe_violations(page: Page, where: str) -> None:
    found = await axe_violations(page)
    assert found == [], f"axe on {where}: {found}"


@contextlib.asynccontextmanager
async def workspace(
    db: Database, recordings: Path = Path("/nonexistent")
) -> AsyncIterator[tuple[TestServer, CallService]]:
    """The web app (with the report routes) and the call pipeline as app.py wires them, zone Europe/Moscow."""
    managers = await seed_managers(db)
    await PartyRepository(db).add_client(
        NewClient(
            name=CLIENT,
            phones=("+79031234567",),
            category=Category.RETAIL,
            manager_id=managers["vera"].id,
            turnover=Decimal("1234567.80"),
            turnover_month=date(2026, 10, 1),
        )
    )
    reports = report_routes(
        ReportQueries(db), current_manager, ManagerRepository(db), timezone=ZONE, translate=translator
    )
    hub = Hub()
    app = create_app(
        WebSettings(port=0, recordings_dir=recordings),
        db=db,
        hub=hub,
        routes=(reports,),
        locale=LocaleOptions(timezone=ZONE),
    )
    web = TestServer(app, host="127.0.0.1", port=0)
    await web.start_server()
    try:
        async with Notifier(hub, StoreCards(db), ManagerNames(db)) as notifier:
            yield web, CallService(db, CallsSettings(), PartyRepository(db), notifier)
    finally:
        await web.close()


@pytest.mark.parametrize(("locale", "browser_zone", "width", "height"), CASES)
async def test_a_call_worked_from_the_card_in_the_users_language_on_any_screen(
    db: Database,
    browser: Browser,
    traces_dir: Path,
    tmp_path: Path,
    locale: str,
    browser_zone: str,
    width: int,
    height: int,
) -> None:
    """Language, configured-zone times, fit on the screen, typed text kept ringing→answered→ended, saved
    note/deal/callback (amount in the locale's form), history time and detail, report, and axe on each."""
    lang = locale[:2]
    tr = Translator.for_locale(lang, zone=ZONE)
    phone = width < 600
    stream = ringall_trace(traces_dir)
    epoch = recording_epoch(stream)
    assert epoch is not None
    zone = ZoneInfo(ZONE)
    rang_at = datetime.fromtimestamp(epoch + _first(stream, "DialBegin", "DestChannel", "PJSIP/103").t, zone)
    started_at = datetime.fromtimestamp(
        epoch + _first(stream, "Newchannel", "Channel", "PJSIP/trunk").t, zone
    )
    answer = index_of(stream, "DialEnd", DialStatus="ANSWER")
    hangup = index_of(stream, "Hangup", Channel="PJSIP/trunk-00000014")

    # On the English runs the recording is on disk, on the Russian ones it is missing.
    with_recording = lang == "en"
    if with_recording:
        _write_wav(tmp_path / RECORDING)
    async with workspace(db, tmp_path) as (web, service):
        context = await browser.new_context(
            locale=locale,
            timezone_id=browser_zone,
            viewport={"width": width, "height": height},
            is_mobile=phone,
            has_touch=phone,
        )
        page = await context.new_page()
        errors: list[str] = []
        page.on("pageerror", lambda err: errors.append(str(err)))
        await page.goto(str(web.make_url("/")))
        await assert_language(page, lang)
        await page.fill("#login-name", "vera")
        await page.fill("#login-password", PASSWORD)
        await page.click("#login-submit")
        await expect(page.locator("[data-testid=conn].on")).to_be_visible(timeout=SEEN)

        async with replaying(service, stream, pause_after=answer) as ami:
            card = page.locator("[data-testid=call-card]")
            await expect(card).to_have_attribute("data-state", "ringing", timeout=SEEN)
            await expect(card.locator("[data-testid=card-name]")).to_have_text(CLIENT)
            await expect(card.locator("[data-testid=card-status]")).to_have_text(
                tr.t("page.card.ringing_queue", ext="103", queue="retail")
            )
            # The time is the AMI event's, in the configured zone (not the browser's, not UTC).
            assert await _text(page, "[data-testid=card-time]") == _clock(rang_at, lang)
            await _fits(page, "[data-testid=call-card]")
            await assert_language(page, lang, DATA)

            # While it rings: a comment typed, the deal form opened and filled.
            note = card.locator("[data-testid=action-note]")
            if not await note.evaluate("d => d.open"):
                await note.locator("summary").click()
            await note.locator("textarea[name=comment]").fill(COMMENT)
            deal = card.locator("[data-testid=action-deal]")
            await deal.locator("summary").click()
            await deal.locator("input[name=title]").fill("Поставка")
            await deal.locator("input[name=amount]").fill(AMOUNTS[lang])
            await _no_axe_violations(page, "the main page with an open card")

            ami.resume()
            ami.pause_after = hangup
            await expect(card).to_have_attribute("data-state", "mine", timeout=SEEN)
            await expect(note.locator("textarea[name=comment]")).to_have_value(COMMENT)
            await expect(deal.locator("input[name=amount]")).to_have_value(AMOUNTS[lang])

            ami.resume()
            await expect(card).to_have_attribute("data-state", "ended", timeout=SEEN)
            await expect(card.locator("[data-testid=card-status]")).to_contain_text(
                tr.t("page.card.ended", talk="").strip()
            )
            await wait_until(lambda: _call_stored(db))
        call_row = await _call_stored(db)
        assert call_row is not None
        await expect(note.locator("textarea[name=comment]")).to_have_value(COMMENT)
        assert await deal.evaluate("d => d.open")
        await expect(deal.locator("input[name=title]")).to_have_value("Поставка")

        # Each action saved by a click on its button.
        saved = tr.t("page.action.saved")
        await deal.locator("[data-testid=action-save]").click()
        await expect(deal.locator("[data-testid=action-msg]")).to_have_text(saved, timeout=SEEN)
        await note.locator("[data-testid=action-save]").click()
        await expect(note.locator("[data-testid=action-msg]")).to_have_text(saved, timeout=SEEN)
        callback = card.locator("[data-testid=action-callback]")
        await callback.locator("summary").click()
        await callback.locator("input[name=title]").fill("Счёт")
        # Planned with a date and a time picker (tomorrow 10:00 in the configured zone), not «in N minutes».
        tomorrow = (datetime.now(UTC) + timedelta(days=1)).astimezone(ZoneInfo(ZONE)).date()
        await expect(callback.locator("input[name=due_date]")).to_have_attribute("type", "date")
        await callback.locator("input[name=due_date]").fill(tomorrow.isoformat())
        await callback.locator("input[name=due_time]").fill("10:00")
        await callback.locator("input[name=title]").press("Enter")  # Enter saves
        await expect(callback.locator("[data-testid=action-msg]")).to_have_text(saved, timeout=SEEN)
        (stored_deal,) = await DealRepository(db).for_calls([call_row])
        assert (stored_deal.title, stored_deal.amount) == ("Поставка", Decimal("150000.50"))
        (stored_note,) = await NoteRepository(db).for_call(call_row)
        assert stored_note.comment == COMMENT
        (task,) = await NoteRepository(db).tasks_for_call(call_row)
        assert task.title == "Счёт"
        due = task.due_at.astimezone(ZoneInfo(ZONE))
        assert (due.date(), due.hour, due.minute) == (tomorrow, 10, 0)

        # The history: the call's start in the configured zone; its detail opens over the list.
        row = page.locator("[data-testid=history-row]")
        await expect(row).to_have_count(1, timeout=SEEN)
        when = await _text(page, "[data-testid=history-time]")
        assert when == f"{_day(started_at, lang)}, {_clock(started_at, lang)}"
        if phone:
            await page.locator("[data-testid=card-close]").click()
        else:
            await note.locator("textarea[name=comment]").press("Escape")  # Esc closes the card
        await expect(card).to_have_count(0)
        await _fits(page, "[data-testid=history-row]")
        await assert_language(page, lang, DATA)
        await row.locator("[data-testid=history-open]").click()
        detail = page.locator("[data-testid=call-detail]")
        await expect(detail).to_be_visible()
        await expect(detail.locator("[data-testid=detail-title]")).to_have_text(CLIENT)
        await expect(detail).to_contain_text(COMMENT)
        await _fits(page, "[data-testid=call-detail]")
        await assert_language(page, lang, (*DATA, COMMENT, "Поставка", "Счёт"))
        await _no_axe_violations(page, "the call detail")
        await page.keyboard.press("Escape")
        await expect(detail).to_be_hidden()
        play = row.locator("[data-testid=history-play]")
        if with_recording:
            # The recording is on disk: the row offers it, and a click puts a player there.
            await expect(play).to_have_count(1)
            await play.click()
            await expect(row.locator("audio[data-testid=history-audio]")).to_have_count(1)
        else:
            # MixMonitor named a file that is not there: no player, no button pretending there is one.
            assert await page.locator("audio, [data-testid=history-play]").count() == 0
        await _no_axe_violations(page, "the main page")

        # The report: same header, same language, fits the screen.
        await page.locator("[data-testid=nav-reports]").click()
        await expect(page.locator("#report-table")).to_be_visible(timeout=SEEN)
        await expect(page.locator("[data-testid=me]")).to_contain_text("Vera Lebedeva")
        await expect(page.locator("[data-testid=logout]")).to_be_visible()
        await assert_language(page, lang, DATA)
        size = page.viewport_size
        assert size is not None
        assert await page.evaluate("document.documentElement.scrollWidth") <= size["width"]
        await _no_axe_violations(page, "the report")
        await page.locator("[data-testid=nav-calls]").click()
        await expect(page.locator("[data-testid=history-row]")).to_have_count(1, timeout=SEEN)
        assert errors == []
        await context.close()


async def test_switching_language_relabels_the_page_keeps_what_was_typed_and_is_remembered(
    db: Database, browser: Browser, traces_dir: Path
) -> None:
    """A Russian browser's user picks English while a call rings: every text turns English at once, the
    comment stays, and the choice is kept for the next visit (stored per user, not per browser)."""
    stream = ringall_trace(traces_dir)
    answer = index_of(stream, "DialEnd", DialStatus="ANSWER")
    async with workspace(db) as (web, service):
        context = await browser.new_context(locale="ru-RU", timezone_id="Europe/Moscow")
        page = await context.new_page()
        await page.goto(str(web.make_url("/")))
        await page.fill("#login-name", "vera")
        await page.fill("#login-password", PASSWORD)
        await page.click("#login-submit")
        await expect(page.locator("[data-testid=conn].on")).to_be_visible(timeout=SEEN)
        async with replaying(service, stream, pause_after=answer):
            card = page.locator("[data-testid=call-card]")
            await expect(card).to_have_attribute("data-state", "ringing", timeout=SEEN)
            comment = card.locator("[data-testid=action-note] textarea[name=comment]")
            await comment.fill(COMMENT)
            await page.select_option("[data-testid=lang-select]", "en")
            await expect(page.locator("html")).to_have_attribute("lang", "en", timeout=SEEN)
            await expect(card.locator("[data-testid=card-status]")).to_have_text(
                "Ringing at 103 · queue retail"
            )
            await expect(page.locator("[data-testid=nav-reports]")).to_have_text("Reports")
            await expect(comment).to_have_value(COMMENT)
            await assert_language(page, "en", (*DATA, COMMENT))
        # Another browser of the same user, still saying Russian, gets English: the choice is the user's.
        other = await browser.new_context(locale="ru-RU", timezone_id="Europe/Moscow")
        second = await other.new_page()
        await second.goto(str(web.make_url("/")))
        await second.fill("#login-name", "vera")
        await second.fill("#login-password", PASSWORD)
        await second.click("#login-submit")
        await expect(second.locator("[data-testid=nav-calls]")).to_have_text("Calls", timeout=SEEN)
        await second.goto(str(web.make_url("/reports/calls-vs-deals")))
        await expect(second.locator("html")).to_have_attribute("lang", "en")
        # The report's own header switches back: the server renders the page again in Russian.
        await second.select_option("[data-testid=lang-select]", "ru")
        await expect(second.locator("html")).to_have_attribute("lang", "ru", timeout=SEEN)
        await expect(second.locator("[data-testid=nav-reports]")).to_have_text("Отчёты")
        await assert_language(second, "ru", DATA)
        await other.close()
        await context.close()


async def test_a_call_ringing_while_the_detail_is_open_shows_its_card_and_the_detail_keeps_its_draft(
    db: Database, browser: Browser, traces_dir: Path
) -> None:
    """On a phone, with a past call's detail open and half-written, a new call's card comes on top (the
    detail steps aside); reopening that detail gives back what was typed."""
    abandoned: list[StreamItem] = list(load_ami(traces_dir / "queue-abandoned.ami"))
    ringall = ringall_trace(traces_dir)
    async with workspace(db) as (web, service):
        context = await browser.new_context(
            locale="ru-RU",
            timezone_id="Europe/Moscow",
            viewport={"width": 390, "height": 844},
            is_mobile=True,
        )
        page = await context.new_page()
        await page.goto(str(web.make_url("/")))
        await page.fill("#login-name", "vera")
        await page.fill("#login-password", PASSWORD)
        await page.click("#login-submit")
        await expect(page.locator("[data-testid=conn].on")).to_be_visible(timeout=SEEN)
        async with replaying(service, abandoned, pause_after=len(abandoned)):
            row = page.locator("[data-testid=history-row]")
            await expect(row).to_have_count(1, timeout=SEEN)
        for close in await page.locator("[data-testid=card-close]").all():
            await close.click()
        await row.locator("[data-testid=history-open]").click()
        detail = page.locator("[data-testid=call-detail]")
        await expect(detail).to_be_visible()
        detail_note = detail.locator("[data-testid=action-note]")
        if not await detail_note.evaluate("d => d.open"):
            await detail_note.locator("summary").click()
        await detail.locator("textarea[name=comment]").fill(COMMENT)

        async with replaying(service, ringall, pause_after=index_of(ringall, "DialEnd", DialStatus="ANSWER")):
            card = page.locator("[data-testid=call-card][data-state=ringing]")
            await expect(card).to_be_visible(timeout=SEEN)
            await expect(detail).to_be_hidden()
            await _fits(page, "[data-testid=call-card][data-state=ringing]")
            await card.locator("[data-testid=action-note] summary").click()  # the card is not covered
        await row.first.locator("[data-testid=history-open]").click()
        await expect(detail.locator("textarea[name=comment]")).to_have_value(COMMENT)
        await context.close()
