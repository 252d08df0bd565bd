"""Screenshots of the manager's live line for the README: the ringing card, the talk timer, the result.

    python -m tests.e2e.screenshots_live [--out docs/screenshots]

Runs the web app and the call pipeline in this process on a fresh SQLite database, replays the recorded
``direct-answered`` trace through the fake AMI server (held while it rings, then mid-talk), and writes
``live-ringing-ru-<size>.png``, ``live-timer-ru-<size>.png`` and ``live-result-ru-<size>.png`` for a desk
(1366×900) and a phone (390×844). Uses Debian's Chromium like the browser tests, started in Russian.
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
from decimal import Decimal
from pathlib import Path

from playwright.async_api import async_playwright, expect

import crmtel.fakepbx
from crmtel.app import migrate
from crmtel.domain import Category
from crmtel.fakepbx.server import StreamItem, load_ami
from crmtel.store.db import Database
from crmtel.store.parties import NewClient, PartyRepository
from tests.e2e.conftest import CHROMIUM
from tests.e2e.screenshots import browser_language
from tests.e2e.test_live_line import INBOUND_ID, line, replaying
from tests.e2e.test_popup_calls import index_of

TRACES = Path(crmtel.fakepbx.__file__).resolve().parent / "data"
SIZES = {"desk": (1366, 900), "phone": (390, 844)}


async def shoot(out: Path) -> None:
    """Write the three screenshots at both sizes into ``out``."""
    await asyncio.to_thread(out.mkdir, parents=True, exist_ok=True)
    async with async_playwright() as pw:
        args, env = browser_language("ru")
        browser = await pw.chromium.launch(executable_path=CHROMIUM, args=args, env=env, headless=True)
        try:
            for size, (width, height) in SIZES.items():
                with tempfile.TemporaryDirectory(prefix="crmtel-live-shots-") as folder:
                    url = f"sqlite+aiosqlite:///{folder}/crmtel.db"
                    await migrate(url)
                    db = Database(url)
                    try:
                        await PartyRepository(db).add_client(
                            NewClient(
                                name="ООО «Ромашка»",
                                phones=("+79161110001",),
                                category=Category.WHOLESALE,
                                turnover=Decimal("184500"),
                            )
                        )
                        await _one_size(db, browser, out, size, width, height)
                    finally:
                        await db.dispose()
        finally:
            await browser.close()


async def _one_size(db: Database, browser: object, out: Path, size: str, width: int, height: int) -> None:
    from playwright.async_api import Browser

    assert isinstance(browser, Browser)
    async with line(db, browser) as live:
        page = await live.page("anna", width, height)
        stream: list[StreamItem] = list(load_ami(TRACES / "direct-answered.ami"))
        answered = index_of(stream, "DialEnd", DialStatus="ANSWER")
        assert live.service is not None
        async with replaying(
            live.service, stream, pause_after=answered, answered_ago=12.0, answer_at=answered
        ) as pbx:
            card = page.locator(f"[data-call-id='{INBOUND_ID}']")
            await expect(card.get_by_test_id("card-status")).to_have_text("Звонит на 101", timeout=10_000)
            await expect(card.get_by_test_id("card-name")).to_have_text("ООО «Ромашка»")
            await page.wait_for_timeout(1500)
            await page.screenshot(path=str(out / f"live-ringing-ru-{size}.png"))
            pbx.resume()
            pbx.pause_after = answered + 1
            await expect(card.get_by_test_id("talk-clock")).to_be_visible(timeout=10_000)
            await page.wait_for_timeout(3000)
            await page.screenshot(path=str(out / f"live-timer-ru-{size}.png"))
            pbx.resume()
            await expect(card.get_by_test_id("card-status")).to_contain_text("Завершён", timeout=10_000)
        await card.get_by_test_id("result-agreed").click()
        await expect(card.get_by_test_id("result-msg")).to_have_text("Результат сохранён", timeout=10_000)
        await page.screenshot(path=str(out / f"live-result-ru-{size}.png"))
        await page.context.close()


def main() -> None:
    """Parse ``--out`` and take the screenshots."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", type=Path, default=Path("docs/screenshots"))
    args = parser.parse_args()
    asyncio.run(shoot(args.out))


if __name__ == "__main__":
    main()
