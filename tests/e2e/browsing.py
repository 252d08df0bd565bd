"""A Russian user's Chromium as the CRM and report tests open it: the screen sizes, the profile, files downloaded."""

from __future__ import annotations

import asyncio
import csv
import io
from pathlib import Path
from typing import Any

import pytest
from playwright.async_api import Browser, BrowserContext, Page

ZONE = "Europe/Moscow"
# A desk and a phone, the two screens every page is checked on.
SIZES = [pytest.param(1366, 900, id="desk"), pytest.param(390, 844, id="phone")]


async def russian_page(
    browser: Browser, width: int, height: int, **options: Any
) -> tuple[BrowserContext, Page]:
    """A fresh Russian profile (ru-RU, Moscow time) on a screen of that size, a touch phone's below 600 px, and a
    page in it on which any script error fails the test; ``options`` go to the profile as they are."""
    phone = width < 600
    context = await browser.new_context(
        locale="ru-RU",
        timezone_id=ZONE,
        viewport={"width": width, "height": height},
        is_mobile=phone,
        has_touch=phone,
        **options,
    )
    page = await context.new_page()
    page.on("pageerror", lambda err: pytest.fail(f"page error: {err}"))
    return context, page


async def download(page: Page, selector: str) -> bytes:
    """The file the page gives for a click on ``selector``."""
    async with page.expect_download() as info:
        await page.locator(selector).click()
    path = await (await info.value).path()
    assert path is not None
    return await asyncio.to_thread(Path(path).read_bytes)


async def excel_rows(page: Page, selector: str, delimiter: str = ";") -> list[list[str]]:
    """The CSV file downloaded through ``selector`` as Excel reads it: it must start with a BOM."""
    raw = await download(page, selector)
    assert raw.startswith(b"\xef\xbb\xbf"), raw[:20]
    return list(csv.reader(io.StringIO(raw.decode("utf-8-sig")), delimiter=delimiter))
