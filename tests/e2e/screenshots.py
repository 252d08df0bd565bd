"""Screenshots of the managers' page and the report for the README, taken from a running ``crmtel demo``.

    python -m tests.e2e.screenshots [--out docs/screenshots]

Starts the demo in a temporary folder on free ports, logs in as a manager in Russian and English at a desk
(1366×900) and a phone (390×844) size, waits for a ringing card, and writes for each language and size:
``main-<lang>-<size>.png`` (a ringing card), ``history-<lang>-<size>.png`` (a call's detail over the history)
and ``report-<lang>-<size>.png`` (the head's report), and the CRM's pages: ``clients-…`` (the list),
``card-…`` (a client's card), ``deals-…`` (the pipeline), ``tasks-…`` (the task list) and ``week-…`` (the
week's calendar). Uses Debian's Chromium like the browser tests.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

from playwright.async_api import Browser, BrowserContext, Page, async_playwright, expect

from tests.e2e.conftest import CHROMIUM, CHROMIUM_ARGS

SIZES = {"desk": (1366, 900), "phone": (390, 844)}
LOCALES = {"ru": ("ru-RU", "Europe/Moscow"), "en": ("en-US", "UTC")}
RING_WAIT_MS = 120_000
# Twelve browsers and the demo on a shared 2-core machine: a login or a list can take far longer than on a desk.
SEEN_MS = 90_000


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@contextlib.contextmanager
def demo() -> Iterator[str]:
    """``crmtel demo`` in a fresh folder; yields its URL and stops it with Ctrl-C (SIGINT) afterwards."""
    with tempfile.TemporaryDirectory(prefix="crmtel-shots-") as folder:
        port = _free_port()
        cmd = [
            sys.executable,
            "-m",
            "crmtel.cli",
            "demo",
            "--port",
            str(port),
            "--agi-port",
            str(_free_port()),
        ]
        env = {**os.environ, "CRMTEL_LOG__LEVEL": "warning"}
        proc = subprocess.Popen(cmd, cwd=folder, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        try:
            for _ in range(300):
                with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.2):
                    break
                if proc.poll() is not None:
                    raise SystemExit(
                        f"crmtel demo stopped: {proc.stderr.read().decode() if proc.stderr else ''}"
                    )
                time.sleep(0.1)
            yield f"http://127.0.0.1:{port}"
        finally:
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


@contextlib.asynccontextmanager
async def logged_in(browser: Browser, url: str, login: str, lang: str, size: str) -> AsyncIterator[Page]:
    """A page of ``url`` logged in as ``login`` (password ``demo``) in ``lang`` at ``size``."""
    locale, zone = LOCALES[lang]
    width, height = SIZES[size]
    phone = size == "phone"
    context: BrowserContext = await browser.new_context(
        locale=locale,
        timezone_id=zone,
        viewport={"width": width, "height": height},
        is_mobile=phone,
        has_touch=phone,
        device_scale_factor=1,
    )
    try:
        page = await context.new_page()
        await page.goto(url + "/")
        await page.fill("#login-name", login)
        await page.fill("#login-password", "demo")
        await page.click("#login-submit")
        await expect(page.locator("[data-testid=conn].on")).to_be_visible(timeout=SEEN_MS)
        yield page
    finally:
        await context.close()


async def shoot(browser: Browser, url: str, out: Path, lang: str, size: str) -> None:
    """The three screenshots of one language and size."""
    async with logged_in(browser, url, "anna", lang, size) as page:
        ringing = page.locator("[data-testid=call-card][data-state=ringing]")
        # A known client's card shows the most (company, manager, turnover): wait a while for one.
        client = page.locator("[data-testid=call-card][data-state=ringing]:has([data-kind=client])")
        try:
            await expect(client.first).to_be_visible(timeout=RING_WAIT_MS)
        except AssertionError:
            await expect(ringing.first).to_be_visible(timeout=RING_WAIT_MS)
        await page.wait_for_timeout(300)
        await page.screenshot(path=str(out / f"main-{lang}-{size}.png"))
        for close in await page.locator("[data-testid=card-close]").all():
            with contextlib.suppress(Exception):
                await close.click(timeout=1000)
        await page.click("[data-testid=history-refresh]")
        rows = page.locator("[data-testid=history-row]")
        await expect(rows.first).to_be_visible(timeout=SEEN_MS)
        await page.screenshot(path=str(out / f"history-{lang}-{size}.png"))
        answered = page.locator("[data-testid=history-row][data-outcome=answered] [data-testid=history-open]")
        for attempt in range(3):
            # The list redraws when a demo call ends; a row replaced under the click is clicked again.
            target = (
                answered.first if await answered.count() else rows.first.locator("[data-testid=history-open]")
            )
            await target.click()
            try:
                await expect(page.locator("[data-testid=call-detail]")).to_be_visible(timeout=3000)
                break
            except AssertionError:
                if attempt == 2:
                    raise
        await page.wait_for_timeout(300)
        await page.screenshot(path=str(out / f"detail-{lang}-{size}.png"))
    async with logged_in(browser, url, "head", lang, size) as page:
        await page.goto(url + "/reports/calls-vs-deals")
        await expect(page.locator("#report-table")).to_be_visible()
        await page.screenshot(path=str(out / f"report-{lang}-{size}.png"), full_page=size == "desk")


async def shoot_crm(browser: Browser, url: str, out: Path, lang: str, size: str) -> None:
    """The CRM's pages, as Anna sees them."""
    async with logged_in(browser, url, "anna", lang, size) as page:
        for close in await page.locator("[data-testid=card-close]").all():
            with contextlib.suppress(Exception):
                await close.click(timeout=1000)
        await page.goto(url + "/#clients")
        await expect(page.locator("[data-testid=party-row]").first).to_be_visible(timeout=SEEN_MS)
        await page.wait_for_timeout(500)
        await page.screenshot(path=str(out / f"clients-{lang}-{size}.png"))
        await page.locator("[data-testid=party-open]", has_text="Кузнецова").first.click()
        await expect(page.locator("[data-testid=timeline-call]").first).to_be_visible(timeout=SEEN_MS)
        await page.wait_for_timeout(500)
        await page.screenshot(path=str(out / f"card-{lang}-{size}.png"))
        await page.goto(url + "/#deals")
        await expect(page.locator("[data-testid=deal-card]").first).to_be_visible(timeout=SEEN_MS)
        await page.wait_for_timeout(500)
        await page.screenshot(path=str(out / f"deals-{lang}-{size}.png"))
        await page.goto(url + "/#tasks")
        await expect(page.locator("[data-testid=task-row]").first).to_be_visible(timeout=SEEN_MS)
        await page.wait_for_timeout(500)
        await page.screenshot(path=str(out / f"tasks-{lang}-{size}.png"))
        await page.locator("[data-testid=tasks-mode-week]").click()
        await expect(page.locator("[data-testid=calendar]")).to_be_visible(timeout=SEEN_MS)
        await page.wait_for_timeout(500)
        await page.screenshot(path=str(out / f"week-{lang}-{size}.png"))


async def shoot_all(url: str, out: Path) -> None:
    """Every language and size at once: the same demo call rings on every page."""
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        try:
            await asyncio.gather(
                *(shoot(browser, url, out, lang, size) for lang in LOCALES for size in SIZES)
            )
            for lang in LOCALES:
                for size in SIZES:
                    await shoot_crm(browser, url, out, lang, size)
        finally:
            await browser.close()


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--out", type=Path, default=Path("docs/screenshots"))
    args = parser.parse_args()
    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)
    with demo() as url:
        asyncio.run(shoot_all(url, out))
    for path in sorted(out.glob("*.png")):
        print(f"{path}  {path.stat().st_size // 1024} KiB")


if __name__ == "__main__":
    main()
