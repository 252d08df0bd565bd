"""The manager's live line in Chromium (ru-RU, desk and phone widths): a card and a live timer for a call dialled on
the desk phone, the timer agreeing with the PBX's answer time after a reload, and a page that rides out a server
restart by itself. Calls are recorded traces replayed by the fake AMI server through the real pipeline."""

from __future__ import annotations

import contextlib
import re
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from aiohttp.test_utils import TestServer
from playwright.async_api import Browser, BrowserContext, Page, expect

from crmtel.ami.client import AmiClient
from crmtel.board.service import BoardService, BoardTap, StoreCounts
from crmtel.board.web import board_routes
from crmtel.calls.service import CallService
from crmtel.config import CallsSettings, WebSettings
from crmtel.fakepbx.server import FakeAmiServer, StreamItem, load_ami
from crmtel.push.cards import StoreCards
from crmtel.push.context import current_manager, translator
from crmtel.push.hub import Hub
from crmtel.push.notifier import ManagerNames, Notifier
from crmtel.push.web import create_app
from crmtel.reports.queries import ReportQueries
from crmtel.reports.web import report_routes
from crmtel.results.models import ResultChoices
from crmtel.results.web import result_routes
from crmtel.store.call_results import CallResults
from crmtel.store.db import Database
from crmtel.store.managers import ManagerRepository
from crmtel.store.parties import PartyRepository
from tests.e2e.test_popup_calls import index_of
from tests.fixtures.daemon import free_port
from tests.fixtures.fake_ami import running, settings_for, wait_until
from tests.fixtures.races import RACES_PROCESSES
from tests.integration.test_web_app import PASSWORD, seed_managers

pytestmark = [pytest.mark.e2e, RACES_PROCESSES]

SEEN = 5_000  # ms the browser may take to show a change
VIEWPORTS = [pytest.param((1366, 900), id="1366"), pytest.param((390, 844), id="390")]
OUTBOUND_ID = "pbx1:1795462136.31"
INBOUND_ID = "pbx1:1795462037.14"


@dataclass
class Line:
    """The web app and the call pipeline on a fixed port, restartable like the daemon (the store survives)."""

    db: Database
    browser: Browser
    port: int = field(default_factory=free_port)
    hub: Hub = field(default_factory=Hub)
    service: CallService | None = None
    # The websocket keep-alive ([web] heartbeat): the page's silence clock follows it.
    heartbeat: float = 20.0
    _stack: contextlib.AsyncExitStack | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/"

    async def start(self) -> None:
        """Everything a crmtel start builds for the page: a new hub, notifier, call service and web app."""
        stack = contextlib.AsyncExitStack()
        self.hub = Hub()
        reports = report_routes(
            ReportQueries(self.db),
            current_manager,
            ManagerRepository(self.db),
            timezone="Europe/Moscow",
            translate=translator,
        )
        results = result_routes(ResultChoices(CallsSettings().results), CallResults(self.db))
        board = await stack.enter_async_context(
            BoardService(self.hub, ManagerNames(self.db), StoreCounts(self.db), timezone="Europe/Moscow")
        )
        routes = (reports, results, board_routes(board, current_manager, translator))
        app = create_app(
            WebSettings(port=0, heartbeat=self.heartbeat), db=self.db, hub=self.hub, routes=routes
        )
        web = TestServer(app, host="127.0.0.1", port=self.port)
        await web.start_server()
        stack.push_async_callback(web.close)
        notifier = await stack.enter_async_context(
            Notifier(self.hub, StoreCards(self.db), ManagerNames(self.db))
        )
        self.service = CallService(
            self.db,
            CallsSettings(),
            PartyRepository(self.db),
            BoardTap(notifier, board),
            after_flush=board.calls_stored,
        )
        self._stack = stack

    async def stop(self) -> None:
        """What SIGTERM does to the web side: every websocket closed, the port given up."""
        assert self._stack is not None
        await self._stack.aclose()
        self._stack = None

    async def page(self, login: str, width: int, height: int, context: BrowserContext | None = None) -> Page:
        """A ru-RU browser (a new profile unless ``context``) logged in as ``login``, its websocket live."""
        if context is None:
            context = await self.browser.new_context(
                locale="ru-RU", timezone_id="Europe/Moscow", viewport={"width": width, "height": height}
            )
            page = await context.new_page()
            await page.goto(self.url)
            await page.fill("#login-name", login)
            await page.fill("#login-password", PASSWORD)
            await page.click("#login-submit")
        else:
            page = await context.new_page()
            await page.goto(self.url)
        await expect(page.locator("#conn")).to_have_text("на связи", timeout=SEEN)
        return page


@contextlib.asynccontextmanager
async def line(db: Database, browser: Browser, heartbeat: float = 20.0) -> AsyncIterator[Line]:
    await seed_managers(db)
    live = Line(db, browser, heartbeat=heartbeat)
    await live.start()
    try:
        yield live
    finally:
        if live._stack is not None:
            await live.stop()


@contextlib.asynccontextmanager
async def replaying(
    service: CallService, stream: list[StreamItem], pause_after: int, answered_ago: float, answer_at: int
) -> AsyncIterator[FakeAmiServer]:
    """The fake PBX replaying ``stream``; its clock says the item at ``answer_at`` happened ``answered_ago`` s ago."""
    epoch = time.time() - answered_ago - stream[answer_at].t
    server = FakeAmiServer(stream, pause_after=pause_after, epoch=epoch)
    await server.start()
    try:
        async with running(AmiClient(settings_for(server), service)):
            yield server
    finally:
        await server.close()


async def talk_seconds(page: Page) -> int:
    """The talk time the card shows, in whole seconds (its clock reads m:ss)."""
    text = await page.get_by_test_id("talk-time").inner_text()
    minutes, seconds = re.fullmatch(r"(\d+):(\d\d)", text.strip()).groups()  # type: ignore[union-attr]
    return int(minutes) * 60 + int(seconds)


@pytest.mark.parametrize("viewport", VIEWPORTS)
async def test_a_desk_dialled_call_gets_a_card_and_a_timer_that_agrees_with_the_pbx_after_a_reload(
    db: Database, browser: Browser, traces_dir: Path, viewport: tuple[int, int]
) -> None:
    """Anna dials 8 916 111-00-01 on her desk phone (outbound-answered): her card says she is dialling, then
    counts the talk from the PBX's answer; a second tab opened meanwhile and the first tab reloaded show the same
    talk time, each within 1 s of the PBX's answer time."""
    width, height = viewport
    async with line(db, browser) as live:
        anna = await live.page("anna", width, height)
        stream: list[StreamItem] = list(load_ami(traces_dir / "outbound-answered.ami"))
        dial = index_of(stream, "DialBegin")
        answer = index_of(stream, "DialEnd", DialStatus="ANSWER")
        assert live.service is not None
        async with replaying(
            live.service, stream, pause_after=dial + 1, answered_ago=42.0, answer_at=answer
        ) as pbx:
            card = anna.get_by_test_id("call-card")
            await expect(card).to_have_count(1, timeout=SEEN)
            await expect(card.get_by_test_id("card-status")).to_have_text("Набираем номер с 101")
            # A number not in the CRM is the card's title; the caller's name is Anna's own, not the party's.
            await expect(card.get_by_test_id("card-name")).to_have_text("+7 916 111-00-01")
            await expect(card.get_by_test_id("ring-clock")).to_be_visible()
            await expect(card.get_by_test_id("talk-clock")).to_be_hidden()

            pbx.resume()
            pbx.pause_after = answer + 1
            await expect(card.get_by_test_id("card-status")).to_have_text(
                "Разговор — вы звоните (101)", timeout=SEEN
            )
            await expect(card.get_by_test_id("talk-clock")).to_be_visible()
            live_call = live.hub.live.get(OUTBOUND_ID)
            assert live_call is not None
            assert live_call.answered_at is not None
            answered_at = live_call.answered_at.timestamp()

            other = await live.page("anna", width, height, context=anna.context)
            await anna.reload()
            await expect(anna.locator("#conn")).to_have_text("на связи", timeout=SEEN)
            for page in (anna, other):
                await expect(page.get_by_test_id("talk-clock")).to_be_visible(timeout=SEEN)
                shown = await talk_seconds(page)
                truth = time.time() - answered_at
                assert abs(shown - truth) <= 1.0, (shown, truth)
                assert truth >= 42.0
            assert abs(await talk_seconds(anna) - await talk_seconds(other)) <= 1
            pbx.resume()
            await expect(anna.get_by_test_id("card-status")).to_contain_text("Завершён", timeout=SEEN)
            await expect(anna.get_by_test_id("talk-time")).to_have_text("0:03")

        # After the call: the result in one click, stored with the call, in the API, history and the report.
        result = anna.get_by_test_id("card-result")
        await expect(result).to_be_visible()
        await result.get_by_test_id("result-callback").click()
        await expect(result.get_by_test_id("result-msg")).to_have_text("Результат сохранён", timeout=SEEN)
        await expect(result.get_by_test_id("result-callback")).to_have_attribute("aria-pressed", "true")
        await expect(result.get_by_test_id("result-callback")).to_have_text("Перезвонить")
        got = await anna.request.get(live.url + "api/calls/" + OUTBOUND_ID)
        assert (await got.json())["call"]["result"] == "callback"
        await anna.click("#refresh")
        await expect(anna.get_by_test_id("history-result").first).to_have_text(" · Перезвонить", timeout=SEEN)
        report = await anna.request.get(live.url + "reports/calls-vs-deals.json?preset=today")
        rows = {r["manager_id"]: r for r in (await report.json())["rows"]}
        assert rows[1]["results"] == {"callback": 1}
        await anna.goto(live.url + "reports/calls-vs-deals?preset=today")
        table = anna.get_by_test_id("report-results")
        await expect(table).to_contain_text("Перезвонить")
        await expect(table.locator("tr[data-manager=anna] td[data-result=callback]")).to_have_text("1")
        await anna.context.close()


@pytest.mark.parametrize("viewport", VIEWPORTS)
async def test_the_page_rides_out_a_server_restart_keeps_what_was_typed_and_shows_the_next_call(
    db: Database, browser: Browser, traces_dir: Path, viewport: tuple[int, int]
) -> None:
    """Mid-call Anna types a note; crmtel restarts under the open page. The status line says the link is down,
    then live again without a reload; the note she typed is still in the card; the next call's card arrives."""
    width, height = viewport
    async with line(db, browser) as live:
        anna = await live.page("anna", width, height)
        stream: list[StreamItem] = list(load_ami(traces_dir / "outbound-answered.ami"))
        answer = index_of(stream, "DialEnd", DialStatus="ANSWER")
        assert live.service is not None
        async with replaying(
            live.service, stream, pause_after=answer + 1, answered_ago=5.0, answer_at=answer
        ):
            card = anna.locator(f"[data-call-id='{OUTBOUND_ID}']")
            await expect(card.get_by_test_id("card-status")).to_contain_text("Разговор", timeout=SEEN)
            topic = card.locator("input[name=topic]")
            if not await topic.is_visible():
                await card.get_by_test_id("action-note").locator("summary").click()
            await topic.fill("Договорились о встрече")

        await live.stop()
        await expect(anna.locator("#conn")).not_to_have_text("на связи", timeout=SEEN)
        await live.start()
        await expect(anna.locator("#conn")).to_have_text("на связи", timeout=20_000)
        # The store says the call goes on: the card stays in progress, with the note as typed.
        await expect(card.locator("input[name=topic]")).to_have_value("Договорились о встрече")
        await expect(card.get_by_test_id("card-status")).to_have_text("Разговор — вы звоните (101)")
        await expect(card.get_by_test_id("talk-clock")).to_be_visible()

        inbound: list[StreamItem] = list(load_ami(traces_dir / "direct-answered.ami"))
        answered = index_of(inbound, "DialEnd", DialStatus="ANSWER")
        assert live.service is not None
        async with replaying(
            live.service, inbound, pause_after=answered, answered_ago=0.0, answer_at=answered
        ):
            fresh = anna.locator(f"[data-call-id='{INBOUND_ID}']")
            await expect(fresh.get_by_test_id("card-status")).to_have_text("Звонит на 101", timeout=SEEN)
            await expect(fresh.get_by_test_id("card-name")).to_contain_text("Ivan Petrov")
        await anna.context.close()


@pytest.mark.parametrize("viewport", VIEWPORTS)
async def test_a_result_picked_in_one_tab_shows_in_the_managers_other_tab(
    db: Database, browser: Browser, traces_dir: Path, viewport: tuple[int, int]
) -> None:
    """Anna has two tabs open when her desk-dialled call ends: she picks «Перезвонить» in one and the other tab's
    card shows it picked at once (pushed as call.result, no reload); clearing it clears it there too."""
    width, height = viewport
    async with line(db, browser) as live:
        first = await live.page("anna", width, height)
        second = await live.page("anna", width, height, context=first.context)
        stream: list[StreamItem] = list(load_ami(traces_dir / "outbound-answered.ami"))
        answer = index_of(stream, "DialEnd", DialStatus="ANSWER")
        assert live.service is not None
        async with replaying(
            live.service, stream, pause_after=len(stream), answered_ago=0.0, answer_at=answer
        ):
            for tab in (first, second):
                card = tab.locator(f"[data-call-id='{OUTBOUND_ID}']")
                await expect(card.get_by_test_id("card-status")).to_contain_text("Завершён", timeout=SEEN)
                await expect(card.get_by_test_id("result-callback")).to_have_attribute(
                    "aria-pressed", "false"
                )
        picked = second.locator(f"[data-call-id='{OUTBOUND_ID}']").get_by_test_id("result-callback")
        await first.locator(f"[data-call-id='{OUTBOUND_ID}']").get_by_test_id("result-callback").click()
        await expect(picked).to_have_attribute("aria-pressed", "true", timeout=SEEN)
        await first.locator(f"[data-call-id='{OUTBOUND_ID}']").get_by_test_id("result-callback").click()
        await expect(picked).to_have_attribute("aria-pressed", "false", timeout=SEEN)
        got = await second.request.get(live.url + "api/calls/" + OUTBOUND_ID)
        assert (await got.json())["call"]["result"] is None
        await first.context.close()


# Records every Notification the page makes (the real one is still made), and lets the test say when the tab is
# in the background: headless Chromium keeps every tab "visible", so the page's view of it is set here.
BACKGROUND = """
(() => {
  window.__notes = [];
  const Real = window.Notification;
  window.Notification = class extends Real {
    constructor(title, options) {
      window.__notes.push({ title, tag: options && options.tag });
      super(title, options);
      window.__notes[window.__notes.length - 1].n = this;
    }
  };
  let hidden = true;
  Object.defineProperty(document, "visibilityState", { get: () => (hidden ? "hidden" : "visible") });
  Object.defineProperty(document, "hidden", { get: () => hidden });
  document.hasFocus = () => !hidden;
})();
"""


async def background_tabs(live: Line, login: str, width: int, height: int, count: int) -> list[Page]:
    """``count`` background tabs of one manager (one browser profile, notifications allowed)."""
    context = await live.browser.new_context(
        locale="ru-RU", timezone_id="Europe/Moscow", viewport={"width": width, "height": height}
    )
    await context.grant_permissions(["notifications"], origin=live.url.rstrip("/"))
    await context.add_init_script(BACKGROUND)
    page = await context.new_page()
    await page.goto(live.url)
    await page.fill("#login-name", login)
    await page.fill("#login-password", PASSWORD)
    await page.click("#login-submit")
    await expect(page.locator("#conn")).to_have_text("на связи", timeout=SEEN)
    tabs = [page]
    for _ in range(count - 1):
        tabs.append(await live.page(login, width, height, context=context))
    return tabs


@pytest.mark.parametrize("viewport", VIEWPORTS)
async def test_a_call_rings_in_background_tabs_of_the_ringing_manager_only_and_stops_once_taken(
    db: Database, browser: Browser, traces_dir: Path, viewport: tuple[int, int]
) -> None:
    """Ivan calls Anna (101) while her two tabs are in the background: both titles and favicons say who calls,
    exactly one tab shows a notification and plays the ring; Boris's tab stays quiet. A click on the notification
    takes the call: no tab rings any more, the card stays. The answer gives the titles back; the bell mutes."""
    width, height = viewport
    async with line(db, browser) as live:
        anna = await background_tabs(live, "anna", width, height, 2)
        (boris,) = await background_tabs(live, "boris", width, height, 1)
        inbound: list[StreamItem] = list(load_ami(traces_dir / "direct-answered.ami"))
        answered = index_of(inbound, "DialEnd", DialStatus="ANSWER")
        assert live.service is not None
        async with replaying(
            live.service, inbound, pause_after=answered, answered_ago=0.0, answer_at=answered
        ) as pbx:
            for tab in anna:
                await expect(tab).to_have_title(re.compile(r"^☎ Звонок: Ivan Petrov — "), timeout=SEEN)
                await expect(tab.locator("#favicon")).to_have_attribute("href", "/static/favicon-ringing.svg")
                await expect(tab.get_by_test_id("call-card")).to_have_count(1)

            async def ringing_tabs() -> list[int]:
                return [
                    i
                    for i, tab in enumerate(anna)
                    if await tab.evaluate("document.documentElement.dataset.ringSound === 'playing'")
                ]

            # One tab takes the call's lock and rings; wait for it (the other never will).
            await wait_until(ringing_tabs, limit=5.0)
            playing = await ringing_tabs()
            notes = [await tab.evaluate("window.__notes.map(n => [n.title, n.tag])") for tab in anna]
            assert len(playing) == 1, playing
            assert sum(len(n) for n in notes) == 1, notes
            assert notes[playing[0]] == [["☎ Звонок: Ivan Petrov", INBOUND_ID]]
            await expect(boris).not_to_have_title(re.compile("☎"))
            assert await boris.evaluate("window.__notes.length") == 0

            # A click on the notification: that tab comes forward with the card, and every tab stops ringing.
            await anna[playing[0]].evaluate("window.__notes[0].n.onclick()")
            for tab in anna:
                await expect(tab.locator("html")).not_to_have_attribute(
                    "data-ring-sound", "playing", timeout=SEEN
                )
                await expect(tab.get_by_test_id("call-card")).to_have_count(1)

            pbx.resume()
            for tab in anna:
                await expect(tab).to_have_title("Звонки — crmtel", timeout=SEEN)
                await expect(tab.locator("#favicon")).to_have_attribute("href", "/static/favicon.svg")

        bell = anna[0].get_by_test_id("ring-sound")
        await expect(bell).to_have_attribute("aria-pressed", "true")
        await bell.click()
        await expect(bell).to_have_attribute("aria-pressed", "false")
        await expect(bell).to_have_attribute("aria-label", "Звук звонка: выкл.")
        for page in (*anna, boris):
            await page.context.close()


@pytest.mark.parametrize("viewport", VIEWPORTS)
async def test_the_heads_board_greys_out_during_a_restart_and_comes_back_live_by_itself(
    db: Database, browser: Browser, traces_dir: Path, viewport: tuple[int, int]
) -> None:
    """The head's board under a crmtel restart: it says the link is lost and greys the old figures, reconnects
    without a reload, takes the fresh state and shows the next call being talked."""
    width, height = viewport
    async with line(db, browser) as live:
        head = await live.page("head", width, height)
        await head.goto(live.url + "board")
        conn = head.get_by_test_id("board-conn")
        await expect(conn).to_have_attribute("data-state", "live", timeout=SEEN)
        await live.stop()
        await expect(conn).to_have_attribute("data-state", "offline", timeout=SEEN)
        await expect(head.locator("#board")).to_have_class(re.compile(r"\bstale\b"))
        await live.start()
        await expect(conn).to_have_attribute("data-state", "live", timeout=20_000)
        await expect(head.locator("#board")).not_to_have_class(re.compile(r"\bstale\b"), timeout=SEEN)
        inbound: list[StreamItem] = list(load_ami(traces_dir / "direct-answered.ami"))
        answered = index_of(inbound, "DialEnd", DialStatus="ANSWER")
        assert live.service is not None
        async with replaying(
            live.service, inbound, pause_after=answered + 1, answered_ago=3.0, answer_at=answered
        ):
            await expect(head.get_by_test_id("talking-call")).to_have_count(1, timeout=SEEN)
        await head.context.close()


async def test_a_page_whose_session_ended_elsewhere_goes_to_the_login_form(
    db: Database, browser: Browser
) -> None:
    """Anna logs out in one tab: her other tab's websocket is closed with 4401 and it shows the login form
    instead of trying to reconnect."""
    async with line(db, browser) as live:
        first = await live.page("anna", 1366, 900)
        second = await live.page("anna", 1366, 900, context=first.context)
        await first.get_by_test_id("logout").click()
        await expect(second.locator("#login-screen")).to_be_visible(timeout=SEEN)
        await expect(second.locator("#app")).to_be_hidden()
        await expect(second).to_have_title("Вход — crmtel")
        await first.context.close()


COUNT_ASKS = """
(() => {
  window.__asked = 0;
  const ask = Notification.requestPermission.bind(Notification);
  Notification.requestPermission = (...args) => { window.__asked += 1; return ask(...args); };
})();
"""


async def test_notification_permission_is_asked_on_the_login_click_not_on_load(
    db: Database, browser: Browser
) -> None:
    """Opening the page asks nothing; clicking «Войти» asks once; an already logged-in page reloaded asks nothing
    and offers the ♪ button instead, whose click asks."""
    async with line(db, browser) as live:
        context = await browser.new_context(locale="ru-RU", viewport={"width": 1366, "height": 900})
        await context.add_init_script(COUNT_ASKS)
        page = await context.new_page()
        await page.goto(live.url)
        await expect(page.locator("#login-screen")).to_be_visible()
        assert await page.evaluate("window.__asked") == 0
        await page.fill("#login-name", "anna")
        await page.fill("#login-password", PASSWORD)
        await page.click("#login-submit")
        await expect(page.locator("#conn")).to_have_text("на связи", timeout=SEEN)
        assert await page.evaluate("window.__asked") == 1
        await page.reload()
        await expect(page.locator("#conn")).to_have_text("на связи", timeout=SEEN)
        assert await page.evaluate("window.__asked") == 0
        bell = page.get_by_test_id("ring-sound")
        if await page.evaluate("Notification.permission") == "default":
            await expect(bell).to_have_attribute("aria-label", "Уведомлять о звонках")
            await bell.click()
            await page.wait_for_function("window.__asked === 1")
        await context.close()
