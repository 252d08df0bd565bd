"""Three ``crmtel run`` nodes with a signed webhook subscription: the PBX's leader and the node whose message the
receiver holds are killed with SIGKILL; the survivors deliver the rest, the held message again under its
``webhook-id``, nothing lost and nothing else twice."""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import select

from crmtel.store.calls import CallRepository
from crmtel.store.db import Database
from crmtel.store.leases import LeaseRepository
from crmtel.store.models import ConnectorEventRow
from crmtel.store.outbox import OutboxRepository
from tests.cluster.conftest import REDIS_URL
from tests.cluster.test_cluster_daemons import wait_leader
from tests.fixtures.daemon import DaemonPool, Ports, free_ports, linkedids, pbx_settings, write_config
from tests.fixtures.fake_ami import wait_for, wait_until
from tests.fixtures.races import RACES_PROCESSES
from tests.fixtures.traces import SCENARIOS, load_expected
from tests.integration.test_ami_pipeline import serving
from tests.integration.test_daemon_crash import SPEED, busy_pbx, wait_all_ended, wait_logins
from tests.integration.test_outbox import SECRET, _receiver

# Races real processes (tests/fixtures/races.py).
pytestmark = RACES_PROCESSES

NODES = ("node-a", "node-b", "node-c")


@pytest.fixture
def pool(tmp_path: Path) -> Iterator[DaemonPool]:
    """Starts crmtel processes; whatever still runs at the end of the test is killed."""
    daemons = DaemonPool(tmp_path)
    yield daemons
    for daemon in daemons.started:
        if daemon.alive():
            os.kill(daemon.pid, signal.SIGCONT)
    daemons.close()


async def _settled(db: Database) -> bool:
    return set(await OutboxRepository(db).states("hook")) <= {"delivered"}


async def test_a_killed_leader_and_sender_leave_each_webhook_event_received_once(
    pool: DaemonPool, db: Database, database_url: str, traces_dir: Path, tmp_path: Path, stream_name: str
) -> None:
    """kill -9 of the leader and of the node whose message is held: every event arrives, signed, once per id."""
    stream = busy_pbx(traces_dir)
    half = len(stream) // 2
    leases = LeaseRepository(db)
    async with _receiver() as receiver, serving(stream, pause_after=half, speed=SPEED) as server:
        free = free_ports(2 * len(NODES))
        nodes = {}
        for i, node in enumerate(NODES):
            ports = Ports(web=free[2 * i], agi=free[2 * i + 1], ami=server.port)
            config = write_config(
                tmp_path / f"{node}.toml",
                {
                    "ami": pbx_settings("pbx1", server.port),
                    "routing": {"agi_host": "127.0.0.1", "agi_port": ports.agi},
                    "web": {"host": "127.0.0.1", "port": ports.web},
                    "log": {"level": "info", "json_output": False},
                    "cluster": {
                        "enabled": True,
                        "node_name": node,
                        "redis_url": REDIS_URL,
                        "stream": stream_name,
                        "poll_seconds": 0.5,
                        "session_timeout_seconds": 2.0,
                    },
                    "outbox": {"lease_seconds": 5, "poll_seconds": 0.1, "retry_min_seconds": 0.2},
                    "webhooks": [{"url": receiver.url, "secret": SECRET, "name": "hook"}],
                },
                database_url=database_url,
            )
            nodes[node] = (pool.spawn("--config", str(config), "run", name=node), ports)
        for daemon, ports in nodes.values():
            await daemon.wait_http(ports.web_url + "/", limit=60.0)
        leader, _epoch = await wait_leader(leases)
        receiver.hold_seconds = 30.0
        await wait_for(lambda: len(receiver.accepted) >= 1, limit=60)
        sender = await _sender_of_held_message(db)
        doomed = {leader, sender}
        for name in doomed:
            await nodes[name][0].kill9()
        receiver.hold_seconds = 0.0
        await wait_leader(leases, other_than=leader, limit=10.0)
        await wait_logins(server, 2, limit=10.0)
        server.resume()
        await wait_all_ended(CallRepository(db), linkedids(stream), limit=60)
        await wait_until(lambda: _settled(db), limit=60)
        for name, (daemon, _ports) in nodes.items():
            if name not in doomed:
                assert await daemon.terminate(limit=10) == 0, daemon.describe()
    assert receiver.bad_signatures == 0
    assert max(receiver.seen.values()) == 2, "the held message was not sent again"
    assert all(n in (1, 2) for n in receiver.seen.values())
    staged = sum((await OutboxRepository(db).states("hook")).values())
    assert len(receiver.accepted) == staged
    for scenario in SCENARIOS:
        assert receiver.types_of(load_expected(scenario)["linkedid"]).count("call.ended") == 1, scenario


async def _sender_of_held_message(db: Database) -> str:
    """The node holding the claim of a message the receiver has not answered yet."""
    e = ConnectorEventRow
    async with db.session() as session:
        rows = (
            (
                await session.execute(
                    select(e.claimed_by).where(
                        e.connector == "hook", e.state == "pending", e.claimed_by.is_not(None)
                    )
                )
            )
            .scalars()
            .all()
        )
    assert rows, "no message on the wire"
    return str(rows[0])
