"""The demo's AMI simulator: endless, distinct, realistic calls through the real pipeline."""

from __future__ import annotations

from pydantic import SecretStr

from crmtel.ami.client import AmiClient
from crmtel.calls.service import CallService
from crmtel.config import AmiSettings, CallsSettings
from crmtel.fakepbx.simulator import Simulator, load_patterns, rewrite_many
from crmtel.store.calls import CallRepository
from crmtel.store.db import Database
from crmtel.store.parties import PartyRepository
from tests.fixtures.fake_ami import running, wait_until


def test_rewritten_calls_never_share_ids_channels_or_bridges() -> None:
    """Calls made from the same recording get their own Linkedids, channel names and bridge ids."""
    patterns = load_patterns()
    assert len(patterns) == 9
    stream = rewrite_many(patterns, 18)
    per_call: dict[str, set[str]] = {}
    for item in stream:
        headers = dict(item.headers)
        linkedid = headers.get("Linkedid")
        if linkedid and "Channel" in headers:
            per_call.setdefault(linkedid, set()).add(headers["Channel"])
    assert len(per_call) == 18
    channels = [c for chans in per_call.values() for c in chans]
    assert len(channels) == len(set(channels))


async def test_simulator_keeps_producing_calls_that_end_up_stored(db: Database) -> None:
    """Connected to the simulator, crmtel stores one finished record per generated call, none twice."""
    simulator = Simulator(username="crmtel", secret="s3cret", seed=7, mean_gap=1.0, speed=25.0)
    await simulator.start()
    settings = AmiSettings(
        name="demo", port=simulator.port, secret=SecretStr("s3cret"), reconnect_min=0.05, reconnect_max=0.2
    )
    calls = CallRepository(db)
    service = CallService(db, CallsSettings(), PartyRepository(db))

    async def enough() -> bool:
        return sum(1 for s in await calls.between() if s.record.ended_at is not None) >= 4

    try:
        async with running(AmiClient(settings, service)):
            await wait_until(enough, limit=20)
    finally:
        await simulator.close()
    counts = await calls.count()
    assert set(counts.values()) == {1}
    ended = [s.record for s in await calls.between() if s.record.ended_at is not None]
    assert all(r.outcome is not None for r in ended)
