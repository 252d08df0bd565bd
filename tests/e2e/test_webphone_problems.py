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
from tests.e2e.test_webphone_page import _login, _server
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
