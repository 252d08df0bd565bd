"""Three ``crmtel run`` nodes with Bitrix24: the leader is killed with SIGKILL while a finish is on the wire;
the outbox is delivered by the surviving nodes and the portal keeps exactly one call per call."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import select

from crmtel.bitrix24.web import PATH
from crmtel.store.calls import CallRepository
from crmtel.store.db import Database
from crmtel.store.leases import LeaseRepository
from crmtel.store.models import ConnectorDeliveryRow, ConnectorEventRow
from tests.cluster.nodes import (
    OUTBOX,
    Sections,
    claimant,
    kill_nodes,
    start_nodes,
    survivors_finish,
    wait_leader,
)
from tests.fixtures.bitrix24 import (
    CLIENT_ID,
    CLIENT_SECRET,
    assert_one_activity_per_call,
    fake_portal,
    recordings,
    settled,
)
from tests.fixtures.daemon import DaemonPool
from tests.fixtures.fake_ami import wait_for
from tests.fixtures.races import RACES_PROCESSES
from tests.fixtures.traces import SCENARIOS
from tests.integration.test_ami_pipeline import serving
from tests.integration.test_daemon_crash import SPEED, busy_pbx

# Races real processes (tests/fixtures/races.py).
pytestmark = RACES_PROCESSES


async def test_a_killed_leader_mid_delivery_leaves_one_bitrix24_call_per_call(
    pool: DaemonPool, db: Database, database_url: str, traces_dir: Path, tmp_path: Path, stream_name: str
) -> None:
    """kill -9 of the leader with a finish held by the portal: the other nodes deliver the rest, nothing twice."""
    monitor = recordings(tmp_path / "monitor")
    stream = busy_pbx(traces_dir)
    half = len(stream) // 2
    leases = LeaseRepository(db)
    async with fake_portal() as fake, serving(stream, pause_after=half, speed=SPEED) as server:
        bitrix24 = {
            "portal": fake.url,
            "client_id": CLIENT_ID,
            "client_secret": CLIENT_SECRET,
            "oauth_server": fake.url,
            "rate_per_second": 25.0,
        }
        sections: Sections = {"web": {"recordings_dir": str(monitor)}, "outbox": OUTBOX, "bitrix24": bitrix24}
        nodes = await start_nodes(pool, tmp_path, database_url, server.port, stream_name, sections=sections)
        leader, _epoch = await wait_leader(leases)
        assert await fake.install(nodes[leader][1].web_url + PATH) == 200
        fake.answer_delay["telephony.externalcall.finish"] = 30.0
        await wait_for(lambda: len(fake.activities) >= 1, limit=60)
        # Every node delivers the outbox: the one whose finish is on the wire is killed, and the PBX's leader.
        sender = await claimant(db, ConnectorEventRow.kind == "ended", missing="no finish on the wire")
        doomed = {leader, sender}
        await kill_nodes(nodes, doomed)
        fake.answer_delay.clear()
        await survivors_finish(
            nodes, doomed, leader=leader, db=db, server=server, stream=stream, settled=lambda: settled(db)
        )
    unrecorded = {
        s.record.linkedid for s in await CallRepository(db).between() if not s.record.recording_file
    }
    assert_one_activity_per_call(fake, SCENARIOS, unrecorded=unrecorded)
    async with db.session() as session:
        answers = list((await session.execute(select(ConnectorDeliveryRow.answer))).scalars())
    assert any("finished before" in a for a in answers), "the held finish was not redelivered"
