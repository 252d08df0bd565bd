"""``crmtel run`` with a signed webhook subscription, killed with SIGKILL while the receiver holds an answer: the
restart sends that message again under the same ``webhook-id``, so a receiver that dedupes by it sees each event
once, and nothing is lost."""

from __future__ import annotations

from pathlib import Path

from crmtel.store.calls import CallRepository
from crmtel.store.db import Database
from crmtel.store.outbox import OutboxRepository
from tests.fixtures.daemon import DaemonPool, free_ports, linkedids, pbx_settings, write_config
from tests.fixtures.fake_ami import wait_for, wait_until
from tests.fixtures.races import RACES_PROCESSES
from tests.fixtures.traces import SCENARIOS, load_expected
from tests.integration.test_ami_pipeline import serving
from tests.integration.test_daemon_crash import busy_pbx, wait_all_ended, wait_logins
from tests.integration.test_outbox import SECRET, _receiver

# Races real processes (tests/fixtures/races.py).
pytestmark = RACES_PROCESSES


async def _settled(db: Database) -> bool:
    return set(await OutboxRepository(db).states("hook")) <= {"delivered"}


async def test_kill_9_with_a_webhook_on_the_wire_loses_nothing_and_repeats_only_its_id(
    pool: DaemonPool, db: Database, database_url: str, traces_dir: Path, tmp_path: Path
) -> None:
    """The receiver took a message but held its answer when crmtel was killed; the restart delivers every
    event, signatures valid, the held one again under its webhook-id (deduplicated by the receiver)."""
    stream = busy_pbx(traces_dir)
    half = len(stream) // 2
    async with _receiver() as receiver, serving(stream, pause_after=half, speed=8.0) as server:
        web, agi = free_ports(2)
        config = write_config(
            tmp_path / "crmtel.toml",
            {
                "ami": pbx_settings("pbx1", server.port),
                "routing": {"agi_host": "127.0.0.1", "agi_port": agi},
                "web": {"host": "127.0.0.1", "port": web},
                "log": {"level": "info", "json_output": False},
                "outbox": {
                    "lease_seconds": 5,
                    "poll_seconds": 0.1,
                    "retry_min_seconds": 0.2,
                    "retry_max_seconds": 1,
                },
                "webhooks": [{"url": receiver.url, "secret": SECRET, "name": "hook"}],
            },
            database_url=database_url,
        )
        receiver.hold_seconds = 30.0
        first = pool.spawn("--config", str(config), "run", name="first")
        await first.wait_http(f"http://127.0.0.1:{web}/")
        await wait_for(lambda: len(receiver.accepted) >= 1, limit=30)
        await first.kill9()
        receiver.hold_seconds = 0.0
        second = pool.spawn("--config", str(config), "run", name="second")
        await second.wait_http(f"http://127.0.0.1:{web}/")
        await wait_logins(server, 2)
        server.resume()
        await wait_all_ended(CallRepository(db), linkedids(stream), limit=60)
        await wait_until(lambda: _settled(db), limit=60)
        assert await second.terminate(limit=10) == 0, second.describe()
    assert receiver.bad_signatures == 0
    # The message on the wire at the kill came again under its own webhook-id; nothing else twice.
    assert max(receiver.seen.values()) == 2
    assert all(n in (1, 2) for n in receiver.seen.values())
    staged = sum((await OutboxRepository(db).states("hook")).values())
    assert len(receiver.accepted) == staged
    for scenario in SCENARIOS:
        assert receiver.types_of(load_expected(scenario)["linkedid"]).count("call.ended") == 1, scenario
