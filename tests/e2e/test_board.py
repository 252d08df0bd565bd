"""The heads' live board in headless Chromium: a replayed queue call goes waiting → talking → done live."""

from __future__ import annotations

import contextlib
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pytest
from aiohttp.test_utils import TestServer
from playwright.async_api import Browser, Page, expect

from crmtel.board.service import BoardService, BoardTap, StoreCounts
from crmtel.board.web import board_routes
from crmtel.calls.service import CallService
from crmtel.config import CallsSettings, WebSettings
from crmtel.fakepbx.server import StreamItem, load_ami
from crmtel.push.cards import StoreCards
from crmtel.push.context import current_manager, translator
from crmtel.push.hub import Hub
from crmtel.push.notifier import ManagerNames, Notifier
from crmtel.push.web import create_app
from crmtel.store.db import Database
from crmtel.store.parties import PartyRepository
from tests.e2e.pagecheck import assert_language, axe_violations
from tests.e2e.test_popup_calls import index_of, replaying
from tests.fixtures.races import RACES_PROCESSES
from tests.integration.test_web_app import PASSWORD, seed_managers

pytestmark = [pytest.mark.e2e, RACES_PROCESSES]

LIVE = 1_000  # ms: the board must follow the AMI events within a second
SEEN = 5_000


@dataclass
class Stack:
    """The web app with the board, and the call pipeline feeding it, as the composition root wires them."""

    web: TestServer
    service: CallService
    board: BoardService
    browser: Browser

    async def board_page(
        self, login: str = "head", locale: str = "en-US", viewport: tuple[int, int] = (1366, 900)
    ) -> Page:
        """A browser logged in as ``login`` on /board, its websocket live."""
        width, height = viewport
        context = await self.browser.new_context(locale=locale, viewport={"width": width, "height": height})
        page = await context.new_page()
        await page.goto(str(self.web.make_url("/")))
        await page.fill("#login-name", login)
        await page.fill("#login-password", PASSWORD)
        await page.click("#login-submit")
        await expect(page.locator("#conn")).to_have_class(re.compile(r"\bon\b"), timeout=SEEN)
        await page.goto(str(self.web.make_url("/board")))
        await expect(page.locator("[data-testid=board-conn]")).to_have_attribute(
            "data-state", "live", timeout=SEEN
        )
        return page


def _trace_day() -> datetime:
    return datetime(2026, 11, 23, 19, 27, 30, tzinfo=UTC)


@contextlib.asynccontextmanager
async def stack(db: Database, browser: Browser) -> AsyncIterator[Stack]:
    await seed_managers(db)
    hub = Hub()
    # The trace's calls happened on 23 Nov 2026 (Asterisk's timestamps): that is "today" for the board.
    board = BoardService(hub, ManagerNames(db), StoreCounts(db), timezone="UTC", clock=_trace_day)
    async with board:
        app = create_app(
            WebSettings(port=0), db=db, hub=hub, routes=[board_routes(board, current_manager, translator)]
        )
        web = TestServer(app, host="127.0.0.1", port=0)
        await web.start_server()
        try:
            async with Notifier(hub, StoreCards(db), ManagerNames(db)) as notifier:
                service = CallService(
                    db,
                    CallsSettings(),
                    PartyRepository(db),
                    BoardTap(notifier, board),
                    after_flush=board.calls_stored,
                )
                yield Stack(web, service, board, browser)
        finally:
            await web.close()


async def test_replayed_queue_call_moves_from_waiting_to_talking_to_done_within_a_second(
    db: Database, browser: Browser, traces_dir: Path
) -> None:
    """queue-ringall-answered: waiting in retail after the join, Vera (103) talking after the answer, gone after hang-up."""
    async with stack(db, browser) as s:
        page = await s.board_page()
        stream: list[StreamItem] = list(load_ami(traces_dir / "queue-ringall-answered.ami"))
        # The fake server holds the stream before the item at ``pause_after``.
        joined = index_of(stream, "QueueCallerJoin") + 1
        answered = index_of(stream, "DialEnd", DialStatus="ANSWER")
        hangup = index_of(stream, "Hangup", Channel="PJSIP/trunk-00000014")
        retail = page.locator("[data-testid=board-queue][data-queue=retail]")
        async with replaying(s.service, stream, pause_after=joined) as ami:
            await expect(retail.locator("[data-testid=queue-waiting]")).to_have_attribute(
                "data-count", "1", timeout=SEEN
            )
            await expect(retail.locator("[data-testid=waiting-caller]")).to_have_count(1)
            # An unknown caller is their number, written as everywhere on the page.
            await expect(retail.locator("[data-testid=waiting-caller] span").first).to_have_text(
                "+7 903 123-45-67"
            )
            await expect(retail.locator("[data-testid=queue-waiting]")).to_have_text("1 caller waiting")
            await expect(retail.locator("[data-testid=queue-longest] .since")).not_to_be_empty()
            await expect(page.locator("[data-testid=nobody-talking]")).to_be_visible()

            ami.resume()  # (resume clears pause_after: set the next hold after it)
            ami.pause_after = hangup
            await expect(retail.locator("[data-testid=queue-waiting]")).to_have_attribute(
                "data-count", "0", timeout=LIVE
            )
            talking = page.locator("[data-testid=talking-call]")
            await expect(talking).to_have_count(1, timeout=LIVE)
            await expect(talking).to_have_attribute("data-extension", "103")
            await expect(talking.locator(".who")).to_have_text("Vera Lebedeva (103)")
            await expect(talking.locator("span").nth(1)).to_have_text("+7 903 123-45-67 · retail")
            await expect(talking.locator(".since")).not_to_be_empty()

            ami.resume()
            await expect(page.locator("[data-testid=talking-call]")).to_have_count(0, timeout=LIVE)
            await expect(page.locator("[data-testid=nobody-talking]")).to_be_visible()
            # Today's counts follow from the store once the ended call is written.
            await expect(page.locator("[data-testid=today-answered-value]")).to_have_text("1", timeout=SEEN)
        assert answered < hangup


async def test_board_on_a_phone_in_russian_fits_passes_axe_and_managers_are_refused(
    db: Database, browser: Browser
) -> None:
    """A head's Russian phone (390 px) shows the board in Russian, without sideways scrolling or axe violations;
    a plain manager gets 403 for /board."""
    async with stack(db, browser) as s:
        page = await s.board_page(locale="ru-RU", viewport=(390, 844))
        await expect(page.locator("[data-testid=board-today]")).to_contain_text("Отвечено", timeout=SEEN)
        await expect(page.locator("[data-testid=nobody-talking]")).to_have_text("Никто не говорит")
        await assert_language(page, "ru", data=["Head of Sales"])
        assert await page.evaluate("document.documentElement.scrollWidth") <= 390
        assert await axe_violations(page) == []
        manager = await s.browser.new_context()
        other = await manager.new_page()
        await other.goto(str(s.web.make_url("/")))
        await other.fill("#login-name", "boris")
        await other.fill("#login-password", PASSWORD)
        await other.click("#login-submit")
        await expect(other.locator("#conn")).to_have_class(re.compile(r"\bon\b"), timeout=SEEN)
        response = await other.goto(str(s.web.make_url("/board")))
        assert response is not None
        assert response.status == 403
