"""``crmtel run`` as a real process: records from a fake PBX land, FastAGI and ``/route`` answer, SIGTERM stops it."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import aiohttp

from crmtel.fakepbx.server import load_ami, merge_streams
from crmtel.routing.rules import last_month
from crmtel.store.calls import CallRepository
from crmtel.store.db import Database
from crmtel.store.managers import ManagerRepository
from crmtel.store.parties import NewClient, PartyRepository
from tests.fixtures.daemon import DaemonPool, clean_log, daemon_config, pbx_settings, stored_state
from tests.fixtures.fake_ami import assert_record_matches, wait_until
from tests.fixtures.races import RACES_PROCESSES
from tests.fixtures.traces import SCENARIOS, load_expected
from tests.integration.test_agi_server import env, fake_asterisk
from tests.integration.test_ami_pipeline import serving

# Races real processes (tests/fixtures/races.py).
pytestmark = RACES_PROCESSES


async def test_run_stores_every_replayed_call_and_stops_cleanly_on_sigterm(
    pool: DaemonPool, db: Database, database_url: str, traces_dir: Path, tmp_path: Path
) -> None:
    """Nine overlapping real calls through `crmtel run` are stored as expected; SIGTERM exits 0, no traceback."""
    stream = merge_streams([(i * 1.5, load_ami(traces_dir / f"{s}.ami")) for i, s in enumerate(SCENARIOS)])
    expected = {load_expected(s)["linkedid"]: load_expected(s) for s in SCENARIOS}
    calls = CallRepository(db)
    async with serving(stream, speed=8.0) as server:
        config, ports = daemon_config(tmp_path / "crmtel.toml", database_url, server.port)
        daemon = pool.spawn("--config", str(config), "run")
        await daemon.wait_http(ports.web_url + "/")

        async def all_ended() -> bool:
            return (await stored_state(calls)).ended >= set(expected)

        await wait_until(all_ended, limit=30)
        assert daemon.alive(), daemon.describe()
        code = await daemon.terminate(limit=5)
    assert code == 0, daemon.describe()
    assert clean_log(daemon.stderr()) == [], daemon.describe()
    assert server.logins == 1
    counts = await calls.count()
    assert set(counts) == {("pbx1", linkedid) for linkedid in expected}
    assert set(counts.values()) == {1}
    for stored in await calls.between():
        assert_record_matches(stored.record, expected[stored.record.linkedid])
        assert stored.live_state is None


async def _seed_client_with_manager(db: Database) -> None:
    anna = await ManagerRepository(db).save(login="anna", name="Анна Смирнова", extensions=("101",))
    await PartyRepository(db).add_client(
        NewClient(
            name="Romashka",
            phones=("+79161110001",),
            manager_id=anna.id,
            turnover=Decimal(5000),
            turnover_month=last_month(datetime.now(UTC).date()),
        )
    )


async def test_running_daemon_routes_a_known_client_over_fastagi_and_http(
    pool: DaemonPool, db: Database, database_url: str, tmp_path: Path
) -> None:
    """The daemon's FastAGI port sends a seeded client to their manager's extension; GET /route agrees."""
    await _seed_client_with_manager(db)
    async with serving([]) as server:
        config, ports = daemon_config(tmp_path / "crmtel.toml", database_url, server.port)
        daemon = pool.spawn("--config", str(config), "run")
        await daemon.wait_http(ports.web_url + "/")

        exchange = await fake_asterisk(ports.agi, env(caller="8 916 111-00-01"))
        assert exchange.commands[-1] == 'SET VARIABLE CRMTEL_ROUTE_KIND "extension"'
        variables = exchange.variables
        assert variables["CRMTEL_ROUTE_KIND"] == "extension"
        assert variables["CRMTEL_ROUTE_TARGET"] == "101"
        assert variables["CRMTEL_CALLER_NAME"] == "Romashka"
        unknown = (await fake_asterisk(ports.agi, env(caller="+79169999999"))).variables
        assert unknown["CRMTEL_ROUTE_KIND"] == "queue"

        async with aiohttp.ClientSession() as http:
            query = {"caller": "89161110001", "did": "4951234567"}
            async with http.get(ports.web_url + "/route", params=query) as response:
                assert response.status == 200
                decision = await response.json()
            assert (decision["kind"], decision["target"]) == ("extension", "101")
            async with http.get(ports.web_url + "/route", params={**query, "format": "text"}) as response:
                assert response.status == 200
                assert (await response.text()).startswith("kind=extension&target=101&")
            # Through a proxy the request is no longer local: no token, no answer.
            async with http.get(
                ports.web_url + "/route", params=query, headers={"X-Forwarded-For": "203.0.113.9"}
            ) as response:
                assert response.status == 401
        code = await daemon.terminate(limit=5)
    assert code == 0, daemon.describe()
    assert clean_log(daemon.stderr()) == [], daemon.describe()


async def test_two_pbxes_feed_one_daemon_and_keep_their_calls_apart(
    pool: DaemonPool, db: Database, database_url: str, traces_dir: Path, tmp_path: Path
) -> None:
    """Two PBXs (`[ami]` and a `[[pbx]]`) sending the same Linkedid give two records, one per PBX, both right."""
    scenario = "direct-noanswer-then-queue"
    expected = load_expected(scenario)
    stream = load_ami(traces_dir / f"{scenario}.ami")
    calls = CallRepository(db)
    async with serving(stream, speed=8.0) as main, serving(stream, speed=8.0) as branch:
        config, ports = daemon_config(
            tmp_path / "crmtel.toml", database_url, main.port, more_pbx=[pbx_settings("branch", branch.port)]
        )
        daemon = pool.spawn("--config", str(config), "run")
        await daemon.wait_http(ports.web_url + "/")

        async def both_ended() -> bool:
            stored = await calls.between()
            return len(stored) == 2 and all(s.record.ended_at is not None for s in stored)

        await wait_until(both_ended, limit=30)
        code = await daemon.terminate(limit=5)
    assert code == 0, daemon.describe()
    assert clean_log(daemon.stderr()) == [], daemon.describe()
    assert (main.logins, branch.logins) == (1, 1)
    counts = await calls.count()
    assert counts == {("pbx1", expected["linkedid"]): 1, ("branch", expected["linkedid"]): 1}
    for stored in await calls.between():
        assert_record_matches(stored.record, expected)
