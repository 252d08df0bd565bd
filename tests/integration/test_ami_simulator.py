"""The demo's AMI simulator: endless, distinct, realistic calls through the real pipeline."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import re
import time
from collections import Counter
from datetime import datetime

import pytest
from pydantic import SecretStr

from crmtel.ami.client import AmiClient
from crmtel.ami.protocol import Parser, encode_message
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


async def test_the_simulator_at_speed_10_keeps_real_time_and_real_durations(db: Database) -> None:
    """`crmtel demo --speed 10`: the simulated PBX's clock is the real one. Every event's Timestamp is the wall
    clock when it is sent (never ahead of it, never going back), so an answered call's stored talk time is the
    time its answer-to-hangup took for real (it used to run ten times ahead: the timer stayed 0:00 and a demo
    restart stored calls ending before they started)."""
    simulator = Simulator(username="crmtel", secret="s3cret", seed=11, mean_gap=2.0, speed=10.0)
    await simulator.start()
    settings = AmiSettings(
        name="demo", port=simulator.port, secret=SecretStr("s3cret"), reconnect_min=0.05, reconnect_max=0.2
    )
    calls = CallRepository(db)
    service = CallService(db, CallsSettings(), PartyRepository(db))
    # A second AMI client noting when each event arrives: it was sent at or before that.
    seen: list[tuple[float, float]] = []  # (Timestamp, wall clock on arrival)
    reader, writer = await asyncio.open_connection("127.0.0.1", simulator.port)
    writer.write(encode_message((("Action", "Login"), ("Username", "crmtel"), ("Secret", "s3cret"))))
    parser = Parser()

    async def listen() -> None:
        while data := await reader.read(65536):
            arrived = time.time()
            for msg in parser.feed(data):
                stamp = msg.get("Timestamp")
                if stamp is not None:
                    seen.append((float(stamp), arrived))

    async def answered_and_ended() -> bool:
        return any(
            s.record.answered_at is not None and s.record.ended_at is not None for s in await calls.between()
        )

    listener = asyncio.create_task(listen())
    try:
        async with running(AmiClient(settings, service)):
            await wait_until(answered_and_ended, limit=90)
    finally:
        writer.close()
        await simulator.close()
        listener.cancel()
        with contextlib.suppress(asyncio.CancelledError, ConnectionError):
            await listener
    assert len(seen) > 20
    for (before, _), (stamp, arrived) in itertools.pairwise([(0.0, 0.0), *seen]):
        assert before <= stamp <= arrived, (before, stamp, arrived)

    def arrival(at: datetime) -> float:
        # The fake PBX's stream position is shared by its sessions: each event goes to one of them, so this
        # session saw the events sent with crmtel's (an answer, a hangup is a burst of them), not that one.
        stamp, arrived = min(seen, key=lambda pair: abs(pair[0] - at.timestamp()))
        assert abs(stamp - at.timestamp()) < 0.1, (stamp, at)
        return arrived

    talked = [
        s.record
        for s in await calls.between()
        if s.record.answered_at is not None and s.record.ended_at is not None
    ]
    assert talked
    for record in talked:
        assert record.answered_at is not None
        assert record.ended_at is not None
        real = arrival(record.ended_at) - arrival(record.answered_at)
        assert record.talk_seconds == pytest.approx(real, abs=0.5), (record.talk_seconds, real)
        assert record.ended_at >= record.answered_at >= record.started_at


async def test_the_simulator_at_speed_10_names_channels_by_the_real_second_they_are_made() -> None:
    """`crmtel demo --speed 10`: a channel's Uniqueid (and the call's Linkedid) carries the wall-clock second the
    call began, as Asterisk's carry the channel's creation — never a second after the Timestamp of the event
    that first names it (it ran ahead with the stream: 27 s ahead after 3 s at speed 10, so a demo restarted
    soon after reused the seconds of calls already stored)."""
    simulator = Simulator(username="crmtel", secret="s3cret", seed=5, mean_gap=2.0, speed=10.0)
    await simulator.start()
    first_named: dict[str, float] = {}  # Uniqueid -> Timestamp of the first event naming it
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", simulator.port)
        writer.write(encode_message((("Action", "Login"), ("Username", "crmtel"), ("Secret", "s3cret"))))
        parser = Parser()
        deadline = time.monotonic() + 4.0
        # Four seconds at speed 10: forty seconds of stream, about twenty calls.
        while time.monotonic() < deadline:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(max(0.0, deadline - time.monotonic())):
                    data = await reader.read(65536)
                    if not data:
                        break
                    for msg in parser.feed(data):
                        stamp, uniqueid = msg.get("Timestamp"), msg.get("Uniqueid")
                        if stamp is not None and uniqueid is not None:
                            first_named.setdefault(uniqueid, float(stamp))
        writer.close()
    finally:
        await simulator.close()
    assert len(first_named) > 20, first_named
    for uniqueid, first_at in first_named.items():
        made = int(uniqueid.split(".", 1)[0])
        # Created in the second it names, at or before the event that first shows it (calls last seconds).
        assert made <= first_at, (uniqueid, first_at)
        assert first_at - made < 60, (uniqueid, first_at)
