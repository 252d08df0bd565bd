"""Screenshots of the managers' page and the report for the README, taken from a running ``crmtel demo``.

    python -m tests.e2e.screenshots [--out docs/screenshots] [--only report tasks …] [--lang ru en]

Starts the demo in a temporary folder on free ports, logs in as a manager in Russian and English at a desk
(1366×900) and a phone (390×844) size, waits for a ringing card, and writes for each language and size:
``main-<lang>-<size>.png`` (a ringing card), ``history-<lang>-<size>.png`` (the history),
``detail-<lang>-<size>.png`` (a call's detail over it), ``callbacks-…`` (the callbacks to make and the search),
``settings-…`` (the manager's own mobile), the head's pages ``report-…`` (calls vs deals), ``queues-…`` (the
queue report) and ``board-…`` (the live board), and the CRM's pages: ``clients-…`` (the list), ``card-…`` (a
client's card), ``deals-…`` (the pipeline), ``deal-list-…`` (the deal list), ``tasks-…`` (the task list) and
``week-…`` (the week's calendar). Uses Debian's Chromium like the browser tests, one browser per language started in that
language, so date and time boxes read as that reader's browser shows them (12.01.2026 and 19:41 in Russian, not
12/01/2026 and 07:41 PM; Debian's chromium-l10n must be installed for that). ``--only report tasks`` and
``--lang ru`` retake just those pictures.
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
RINGING_SHOTS = ("main", "history", "detail")
# The head's pages: the picture's name → (the path, what shows the page is drawn, what is worth waiting a while
# for: the board with someone on a call).
HEAD_PAGES: dict[str, tuple[str, str, str | None]] = {
    "report": ("/reports/calls-vs-deals", "#report-table", None),
    "queues": ("/reports/queues", "[data-testid=queue-table]", None),
    "board": (
        "/board",
        "[data-testid=board-today] [data-testid=today-answered]",
        "[data-testid=talking-call]",
    ),
}
CRM_SHOTS = ("clients", "card", "deals", "deal-list", "tasks", "week")
# The manager's own views besides the calls and the CRM.
OWN_SHOTS = ("callbacks", "settings")
SHOTS = (*RINGING_SHOTS, *HEAD_PAGES, *CRM_SHOTS, *OWN_SHOTS)


def browser_language(lang: str) -> tuple[list[str], dict[str, str | float | bool]]:
    """Chromium's arguments and environment for a reader of ``lang``.

    Date and time boxes follow the browser's own language, not the page's locale (a context's ru-RU still draws
    12/01/2026 and 07:41 PM): ``--lang`` and LANG set it, and Chromium takes it only with that language's
    translation installed (Debian's chromium-l10n) — without it, it falls back to American English."""
    locale = LOCALES[lang][0]
    pak = f"{locale.split('-')[0]}.pak" if lang != "en" else "en-US.pak"
    dirs = {Path(os.path.realpath(CHROMIUM)).parent / "locales", Path("/usr/lib/chromium/locales")}
    if not any((d / pak).is_file() for d in dirs):
        raise SystemExit(
            f"Chromium has no {pak}: its date boxes would read as in English; install chromium-l10n"
        )
    args = [*CHROMIUM_ARGS, f"--lang={locale}"]
    env: dict[str, str | float | bool] = {**os.environ, "LANG": f"{locale.replace('-', '_')}.UTF-8"}
    return args, env


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


async def shoot(browser: Browser, url: str, out: Path, lang: str, size: str, wanted: set[str]) -> None:
    """The ringing card, the history, a call's detail and the head's pages of one language and size."""
    if wanted & set(RINGING_SHOTS):
        async with logged_in(browser, url, "anna", lang, size) as page:
            await _ringing(page, out, lang, size, wanted)
    if not wanted & set(HEAD_PAGES):
        return
    async with logged_in(browser, url, "head", lang, size) as page:
        for name, (path, drawn, best) in HEAD_PAGES.items():
            if name not in wanted:
                continue
            await page.goto(url + path)
            await expect(page.locator(drawn).first).to_be_visible(timeout=SEEN_MS)
            if best is not None:
                with contextlib.suppress(AssertionError):
                    await expect(page.locator(best).first).to_be_visible(timeout=RING_WAIT_MS)
            await page.wait_for_timeout(500)
            await page.screenshot(
                path=str(out / f"{name}-{lang}-{size}.png"), full_page=name == "report" and size == "desk"
            )


async def _ringing(page: Page, out: Path, lang: str, size: str, wanted: set[str]) -> None:
    ringing = page.locator("[data-testid=call-card][data-state=ringing]")
    # A known client calling in shows the most (company, manager, turnover, «Звонит на 101»): wait a while for
    # one, not for a call Anna dials herself.
    client = page.locator(
        "[data-testid=call-card][data-state=ringing][data-direction=inbound]:has([data-kind=client])"
    )
    shown = client.first
    try:
        await expect(shown).to_be_visible(timeout=RING_WAIT_MS)
    except AssertionError:
        shown = ringing.first
        await expect(shown).to_be_visible(timeout=RING_WAIT_MS)
    with contextlib.suppress(AssertionError):  # the client's history on the card, when it has one
        await expect(shown.locator(".tl-item").first).to_be_visible(timeout=5000)
    await page.wait_for_timeout(300)
    if "main" in wanted:
        await page.screenshot(path=str(out / f"main-{lang}-{size}.png"))
    await _close_cards(page)
    await page.click("[data-testid=history-refresh]")
    rows = page.locator("[data-testid=history-row]")
    await expect(rows.first).to_be_visible(timeout=SEEN_MS)
    if "history" in wanted:
        await _quiet_shot(page, out / f"history-{lang}-{size}.png")
    if "detail" not in wanted:
        return
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


async def _close_cards(page: Page) -> None:
    for close in await page.locator("[data-testid=card-close]").all():
        with contextlib.suppress(Exception):
            await close.click(timeout=1000)


async def _quiet_shot(page: Page, path: Path) -> None:
    """A page without the live cards the demo's calls keep bringing (the CRM's pages are what is shown)."""
    await _close_cards(page)
    # From the top, header included (typing in the search box scrolls a phone's page down to it).
    await page.evaluate("window.scrollTo(0, 0)")
    await page.wait_for_timeout(300)
    await page.screenshot(path=str(path))


async def shoot_crm(browser: Browser, url: str, out: Path, lang: str, size: str, wanted: set[str]) -> None:
    """The CRM's pages, as Anna sees them."""
    if not wanted & set(CRM_SHOTS):
        return
    async with logged_in(browser, url, "anna", lang, size) as page:
        if wanted & {"clients", "card"}:
            await page.goto(url + "/#clients")
            await expect(page.locator("[data-testid=party-row]").first).to_be_visible(timeout=SEEN_MS)
            await page.wait_for_timeout(500)
            if "clients" in wanted:
                await _quiet_shot(page, out / f"clients-{lang}-{size}.png")
        if "card" in wanted:
            await page.locator("[data-testid=party-open]", has_text="Кузнецова").first.click()
            await expect(page.locator("[data-testid=timeline-call]").first).to_be_visible(timeout=SEEN_MS)
            await page.wait_for_timeout(500)
            await _quiet_shot(page, out / f"card-{lang}-{size}.png")
        if wanted & {"deals", "deal-list"}:
            await page.goto(url + "/#deals")
            await expect(page.locator("[data-testid=pipeline] [data-testid=deal-card]").first).to_be_visible(
                timeout=SEEN_MS
            )
            await page.wait_for_timeout(500)
            if "deals" in wanted:
                await _quiet_shot(page, out / f"deals-{lang}-{size}.png")
        if "deal-list" in wanted:
            await page.get_by_test_id("deals-mode-list").click()
            await expect(page.locator("[data-testid=deal-list] [data-testid=deal-card]").first).to_be_visible(
                timeout=SEEN_MS
            )
            await page.wait_for_timeout(500)
            await _quiet_shot(page, out / f"deal-list-{lang}-{size}.png")
        if wanted & {"tasks", "week"}:
            await page.goto(url + "/#tasks")
            await expect(page.locator("[data-testid=task-row]").first).to_be_visible(timeout=SEEN_MS)
            await page.wait_for_timeout(500)
            if "tasks" in wanted:
                await _quiet_shot(page, out / f"tasks-{lang}-{size}.png")
        if "week" in wanted:
            await page.locator("[data-testid=tasks-mode-week]").click()
            await expect(page.locator("[data-testid=calendar]")).to_be_visible(timeout=SEEN_MS)
            await page.wait_for_timeout(500)
            await _quiet_shot(page, out / f"week-{lang}-{size}.png")


async def shoot_own(browser: Browser, url: str, out: Path, lang: str, size: str, wanted: set[str]) -> None:
    """Anna's callbacks (with a search for a client typed) and her settings."""
    if not wanted & set(OWN_SHOTS):
        return
    async with logged_in(browser, url, "anna", lang, size) as page:
        if "callbacks" in wanted:
            await page.goto(url + "/#callbacks")
            await expect(page.locator("[data-testid=callback-row]").first).to_be_visible(timeout=SEEN_MS)
            await page.get_by_test_id("search-input").fill("Кузн")
            await expect(page.locator("[data-testid=search-hit]").first).to_be_visible(timeout=SEEN_MS)
            await page.wait_for_timeout(500)
            await _quiet_shot(page, out / f"callbacks-{lang}-{size}.png")
        if "settings" in wanted:
            await page.goto(url + "/#settings")
            await expect(page.get_by_test_id("settings-form")).to_be_visible(timeout=SEEN_MS)
            await page.wait_for_timeout(500)
            await _quiet_shot(page, out / f"settings-{lang}-{size}.png")


async def shoot_all(url: str, out: Path, langs: list[str], wanted: set[str]) -> None:
    """Every language and size at once (one browser per language): the same demo call rings on every page."""
    async with async_playwright() as pw, contextlib.AsyncExitStack() as stack:
        browsers: dict[str, Browser] = {}
        for lang in langs:
            args, env = browser_language(lang)
            browsers[lang] = await pw.chromium.launch(
                executable_path=CHROMIUM, args=args, env=env, headless=True
            )
            stack.push_async_callback(browsers[lang].close)
        await asyncio.gather(
            *(shoot(browsers[lang], url, out, lang, size, wanted) for lang in langs for size in SIZES)
        )
        for lang in langs:
            for size in SIZES:
                await shoot_crm(browsers[lang], url, out, lang, size, wanted)
                await shoot_own(browsers[lang], url, out, lang, size, wanted)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--out", type=Path, default=Path("docs/screenshots"))
    parser.add_argument("--only", nargs="+", choices=SHOTS, default=list(SHOTS), help="the pictures to take")
    parser.add_argument("--lang", nargs="+", choices=list(LOCALES), default=list(LOCALES), dest="langs")
    args = parser.parse_args()
    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)
    with demo() as url:
        asyncio.run(shoot_all(url, out, args.langs, set(args.only)))
    for path in sorted(out.glob("*.png")):
        print(f"{path}  {path.stat().st_size // 1024} KiB")


if __name__ == "__main__":
    main()
