"""Three ``crmtel run`` nodes with a signed webhook subscription: the PBX's leader and the node whose message the
receiver holds are killed with SIGKILL; the survivors deliver the rest, the held message again under its
``webhook-id``, nothing lost and nothing else twice."""

from __future__ import annotations

from pathlib import Path

from crmtel.store.db import Database
from crmtel.store.leases import LeaseRepository
from crmtel.store.models import ConnectorEventRow
from crmtel.store.outbox import OutboxRepository
from tests.cluster.nodes import (
    OUTBOX,
    claimant,
    kill_nodes,
    start_nodes,
    survivors_finish,
    wait_leader,
)
from tests.fixtures.daemon import DaemonPool
from tests.fixtures.fake_ami import wait_for
from tests.fixtures.races import RACES_PROCESSES
from tests.fixtures.traces import SCENARIOS, load_expected
from tests.integration.test_ami_pipeline import serving
from tests.integration.test_daemon_crash import SPEED, busy_pbx
from tests.integration.test_outbox import SECRET, _receiver

# Races real processes (tests/fixtures/races.py).
pytestmark = RACES_PROCESSES


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
        hook = {"url": receiver.url, "secret": SECRET, "name": "hook"}
        nodes = await start_nodes(
            pool,
            tmp_path,
            database_url,
            server.port,
            stream_name,
            sections={"outbox": OUTBOX, "webhooks": [hook]},
        )
        leader, _epoch = await wait_leader(leases)
        receiver.hold_seconds = 30.0
        # A message answered before the hold began is no message on the wire: wait for one the receiver holds,
        # and kill the node that claimed that one (a claim not yet sent would be sent once, by a survivor).
        await wait_for(lambda: bool(receiver.held), limit=60)
        held = receiver.held[0]
        sender = await claimant(
            db,
            ConnectorEventRow.connector == "hook",
            ConnectorEventRow.key == held,
            missing="the held message",
        )
        doomed = {leader, sender}
        await kill_nodes(nodes, doomed)
        receiver.hold_seconds = 0.0
        await survivors_finish(
            nodes, doomed, leader=leader, db=db, server=server, stream=stream, settled=lambda: _settled(db)
        )
    assert receiver.bad_signatures == 0
    assert receiver.seen[held] == 2, "the held message was not sent again"
    assert all(n in (1, 2) for n in receiver.seen.values())
    staged = sum((await OutboxRepository(db).states("hook")).values())
    assert len(receiver.accepted) == staged
    for scenario in SCENARIOS:
        assert receiver.types_of(load_expected(scenario)["linkedid"]).count("call.ended") == 1, scenario
