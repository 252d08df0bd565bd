"""Three ``crmtel run`` nodes with Bitrix24: the leader is killed with SIGKILL while a finish is on the wire;
the outbox is delivered by the surviving nodes and the portal keeps exactly one call per call."""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import select

from crmtel.bitrix24.web import PATH
from crmtel.store.calls import CallRepository
from crmtel.store.db import Database
from crmtel.store.leases import LeaseRepository
from crmtel.store.models import ConnectorDeliveryRow, ConnectorEventRow
from tests.cluster.conftest import REDIS_URL
from tests.cluster.test_cluster_daemons import wait_leader
from tests.fixtures.bitrix24 import CLIENT_ID, CLIENT_SECRET, fake_portal, recordings
from tests.fixtures.daemon import DaemonPool, Ports, free_ports, linkedids, pbx_settings, write_config
from tests.fixtures.fake_ami import wait_for, wait_until
from tests.fixtures.races import RACES_PROCESSES
from tests.fixtures.traces import SCENARIOS
from tests.integration.test_ami_pipeline import serving
from tests.integration.test_bitrix24 import _assert_one_activity_per_call, _settled
from tests.integration.test_daemon_crash import SPEED, busy_pbx, wait_all_ended, wait_logins

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


async def test_a_killed_leader_mid_delivery_leaves_one_bitrix24_call_per_call(
    pool: DaemonPool, db: Database, database_url: str, traces_dir: Path, tmp_path: Path, stream_name: str
) -> None:
    """kill -9 of the leader with a finish held by the portal: the other nodes deliver the rest, nothing twice."""
    monitor = recordings(tmp_path / "monitor")
    stream = busy_pbx(traces_dir)
    half = len(stream) // 2
    leases = LeaseRepository(db)
    async with fake_portal() as fake, serving(stream, pause_after=half, speed=SPEED) as server:
        free = free_ports(2 * len(NODES))
        nodes = {}
        for i, node in enumerate(NODES):
            ports = Ports(web=free[2 * i], agi=free[2 * i + 1], ami=server.port)
            config = write_config(
                tmp_path / f"{node}.toml",
                {
                    "ami": pbx_settings("pbx1", server.port),
                    "routing": {"agi_host": "127.0.0.1", "agi_port": ports.agi},
                    "web": {"host": "127.0.0.1", "port": ports.web, "recordings_dir": str(monitor)},
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
                    "bitrix24": {
                        "portal": fake.url,
                        "client_id": CLIENT_ID,
                        "client_secret": CLIENT_SECRET,
                        "oauth_server": fake.url,
                        "rate_per_second": 25.0,
                    },
                },
                database_url=database_url,
            )
            nodes[node] = (pool.spawn("--config", str(config), "run", name=node), ports)
        for daemon, ports in nodes.values():
            await daemon.wait_http(ports.web_url + "/", limit=60.0)
        leader, _epoch = await wait_leader(leases)
        assert await fake.install(nodes[leader][1].web_url + PATH) == 200
        fake.answer_delay["telephony.externalcall.finish"] = 30.0
        await wait_for(lambda: len(fake.activities) >= 1, limit=60)
        # Every node delivers the outbox: the one whose finish is on the wire is killed, and the PBX's leader.
        sender = await _sender_of_held_finish(db)
        doomed = {leader, sender}
        for name in doomed:
            await nodes[name][0].kill9()
        fake.answer_delay.clear()
        await wait_leader(leases, other_than=leader, limit=10.0)
        await wait_logins(server, 2, limit=10.0)
        server.resume()
        await wait_all_ended(CallRepository(db), linkedids(stream), limit=60)
        await wait_until(lambda: _settled(db), limit=60)
        for name, (daemon, _ports) in nodes.items():
            if name not in doomed:
                assert await daemon.terminate(limit=10) == 0, daemon.describe()
    unrecorded = {
        s.record.linkedid for s in await CallRepository(db).between() if not s.record.recording_file
    }
    _assert_one_activity_per_call(fake, SCENARIOS, unrecorded=unrecorded)
    async with db.session() as session:
        answers = list((await session.execute(select(ConnectorDeliveryRow.answer))).scalars())
    assert any("finished before" in a for a in answers), "the held finish was not redelivered"


async def _sender_of_held_finish(db: Database) -> str:
    """The node holding the claim of an end the portal has not answered yet."""
    e = ConnectorEventRow
    async with db.session() as session:
        rows = (
            (
                await session.execute(
                    select(e.claimed_by).where(
                        e.kind == "ended", e.state == "pending", e.claimed_by.is_not(None)
                    )
                )
            )
            .scalars()
            .all()
        )
    assert rows, "no finish on the wire"
    return str(rows[0])
