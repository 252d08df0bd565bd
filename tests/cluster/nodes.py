"""Starting ``crmtel run`` cluster nodes and watching the PBX's lease pass between them."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from pathlib import Path

from sqlalchemy import ColumnElement, select

from crmtel.fakepbx.server import FakeAmiServer, StreamItem
from crmtel.store.calls import CallRepository
from crmtel.store.db import Database
from crmtel.store.leases import LeaseRepository
from crmtel.store.models import ConnectorEventRow
from tests.cluster.conftest import REDIS_URL
from tests.fixtures.daemon import (
    Daemon,
    DaemonPool,
    Ports,
    Table,
    free_ports,
    linkedids,
    pbx_settings,
    write_config,
)
from tests.fixtures.fake_ami import wait_until
from tests.integration.test_daemon_crash import wait_all_ended, wait_logins

NODES = ("node-a", "node-b", "node-c")
# Outbox timings for a take-over test: a killed sender's claim lapses, and is retried, within the test's limits.
OUTBOX = {"lease_seconds": 5, "poll_seconds": 0.1, "retry_min_seconds": 0.2}

Nodes = dict[str, tuple[Daemon, Ports]]
Sections = Mapping[str, Table | Sequence[Table]]


def node_config(
    directory: Path,
    database_url: str,
    ports: Ports,
    node: str,
    stream: str,
    pbx: Mapping[str, object],
    sections: Sections | None = None,
) -> Path:
    """A cluster node's config: its own ports, the shared database, PBX (with ``pbx`` keys), Redis and stream;
    ``sections`` adds sections, and its keys of a table section already there are added to that table."""
    config: dict[str, Table | Sequence[Table]] = {
        "ami": {**pbx_settings("pbx1", ports.ami), **pbx},
        "routing": {"agi_host": "127.0.0.1", "agi_port": ports.agi},
        "web": {"host": "127.0.0.1", "port": ports.web},
        "log": {"level": "info", "json_output": False},
        "cluster": {
            "enabled": True,
            "node_name": node,
            "redis_url": REDIS_URL,
            "stream": stream,
            "poll_seconds": 0.5,
            "session_timeout_seconds": 2.0,
        },
    }
    for name, value in (sections or {}).items():
        base = config.get(name)
        config[name] = (
            {**base, **value} if isinstance(base, Mapping) and isinstance(value, Mapping) else value
        )
    return write_config(directory / f"{node}.toml", config, database_url=database_url)


async def start_nodes(
    pool: DaemonPool,
    tmp_path: Path,
    database_url: str,
    ami_port: int,
    stream: str,
    count: int = 3,
    pbx: Mapping[str, object] | None = None,
    sections: Sections | None = None,
) -> Nodes:
    """``count`` nodes, each answering HTTP."""
    nodes: Nodes = {}
    # Every port of every node chosen at once, so no two nodes are handed the same one.
    free = free_ports(2 * count)
    for i, node in enumerate(NODES[:count]):
        ports = Ports(web=free[2 * i], agi=free[2 * i + 1], ami=ami_port)
        config = node_config(tmp_path, database_url, ports, node, stream, pbx or {}, sections)
        nodes[node] = (pool.spawn("--config", str(config), "run", name=node), ports)
    for daemon, ports in nodes.values():
        # A generous limit: three nodes start at once, and a shared CI machine may be busy.
        await daemon.wait_http(ports.web_url + "/", limit=60.0)
    return nodes


async def leader_of(leases: LeaseRepository, pbx: str = "pbx1") -> tuple[str, int] | None:
    """The node leading ``pbx`` and its epoch, as the lease table says."""
    return (await leases.leaders()).get(pbx)


async def wait_leader(
    leases: LeaseRepository, *, other_than: str | None = None, limit: float = 10.0
) -> tuple[str, int]:
    """Poll until some node (not ``other_than``) holds the PBX's lease."""
    found: tuple[str, int] | None = None

    async def led() -> bool:
        nonlocal found
        found = await leader_of(leases)
        return found is not None and found[0] != other_than

    await wait_until(led, limit=limit)
    assert found is not None
    return found


async def claimant(db: Database, *where: ColumnElement[bool], missing: str) -> str:
    """The node holding the claim of a pending outbox event matching ``where`` (one is on the wire)."""
    e = ConnectorEventRow
    query = select(e.claimed_by).where(*where, e.state == "pending", e.claimed_by.is_not(None))
    async with db.session() as session:
        rows = (await session.execute(query)).scalars().all()
    assert rows, missing
    return str(rows[0])


async def kill_nodes(nodes: Nodes, doomed: set[str]) -> None:
    """kill -9 of every node in ``doomed``."""
    for name in doomed:
        await nodes[name][0].kill9()


async def survivors_finish(
    nodes: Nodes,
    doomed: set[str],
    *,
    leader: str,
    db: Database,
    server: FakeAmiServer,
    stream: Sequence[StreamItem],
    settled: Callable[[], Awaitable[bool]],
) -> None:
    """After ``doomed`` (with the old ``leader``) were killed: another node leads and follows the paused PBX to
    the stream's end, the outbox settles, and every surviving node stops cleanly."""
    await wait_leader(LeaseRepository(db), other_than=leader, limit=10.0)
    await wait_logins(server, 2, limit=10.0)
    server.resume()
    await wait_all_ended(CallRepository(db), linkedids(stream), limit=60)
    await wait_until(settled, limit=60)
    for name, (daemon, _ports) in nodes.items():
        if name not in doomed:
            assert await daemon.terminate(limit=10) == 0, daemon.describe()
