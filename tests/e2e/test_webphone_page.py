"""The browser phone's panel without a PBX: which tab owns the phone, and that nothing shows when the phone is
off. (Its problem messages: test_webphone_problems.py; with a PBX: tests/live/test_live_webphone_browser.py.)"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest
from aiohttp.test_utils import TestServer
from playwright.async_api import Browser, Page

from crmtel.config import WebphoneSettings, WebSettings
from crmtel.push.hub import Hub
from crmtel.push.web import create_app
from crmtel.store.db import Database
from crmtel.store.sip_credentials import SipCredentialRepository
from crmtel.webphone.sync import render
from crmtel.webphone.web import webphone_origins, webphone_routes
from tests.fixtures.races import RACES_PROCESSES
from tests.integration.test_web_app import PASSWORD, seed_managers

pytestmark = [pytest.mark.e2e, RACES_PROCESSES]

# Nothing listens there: the phone never registers, which is all these tests need.
PHONE = WebphoneSettings(enabled=True, ws_url="ws://127.0.0.1:1/ws")


@asynccontextmanager
async def _server(db: Database, phone: WebphoneSettings, host: str = "127.0.0.1") -> AsyncIterator[str]:
    from crmtel.config import Settings

    await seed_managers(db)
    await render(Settings(webphone=phone), db)
    app = create_app(
        WebSettings(port=0),
        db=db,
        hub=Hub(),
        routes=(webphone_routes(phone, SipCredentialRepository(db)),),
        connect_src=webphone_origins(phone),
    )
    server = TestServer(app, host=host, port=0)
    await server.start_server()
    try:
        yield f"http://{host}:{server.port}/"
    finally:
        await server.close()


async def _login(page: Page, url: str) -> None:
    await page.goto(url)
    await page.fill("#login-name", "anna")
    await page.fill("#login-password", PASSWORD)
    await page.click("#login-submit")
    await page.wait_for_selector('[data-testid="app-header"]')


async def test_one_tab_owns_the_phone_and_another_shows_it(browser: Browser, db: Database) -> None:
    """Two tabs of anna: the first owns the phone (Web Locks), the second says it works in another tab; closing
    the first hands the phone to the second."""
    async with _server(db, PHONE) as url:
        context = await browser.new_context(locale="ru-RU", permissions=["microphone"])
        # A microphone (this Chromium runs without fake devices): a tab without one gives the phone up.
        await context.add_init_script("navigator.mediaDevices.getUserMedia = async () => new MediaStream();")
        await context.route(
            "**/static/vendor/jssip.js",
            lambda route: route.fulfill(body=FAKE_JSSIP, content_type="text/javascript"),
        )
        try:
            first = await context.new_page()
            await _login(first, url)
            await first.wait_for_selector('[data-testid="webphone"][data-state="registered"]')
            second = await context.new_page()
            await second.goto(url)
            await second.wait_for_selector('[data-testid="webphone"][data-state="other-tab"]')
            assert "другой вкладке" in await second.inner_text('[data-testid="webphone-state"]')
            await first.close()
            await second.wait_for_selector('[data-testid="webphone"][data-state="registered"]')
        finally:
            await context.close()


async def test_no_panel_when_the_phone_is_off(browser: Browser, db: Database) -> None:
    """[webphone] off: /api/phone is a 404 and the page shows no phone at all."""
    async with _server(db, WebphoneSettings()) as url:
        context = await browser.new_context(locale="ru-RU")
        try:
            page = await context.new_page()
            await _login(page, url)
            await page.wait_for_selector('[data-testid="popups"]')
            assert await page.locator('[data-testid="webphone"]').count() == 0
        finally:
            await context.close()


# JsSIP stood in for by a UA that registers at once and notes the calls it places (no PBX in these tests).
FAKE_JSSIP = """
class UA {
  constructor() { this.handlers = {}; }
  on(event, fn) { this.handlers[event] = fn; }
  start() { setTimeout(() => this.handlers.registered && this.handlers.registered(), 10); }
  stop() {}
  isConnected() { return true; }
  call(uri) {
    window.crmtelCalls = [...(window.crmtelCalls || []), uri];
    return { on() {}, connection: null, terminate() {}, isEnded() { return false; } };
  }
}
class WebSocketInterface { constructor() {} }
export default { UA, WebSocketInterface };
"""


async def test_a_click_in_a_tab_without_the_phone_is_placed_from_the_tab_that_has_it(
    browser: Browser, db: Database
) -> None:
    """Two tabs of anna, the first registered: a click in the second is placed by the first through the browser
    phone (POST /api/dial/browser, then its UA calls the number as the PBX dials it) — it went to POST
    /api/dial, ringing a desk phone a manager working from the browser may not have."""
    async with _server(db, PHONE) as url:
        context = await browser.new_context(locale="ru-RU", permissions=["microphone"])
        # A microphone (this Chromium runs without fake devices): an empty stream is all the page asks for.
        await context.add_init_script("navigator.mediaDevices.getUserMedia = async () => new MediaStream();")
        await context.route(
            "**/static/vendor/jssip.js",
            lambda route: route.fulfill(body=FAKE_JSSIP, content_type="text/javascript"),
        )
        await context.route(
            "**/api/dial/browser",
            lambda route: route.fulfill(
                json={"originate_id": "x", "exten": "89161110131", "number": "+79161110131",
                      "extension": "101", "message": "Звоним на +7 916 111-01-31 из браузера"},
            ),
        )  # fmt: skip
        asked: list[str] = []
        context.on("request", lambda req: asked.append(f"{req.method} {req.url.split('/', 3)[3]}"))
        try:
            first = await context.new_page()
            await _login(first, url)
            await first.wait_for_selector('[data-testid="webphone"][data-state="registered"]')
            second = await context.new_page()
            await second.goto(url)
            await second.wait_for_selector('[data-testid="webphone"][data-state="other-tab"]')
            await second.wait_for_function(
                "window.crmtelWebphone && window.crmtelWebphone.state() === 'other-tab'"
            )
            await second.evaluate("import('/static/dial.js').then((m) => m.dial('+79161110131', 'Клиент'))")
            await first.wait_for_selector('[data-testid="webphone"][data-call="calling"]')
            assert await first.evaluate("window.crmtelCalls") == ["sip:89161110131@127.0.0.1"]
            assert await second.evaluate("window.crmtelCalls || []") == []
            assert "api/dial/browser" in " ".join(asked)
            assert not [a for a in asked if a.startswith("POST api/dial") and "browser" not in a], asked
        finally:
            await context.close()


async def test_a_tab_logged_out_while_waiting_for_the_phone_never_takes_it(
    browser: Browser, db: Database
) -> None:
    """anna's second tab waits for the phone (the first owns it); she logs out there, then the first tab goes too
    (logged out elsewhere): the waiting tab's lock request is withdrawn, so no logged-out tab registers an
    invisible phone that rings and holds the lock — the next login owns the phone."""
    async with _server(db, PHONE) as url:
        context = await browser.new_context(locale="ru-RU", permissions=["microphone"])
        await context.add_init_script("navigator.mediaDevices.getUserMedia = async () => new MediaStream();")
        await context.route(
            "**/static/vendor/jssip.js",
            lambda route: route.fulfill(body=FAKE_JSSIP, content_type="text/javascript"),
        )
        try:
            first = await context.new_page()
            await _login(first, url)
            await first.wait_for_selector('[data-testid="webphone"][data-state="registered"]')
            second = await context.new_page()
            await second.goto(url)
            await second.wait_for_selector('[data-testid="webphone"][data-state="other-tab"]')
            await second.click('[data-testid="logout"]')
            await second.wait_for_selector("#login-screen:not([hidden])")
            await first.close()  # the owner goes: its lock is free
            third = await context.new_page()
            await _login(third, url)
            await third.wait_for_selector('[data-testid="webphone"][data-state="registered"]')
            assert await second.evaluate("window.crmtelWebphone.state()") == "off"
        finally:
            await context.close()
