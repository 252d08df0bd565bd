"""The demo's AMI simulator: endless, distinct, realistic calls through the real pipeline."""

from __future__ import annotations

import re
from collections import Counter

from pydantic import SecretStr

from crmtel.ami.client import AmiClient
from crmtel.calls.service import CallService
from crmtel.config import AmiSettings, CallsSettings
from crmtel.demo.people import demo_book
from crmtel.fakepbx.server import Recorded
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


def test_the_demo_simulator_spreads_its_calls_over_the_whole_book() -> None:
    """60 calls with the demo's book: known callers are drawn from all of it (no one party calls over and
    over), each call's outside number is a book number or a new caller's, and the book's names go with them."""
    book = demo_book()
    simulator = Simulator(seed=3, book=book)
    simulator.schedule(60)
    numbers = {number[2:] for number, _name in book}
    per_call: dict[str, str] = {}
    stream = [item for item in simulator.server.stream if isinstance(item, Recorded)]
    for item in stream:
        headers = dict(item.headers)
        linkedid = headers.get("Linkedid", "")
        for value in headers.values():
            found = re.search(r"(?<!\d)(?:\+7|7|8)(9\d{9})(?!\d)", value)
            if linkedid and found and linkedid not in per_call:
                per_call[linkedid] = found.group(1)
    assert len(per_call) >= 40  # (a few recordings have no outside mobile number)
    known = Counter(n for n in per_call.values() if n in numbers)
    assert len(known) >= 12, known  # many different parties call
    assert max(known.values()) <= 8, known  # none dominates (was 13 of 35 with ИП Петров)
    names = {name for _number, name in book}
    caller_names = {dict(i.headers).get("CallerIDName") for i in stream}
    assert names & caller_names
