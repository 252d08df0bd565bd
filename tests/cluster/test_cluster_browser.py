"""A real browser (Debian's Chromium) logged in on a standby node shows the popup of a call the leader follows."""

from __future__ import annotations

from pathlib import Path

import pytest
from playwright.async_api import Browser, expect

from crmtel.fakepbx.server import load_ami
from crmtel.store.db import Database
from crmtel.store.leases import LeaseRepository
from crmtel.store.managers import ManagerRepository
from tests.cluster.nodes import start_nodes, wait_leader
from tests.e2e.conftest import browser  # noqa: F401  (the shared Chromium fixture)
from tests.fixtures.daemon import DaemonPool
from tests.fixtures.races import RACES_PROCESSES
from tests.integration.test_ami_pipeline import serving

# Races real processes (tests/fixtures/races.py).
pytestmark = RACES_PROCESSES


@pytest.mark.e2e
async def test_the_ringing_card_pops_up_in_chromium_on_a_node_that_does_not_follow_the_pbx(
    pool: DaemonPool,
    db: Database,
    database_url: str,
    traces_dir: Path,
    tmp_path: Path,
    stream_name: str,
    browser: Browser,  # noqa: F811
) -> None:
    """Anna logs in through the page's form on a standby; the leader's call reaches her card through Redis."""
    await ManagerRepository(db).save(
        login="anna", name="Анна Смирнова", extensions=("101",), password="pw-anna-1"
    )
    stream = load_ami(traces_dir / "direct-answered.ami")
    async with serving(stream, pause_after=0, speed=1.0) as server:
        nodes = await start_nodes(pool, tmp_path, database_url, server.port, stream_name)
        leader, _epoch = await wait_leader(LeaseRepository(db))
        standby = next(name for name in nodes if name != leader)
        context = await browser.new_context(locale="ru-RU", timezone_id="Europe/Moscow")
        page = await context.new_page()
        await page.goto(nodes[standby][1].web_url + "/")
        await page.fill("#login-name", "anna")
        await page.fill("#login-password", "pw-anna-1")
        await page.click("#login-submit")
        await expect(page.locator("[data-testid=conn].on")).to_be_visible(timeout=10_000)
        server.resume()
        card = page.get_by_test_id("call-card")
        await expect(card).to_be_visible(timeout=10_000)
        await expect(page.get_by_test_id("card-name")).to_contain_text("Ivan Petrov", timeout=10_000)
        await context.close()
        for daemon, _ports in nodes.values():
            assert await daemon.terminate(limit=10) == 0, daemon.describe()
