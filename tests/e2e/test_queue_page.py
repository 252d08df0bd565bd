"""The queue report page in headless Chromium: its table matches the CLI's JSON on the hand-counted data set."""

from __future__ import annotations

import asyncio
import json
import re
from pathlib import Path

import pytest
from aiohttp.test_utils import TestServer
from playwright.async_api import Browser, expect

from crmtel.cli import main
from crmtel.config import WebSettings
from crmtel.push.context import current_manager, translator
from crmtel.push.hub import Hub
from crmtel.push.web import create_app
from crmtel.reports.queue_queries import QueueQueries
from crmtel.reports.queue_web import queue_routes
from crmtel.store.db import Database
from tests.e2e.pagecheck import axe_violations
from tests.fixtures import queue_dataset as qd
from tests.fixtures.races import RACES_PROCESSES

pytestmark = [pytest.mark.e2e, RACES_PROCESSES]
PASSWORD = "queue-page-pass"
SEEN = 5_000


async def test_queue_page_table_matches_the_cli_and_passes_axe(
    db: Database, database_url: str, browser: Browser, tmp_path: Path
) -> None:
    """A head logs in, opens the queue report for the data set's period: every figure equals the CLI's JSON."""
    await qd.load(db, password=PASSWORD)
    app = create_app(
        WebSettings(port=0),
        db=db,
        hub=Hub(),
        routes=[queue_routes(QueueQueries(db), current_manager, timezone=qd.TZ, translate=translator)],
    )
    web = TestServer(app, host="127.0.0.1", port=0)
    await web.start_server()
    try:
        context = await browser.new_context(locale="en-US")
        page = await context.new_page()
        await page.goto(str(web.make_url("/")))
        await page.fill("#login-name", "hugo")
        await page.fill("#login-password", PASSWORD)
        await page.click("#login-submit")
        await expect(page.locator("#conn")).to_have_class(re.compile(r"\bon\b"), timeout=SEEN)
        await page.goto(str(web.make_url(f"/reports/queues?from={qd.FROM}&to={qd.TO}")))
        period = ["--from", qd.FROM.isoformat(), "--to", qd.TO.isoformat(), "--timezone", qd.TZ]
        out = tmp_path / "queues.json"
        args = [
            "--database-url",
            database_url,
            "report",
            "queues",
            *period,
            "--format",
            "json",
            "--output",
            str(out),
        ]
        assert await asyncio.to_thread(main, args) == 0
        cli = {q["queue"]: q for q in json.loads(out.read_text(encoding="utf-8"))["queues"]}
        for name, figures in cli.items():
            row = page.locator(f"tr.queue[data-queue={name}]")
            await expect(row.locator("td[data-key=offered]")).to_have_text(str(figures["offered"]))
            await expect(row.locator("td[data-key=answered]")).to_have_text(str(figures["answered"]))
            await expect(row.locator("td[data-key=abandoned]")).to_have_text(str(figures["abandoned"]))
            await expect(row.locator("td[data-key=service_level_pct]")).to_have_text(
                f"{figures['service_level_pct']:.1f}"
            )
            members = page.locator(f"tr.member[data-queue={name}]")
            await expect(members).to_have_count(len(figures["members"]))
        await expect(page.locator("[data-testid=heatmap-inbound] rect.cell")).to_have_count(7 * 24)
        assert await axe_violations(page, "main") == []
        await context.close()
    finally:
        await web.close()
