"""The browser phone says plainly why it cannot work — the microphone refused, no microphone, a page that is not a
secure context — in Russian, readable on a phone (390 px) and a laptop (1366 px), with no axe violation."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
from playwright.async_api import Browser, async_playwright

from crmtel.config import WebphoneSettings
from crmtel.store.db import Database
from tests.e2e.conftest import CHROMIUM, CHROMIUM_ARGS
from tests.e2e.pagecheck import assert_language, axe_violations
from tests.e2e.test_webphone_page import FAKE_JSSIP, _login, _server
from tests.fixtures.races import RACES_PROCESSES

pytestmark = [pytest.mark.e2e, RACES_PROCESSES]

PHONE = WebphoneSettings(enabled=True, ws_url="ws://127.0.0.1:1/ws")
RU = json.loads((Path(__file__).parents[2] / "crmtel/i18n/catalogues/ru/webphone.json").read_text("utf-8"))
WIDTHS = ((390, 844), (1366, 900))
# A name that is not localhost: http:// there is not a secure context (the browser gives it no microphone).
INSECURE_HOST = "crmtel.test"
FAKE_MIC = "--use-fake-device-for-media-stream"


@asynccontextmanager
async def _chromium(*extra: str) -> AsyncIterator[Browser]:
    """Debian's Chromium with the shared tests' arguments plus ``extra`` (media devices, host names)."""
    async with async_playwright() as pw:
        instance = await pw.chromium.launch(
            executable_path=CHROMIUM, args=[*CHROMIUM_ARGS, *extra], headless=True
        )
        try:
            yield instance
        finally:
            await instance.close()


async def _says(browser: Browser, url: str, state: str, key: str, *, microphone: bool) -> None:
    """At each width: the panel reaches ``state`` and shows the Russian ``key`` whole, as an alert inside the
    screen's width, and the panel has no serious axe violation."""
    for width, height in WIDTHS:
        context = await browser.new_context(
            locale="ru-RU",
            viewport={"width": width, "height": height},
            permissions=["microphone"] if microphone else [],
        )
        try:
            page = await context.new_page()
            await _login(page, url)
            await page.wait_for_selector(f'[data-testid="webphone"][data-state="{state}"]')
            problem = page.locator('[data-testid="webphone-problem"]')
            assert await problem.is_visible()
            assert await problem.get_attribute("role") == "alert"
            assert " ".join((await problem.inner_text()).split()) == RU[key]
            box = await problem.bounding_box()
            assert box is not None
            assert box["x"] >= 0
            assert box["x"] + box["width"] <= width, f"the message runs off a {width} px screen"
            assert await page.evaluate("document.documentElement.scrollWidth") <= width
            await assert_language(page, "ru", data=("https://", "https", "http"))
            assert await axe_violations(page, '[data-testid="webphone"]') == []
        finally:
            await context.close()


async def test_a_refused_microphone_is_said_plainly(db: Database) -> None:
    """A microphone exists but the browser refuses it (no permission given): "allow it for this site"."""
    async with _server(db, PHONE) as url, _chromium(FAKE_MIC) as browser:
        await _says(browser, url, "mic-denied", "webphone.mic_denied", microphone=False)


async def test_a_missing_microphone_is_said_plainly(db: Database) -> None:
    """Permission given but no microphone at all (no fake device): "plug in a headset"."""
    async with _server(db, PHONE) as url, _chromium() as browser:
        await _says(browser, url, "mic-missing", "webphone.mic_missing", microphone=True)


async def test_a_page_that_is_not_a_secure_context_is_said_plainly(db: Database) -> None:
    """The page over plain http:// at a name that is not localhost: "the phone needs https://"."""
    async with (
        _server(db, PHONE) as url,
        _chromium(FAKE_MIC, f"--host-resolver-rules=MAP {INSECURE_HOST} 127.0.0.1") as browser,
    ):
        insecure = url.replace("127.0.0.1", INSECURE_HOST)
        await _says(browser, insecure, "insecure", "webphone.insecure", microphone=True)


# A tab named "refused" is refused the microphone; any other tab has one (an empty stream is all the page asks).
REFUSED_IN_ONE_TAB = """
navigator.mediaDevices.getUserMedia = async () => {
  if (window.name === "refused") throw new DOMException("Permission denied", "NotAllowedError");
  return new MediaStream();
};
"""
HELD = "navigator.locks.query().then((s) => s.held.map((l) => l.name))"


async def test_a_tab_refused_the_microphone_hands_the_phone_to_a_tab_that_has_one(db: Database) -> None:
    """anna's first tab is refused the microphone: it says so and gives the phone up, so her second tab (with a
    microphone) registers it — the refused tab held the phone's lock, and every other tab said «работает в
    другой вкладке» for ever while no tab had a phone."""
    async with _server(db, PHONE) as url, _chromium() as browser:
        context = await browser.new_context(locale="ru-RU", permissions=["microphone"])
        await context.add_init_script(REFUSED_IN_ONE_TAB)
        await context.route(
            "**/static/vendor/jssip.js",
            lambda route: route.fulfill(body=FAKE_JSSIP, content_type="text/javascript"),
        )
        try:
            first = await context.new_page()
            await first.goto(url)
            await first.evaluate("window.name = 'refused'")
            await _login(first, url)
            await first.wait_for_selector('[data-testid="webphone"][data-state="mic-denied"]')
            second = await context.new_page()
            await second.goto(url)
            await second.wait_for_selector('[data-testid="webphone"][data-state="registered"]')
            # The refused tab now shows the phone working in the other tab, no longer its own problem.
            await first.wait_for_selector('[data-testid="webphone"][data-state="other-tab"]')
            assert "другой вкладке" in await first.inner_text('[data-testid="webphone-state"]')
            assert await first.locator('[data-testid="webphone-problem"]').is_hidden()
        finally:
            await context.close()


async def test_when_every_tab_is_refused_the_microphone_every_tab_says_so(db: Database) -> None:
    """The site may not use the microphone at all: each of anna's tabs tries it, says «микрофон» plainly and
    holds no lock — none says the phone works in another tab."""
    async with _server(db, PHONE) as url, _chromium(FAKE_MIC) as browser:
        context = await browser.new_context(locale="ru-RU", permissions=[])
        try:
            first = await context.new_page()
            await _login(first, url)
            await first.wait_for_selector('[data-testid="webphone"][data-state="mic-denied"]')
            second = await context.new_page()
            await second.goto(url)
            await second.wait_for_selector('[data-testid="webphone"][data-state="mic-denied"]')
            for page in (first, second):
                problem = page.locator('[data-testid="webphone-problem"]')
                assert " ".join((await problem.inner_text()).split()) == RU["webphone.mic_denied"]
            await second.wait_for_function(f"{HELD}.then((held) => held.length === 0)")
            assert await second.evaluate(HELD) == []
        finally:
            await context.close()
