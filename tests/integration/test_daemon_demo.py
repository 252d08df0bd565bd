"""``crmtel demo`` in an empty directory: a newcomer gets the page, a working login and calls, with no PBX."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp

from tests.fixtures.csrf import page_like_session
from tests.fixtures.daemon import DaemonPool, clean_log, crmtel_cli, free_ports
from tests.fixtures.fake_ami import wait_until
from tests.fixtures.races import RACES_PROCESSES
from tests.integration.test_agi_server import env, fake_asterisk

# Races real processes (tests/fixtures/races.py).
pytestmark = RACES_PROCESSES


async def test_demo_serves_the_page_lets_anna_log_in_and_records_calls(
    pool: DaemonPool, tmp_path: Path
) -> None:
    """`crmtel demo --port --agi-port`: page within 20 s, anna/demo logs in, AGI routes, `calls list` shows calls.

    Also what a newcomer sees first: the report has calls and won deals for every demo manager, the history
    offers recordings that really play (WAV), and the simulated calls last as long as real ones.
    """
    workdir = tmp_path / "newcomer"
    workdir.mkdir()
    web, agi = free_ports(2)
    started = time.monotonic()
    wall_start = datetime.now(UTC)
    # Ten times real time: a simulated call of a minute or two ends within seconds (durations stay real).
    demo = pool.spawn(
        "demo", "--port", str(web), "--agi-port", str(agi), "--speed", "10", cwd=workdir, name="demo"
    )
    base = f"http://127.0.0.1:{web}"
    await demo.wait_http(base + "/", limit=20)
    assert time.monotonic() - started < 20
    assert base in demo.stdout(), demo.describe()
    assert (workdir / "crmtel.db").exists()

    # unsafe: keep cookies set by a bare IP address (127.0.0.1), as a browser does.
    async with page_like_session(cookie_jar=aiohttp.CookieJar(unsafe=True)) as http:
        async with http.get(base + "/") as response:
            assert response.status == 200
            assert "text/html" in response.headers["Content-Type"]
        async with http.post(base + "/api/login", json={"login": "anna", "password": "demo"}) as response:
            assert response.status == 200, await response.text()
            me = await response.json()
        assert me["login"] == "anna"
        async with http.get(base + "/api/me") as response:
            assert response.status == 200
        async with http.post(base + "/api/login", json={"login": "anna", "password": "wrong"}) as response:
            assert response.status == 401
        await _report_and_recordings(http, base)

    # The demo's own FastAGI port routes the seeded client (Ivan Petrov of ИП Петров) to anna's phone.
    route = (await fake_asterisk(agi, env(caller="+79161110001"))).variables
    assert (route["CRMTEL_ROUTE_KIND"], route["CRMTEL_ROUTE_TARGET"]) == ("extension", "101")

    records: list[dict[str, Any]] = []

    async def calls_recorded() -> bool:
        result = await crmtel_cli("calls", "list", "--format", "json", cwd=workdir)
        assert result.returncode == 0, result.stderr
        records[:] = json.loads(result.stdout)
        fresh = wall_start - timedelta(minutes=1)
        return any(datetime.fromisoformat(r["started_at"]) >= fresh for r in records)

    await wait_until(calls_recorded, limit=25)
    assert all(r["pbx"] == "pbx1" and r["linkedid"] for r in records)
    assert {r["direction"] for r in records} <= {"inbound", "outbound", "internal"}
    # Not just the seeded history: calls the simulator placed after the start are recorded as well.
    assert any(datetime.fromisoformat(r["started_at"]) >= wall_start - timedelta(minutes=1) for r in records)

    code = await demo.terminate(limit=5)
    assert code == 0, demo.describe()
    assert clean_log(demo.stderr()) == [], demo.describe()


async def _report_and_recordings(http: aiohttp.ClientSession, base: str) -> None:
    """As the head: this month's report is non-zero for every manager; a history recording plays as WAV."""
    async with http.post(base + "/api/login", json={"login": "head", "password": "demo"}) as response:
        assert response.status == 200, await response.text()
    async with http.get(base + "/reports/calls-vs-deals.json") as response:
        assert response.status == 200, await response.text()
        report = await response.json()
    rows = {r["login"]: r for r in report["rows"]}
    for login in ("anna", "boris", "vera", "gleb"):
        assert rows[login]["calls"] > 0, rows[login]
        assert rows[login]["deals_won"] > 0, rows[login]
    async with http.get(base + "/api/calls?limit=200") as response:
        calls = (await response.json())["calls"]
    # Ended calls: one still in progress (the simulator runs ten times faster now) has talked 0 s so far.
    talked = [c["talk_seconds"] for c in calls if c["outcome"] == "answered" and c["ended_at"] is not None]
    assert talked
    # Real durations at ten times the speed: the simulator's shortest talk (15 s) lasts 1.5 s.
    assert min(talked) >= 1
    playable = [c for c in calls if c["recording"]]
    assert playable
    assert any(c["outcome"] == "missed" and c["recording"] is None for c in calls)
    async with http.get(base + playable[0]["recording"]) as response:
        assert response.status == 200
        assert response.content_type == "audio/wav"
        assert (await response.read())[:4] == b"RIFF"


async def test_demo_speed_runs_the_simulated_pbx_that_many_times_faster(
    pool: DaemonPool, tmp_path: Path
) -> None:
    """`crmtel demo --speed 100`: a call every 20 s of simulated time is 5 a second of ours, so a dozen calls are
    recorded within seconds (at real time the first few would take minutes: --speed used to be ignored)."""
    workdir = tmp_path / "fast"
    workdir.mkdir()
    web, agi = free_ports(2)
    wall_start = datetime.now(UTC)
    demo = pool.spawn(
        "demo", "--port", str(web), "--agi-port", str(agi), "--speed", "100", cwd=workdir, name="demo-fast"
    )
    await demo.wait_http(f"http://127.0.0.1:{web}/", limit=20)

    async def simulated_calls() -> bool:
        result = await crmtel_cli("calls", "list", "--format", "json", cwd=workdir)
        assert result.returncode == 0, result.stderr
        fresh = [
            r for r in json.loads(result.stdout) if datetime.fromisoformat(r["started_at"]) >= wall_start
        ]
        return len(fresh) >= 12

    await wait_until(simulated_calls, limit=20)
    code = await demo.terminate(limit=5)
    assert code == 0, demo.describe()
