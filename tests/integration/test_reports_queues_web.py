"""The queue report page: its table, heatmaps and downloads agree with the CLI on the hand-counted data set."""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import date

import aiohttp
import pytest
from aiohttp import web

from crmtel.cli import main
from crmtel.domain import Manager
from crmtel.i18n import Translator
from crmtel.reports.queries import ReportQueries
from crmtel.reports.queue_queries import QueueQueries
from crmtel.reports.queue_web import queue_routes
from crmtel.reports.web import report_routes
from crmtel.store.db import Database
from crmtel.store.managers import ManagerRepository
from tests.fixtures import queue_dataset as qd

QUERY = f"from={qd.FROM.isoformat()}&to={qd.TO.isoformat()}"


@dataclass
class Site:
    """The queue routes on an ephemeral port; ``get(path, login)`` fakes who is logged in."""

    url: str
    http: aiohttp.ClientSession
    database_url: str

    async def get(self, path: str, user: str | None, lang: str = "en") -> aiohttp.ClientResponse:
        headers = {"X-Test-User": user, "X-Test-Lang": lang} if user else {}
        return await self.http.get(self.url + path, headers=headers)


@pytest.fixture
async def site(db: Database, database_url: str) -> AsyncIterator[Site]:
    """Queue routes over the queue data set, with a header-based fake login and language."""
    await qd.load(db)
    users: dict[str, Manager] = {m.login: m for m in await ManagerRepository(db).all()}
    app = web.Application()
    app.router.add_routes(
        queue_routes(
            QueueQueries(db),
            lambda request: users.get(request.headers.get("X-Test-User", "")),
            timezone=qd.TZ,
            today=lambda: date(2026, 11, 2),
            translate=lambda request: Translator.for_locale(
                request.headers.get("X-Test-Lang", "en"), zone=qd.TZ
            ),
        )
    )
    runner = web.AppRunner(app)
    await runner.setup()
    tcp = web.TCPSite(runner, "127.0.0.1", 0)
    await tcp.start()
    port = runner.addresses[0][1]
    async with aiohttp.ClientSession() as http:
        yield Site(f"http://127.0.0.1:{port}", http, database_url)
    await runner.cleanup()


def _cells(html: str, row_attrs: str) -> dict[str, str]:
    row = re.search(rf"<tr {re.escape(row_attrs)}>(.*?)</tr>", html)
    assert row is not None, row_attrs
    return dict(re.findall(r'<td data-key="([a-z_0-9]+)">([^<]*)</td>', row.group(1)))


async def test_page_table_shows_the_counted_figures_and_heatmaps(site: Site) -> None:
    """The head's page: retail and member rows carry the hand count; both heatmaps count their calls."""
    resp = await site.get(f"/reports/queues?{QUERY}", "hugo")
    assert resp.status == 200
    html = await resp.text()
    retail = _cells(html, 'class="queue" data-queue="retail"')
    assert (retail["offered"], retail["answered"], retail["abandoned"]) == ("6", "4", "2")
    assert (retail["wait_p90_s"], retail["service_level_pct"], retail["talk_avg_s"]) == (
        "20.4",
        "50.0",
        "52.5",
    )
    boris = _cells(html, 'class="member" data-queue="retail" data-extension="Boris Orlov"')
    assert (boris["offered"], boris["answered"], boris["rang_unanswered"]) == ("5", "3", "2")
    assert "Vera &lt;b&gt;Lebedeva&lt;/b&gt;" in html
    counts = re.findall(r'data-testid="heatmap-(inbound|missed)".*?</svg>', html)
    assert counts == ["inbound", "missed"]
    inbound = sum(
        int(n) for n in re.findall(r'data-count="(\d+)"', html.split('data-testid="heatmap-missed"')[0])
    )
    assert inbound == sum(v[0] for v in qd.EXPECTED_HEATMAP.values())


async def test_downloads_are_the_cli_output(site: Site, capsys: pytest.CaptureFixture[str]) -> None:
    """The page's comma-separated CSV is the CLI's after its BOM; its JSON has the same queues."""
    # The CLI speaks the configured language (Russian by default); the page the reader's.
    csv_page = (
        await (await site.get(f"/reports/queues.csv?{QUERY}&sep=comma", "hugo", lang="ru")).text()
    ).removeprefix("\ufeff")
    json_page = json.loads(await (await site.get(f"/reports/queues.json?{QUERY}", "hugo")).text())
    period = ["--from", qd.FROM.isoformat(), "--to", qd.TO.isoformat(), "--timezone", qd.TZ]
    args = ["--database-url", site.database_url, "report", "queues", *period]
    code = await asyncio.to_thread(main, [*args, "--format", "csv"])
    assert code == 0
    cli_csv = capsys.readouterr().out
    assert csv_page.replace("\r\n", "\n") == cli_csv.replace("\r\n", "\n")
    await asyncio.to_thread(main, [*args, "--format", "json"])
    cli_json = json.loads(capsys.readouterr().out)
    assert json_page["queues"] == cli_json["queues"]
    xlsx = await site.get(f"/reports/queues.xlsx?{QUERY}", "hugo")
    assert xlsx.status == 200
    assert (await xlsx.read())[:2] == b"PK"


async def test_presets_language_and_access(site: Site) -> None:
    """?preset=yesterday is 1 Nov; Russian words on request; managers 403, strangers 401, bad input 400."""
    html = await (await site.get("/reports/queues?preset=yesterday", "hugo", lang="ru")).text()
    assert '<html lang="ru">' in html
    assert "Очереди" in html
    # The days in a Russian reader's words (Babel writes «г.» after a narrow no-break space).
    assert "1 нояб. 2026 г. – 1 нояб. 2026 г. (Europe/Moscow)" in html.replace("\u202f", " ")
    retail = _cells(html, 'class="queue" data-queue="retail"')
    # A Russian reader's digits, as on the calls report: a decimal comma.
    assert re.fullmatch(r"\d+,\d", retail["service_level_pct"]), retail
    assert (await site.get(f"/reports/queues?{QUERY}", "boris")).status == 403
    assert (await site.get(f"/reports/queues?{QUERY}", None)).status == 401
    for bad in (
        "preset=fortnight",
        "from=2026-11-03&to=2026-11-01",
        "from=garbage",
        "from=2020-01-01&to=2026-01-01",
    ):
        assert (await site.get(f"/reports/queues?{bad}", "hugo")).status == 400, bad


async def test_calls_vs_deals_page_shows_the_heatmaps_to_heads_only(db: Database) -> None:
    """The calls-vs-deals page carries both heatmaps for a head (same counts), none on a manager's own page."""
    await qd.load(db)
    repo = ManagerRepository(db)
    users: dict[str, Manager] = {m.login: m for m in await repo.all()}
    app = web.Application()
    app.router.add_routes(
        report_routes(
            ReportQueries(db),
            lambda request: users.get(request.headers.get("X-Test-User", "")),
            repo,
            timezone=qd.TZ,
            heatmaps=QueueQueries(db).heatmap,
        )
    )
    runner = web.AppRunner(app)
    await runner.setup()
    tcp = web.TCPSite(runner, "127.0.0.1", 0)
    await tcp.start()
    url = f"http://127.0.0.1:{runner.addresses[0][1]}/reports/calls-vs-deals?{QUERY}"
    try:
        async with aiohttp.ClientSession() as http:
            head = await (await http.get(url, headers={"X-Test-User": "hugo"})).text()
            manager = await (await http.get(url, headers={"X-Test-User": "boris"})).text()
    finally:
        await runner.cleanup()
    assert 'data-testid="heatmap-inbound"' in head
    assert 'data-testid="heatmap-missed"' in head
    missed = head.split('data-testid="heatmap-missed"')[1]
    assert sum(int(n) for n in re.findall(r'data-count="(\d+)"', missed)) == 3
    assert "heatmap" not in manager
