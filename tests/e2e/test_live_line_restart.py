"""A real ``crmtel run`` restarted (SIGTERM, as systemctl restart does) under a manager's open page in the middle
of a call: the new daemon learns the call again from the store and the PBX, and the page, reconnecting by itself,
keeps the call's card in progress with the talk timer counting from the PBX's answer time (ru-RU, desk and phone)."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from playwright.async_api import Browser, expect

from crmtel.fakepbx.server import FakeAmiServer, StreamItem, load_ami
from crmtel.store.db import Database
from tests.e2e.test_live_line import OUTBOUND_ID, VIEWPORTS, talk_seconds
from tests.e2e.test_popup_calls import index_of
from tests.fixtures.daemon import DaemonPool, clean_log, daemon_config
from tests.fixtures.fake_ami import wait_for
from tests.fixtures.races import RACES_PROCESSES
from tests.integration.test_web_app import PASSWORD, seed_managers

pytestmark = [pytest.mark.e2e, RACES_PROCESSES]

SEEN = 5_000  # ms the browser may take to show a change
BACK = 30_000  # ms a page may take to find a restarted daemon (its backoff, the daemon's start-up)
ANSWERED_AGO = 40.0  # s: the call was answered well before the restart, so a timer restarted at 0 shows


@pytest.mark.parametrize("viewport", VIEWPORTS)
async def test_a_call_in_progress_keeps_its_card_and_timer_across_a_real_daemon_restart(
    pool: DaemonPool,
    db: Database,
    database_url: str,
    browser: Browser,
    traces_dir: Path,
    tmp_path: Path,
    viewport: tuple[int, int],
) -> None:
    """Anna talks on a call she dialled from her desk (nothing typed in its card); crmtel is restarted. Her page
    says the link is down, then live again without a reload, still shows the call in progress with the talk
    time agreeing with the PBX's answer time within 1 s, and the call's end reaches the card."""
    width, height = viewport
    await seed_managers(db)
    stream: list[StreamItem] = list(load_ami(traces_dir / "outbound-answered.ami"))
    answer = index_of(stream, "DialEnd", DialStatus="ANSWER")
    epoch = time.time() - ANSWERED_AGO - stream[answer].t
    answered_at = epoch + stream[answer].t
    server = FakeAmiServer(stream, pause_after=answer + 1, epoch=epoch)
    await server.start()
    try:
        config, ports = daemon_config(tmp_path / "crmtel.toml", database_url, server.port)
        first = pool.spawn("--config", str(config), "run", name="first")
        await first.wait_http(ports.web_url + "/")
        context = await browser.new_context(
            locale="ru-RU", timezone_id="Europe/Moscow", viewport={"width": width, "height": height}
        )
        anna = await context.new_page()
        await anna.goto(ports.web_url + "/")
        await anna.fill("#login-name", "anna")
        await anna.fill("#login-password", PASSWORD)
        await anna.click("#login-submit")
        await expect(anna.locator("#conn")).to_have_text("на связи", timeout=SEEN)
        card = anna.locator(f"[data-call-id='{OUTBOUND_ID}']")
        # A page opened mid-call gets the call from the hello's snapshot.
        await expect(card.get_by_test_id("card-status")).to_have_text(
            "Разговор — вы звоните (101)", timeout=BACK
        )

        assert await first.terminate(limit=10) == 0, first.describe()
        assert clean_log(first.stderr()) == [], first.describe()
        await expect(anna.locator("#conn")).not_to_have_text("на связи", timeout=SEEN)
        second = pool.spawn("--config", str(config), "run", name="second")
        await second.wait_http(ports.web_url + "/")
        await wait_for(lambda: server.logins >= 2, limit=30)
        await expect(anna.locator("#conn")).to_have_text("на связи", timeout=BACK)

        await expect(card.get_by_test_id("card-status")).to_have_text(
            "Разговор — вы звоните (101)", timeout=SEEN
        )
        await expect(card.get_by_test_id("talk-clock")).to_be_visible()
        shown = await talk_seconds(anna)
        truth = time.time() - answered_at
        assert abs(shown - truth) <= 1.0, (shown, truth)
        assert truth >= ANSWERED_AGO
        # A second look after the reconnect: the resync of the new daemon changed nothing for this call.
        await anna.reload()
        await expect(anna.locator("#conn")).to_have_text("на связи", timeout=SEEN)
        await expect(card.get_by_test_id("card-status")).to_have_text(
            "Разговор — вы звоните (101)", timeout=SEEN
        )
        shown = await talk_seconds(anna)
        assert abs(shown - (time.time() - answered_at)) <= 1.0, shown

        server.resume()
        await expect(card.get_by_test_id("card-status")).to_contain_text("Завершён", timeout=BACK)
        await context.close()
        assert await second.terminate(limit=10) == 0, second.describe()
        assert clean_log(second.stderr()) == [], second.describe()
    finally:
        await server.close()
