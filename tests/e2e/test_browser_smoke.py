"""The browser harness itself works: Debian's Chromium renders a page Playwright can read."""

from __future__ import annotations

from playwright.async_api import BrowserContext


async def test_chromium_renders_text(context: BrowserContext) -> None:
    """Chromium launches headless and renders a data: page whose text Playwright reads back."""
    page = await context.new_page()
    await page.set_content("<p id='x'>Анна Смирнова</p>")
    assert await page.text_content("#x") == "Анна Смирнова"
