"""Fencing on PostgreSQL: once another node has taken a PBX's lease, the old leader's writes change nothing."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest

from crmtel.calls.service import CallService
from crmtel.cluster.fence import EpochFence
from crmtel.config import CallsSettings
from crmtel.errors import WriteFenced
from crmtel.store.calls import CallRepository
from crmtel.store.db import Database
from crmtel.store.leases import LeaseRepository
from crmtel.store.parties import PartyRepository
from crmtel.store.watermarks import WatermarkRepository
from tests.fixtures.traces import BASE_TIME, load_messages


def _service(db: Database, fence: EpochFence) -> CallService:
    return CallService(db, CallsSettings(), PartyRepository(db), fence=fence)


async def _feed(service: CallService, scenario: str, upto: float | None = None) -> None:
    for item in load_messages(scenario):
        if upto is None or item.t <= upto:
            await service.on_event("pbx1", item.message, BASE_TIME + timedelta(seconds=item.t))


async def test_writes_of_a_replaced_leader_are_refused_and_it_is_told(db: Database) -> None:
    """A leads with epoch 1 and writes a live call; B takes over (epoch 2); A's later flush leaves the row as B left it."""
    leases = LeaseRepository(db)
    calls = CallRepository(db)
    fence_a, fence_b = EpochFence(), EpochFence()
    lost_a, lost_b = asyncio.Event(), asyncio.Event()
    a, b = _service(db, fence_a), _service(db, fence_b)

    fence_a.hold("pbx1", await leases.take_over("pbx1", "node-a"), lost_a)
    await _feed(a, "direct-answered", upto=3.0)
    await a.flush()
    live = await calls.live("pbx1")
    assert len(live) == 1

    epoch_b = await leases.take_over("pbx1", "node-b")
    assert epoch_b == 2
    fence_b.hold("pbx1", epoch_b, lost_b)
    assert await b.restore("pbx1") == 1
    before = await calls.between()

    # A has not noticed and goes on: the rest of the call ends in its memory and it tries to write it; the
    # refusal is reported to the caller (a CDR pass must not move its watermark past it).
    await _feed(a, "direct-answered")
    with pytest.raises(WriteFenced) as refused:
        await a.flush()
    assert refused.value.pbxes == ("pbx1",)
    assert await calls.between() == before
    assert lost_a.is_set()
    assert fence_a.rejected == 1
    assert "pbx1" not in a.states, "a fenced node forgets the PBX's calls"

    # B, the leader, writes the same call to its end.
    await _feed(b, "direct-answered")
    await b.flush()
    (stored,) = await calls.between()
    assert stored.record.ended_at is not None
    assert not lost_b.is_set()
    assert await leases.leaders() == {"pbx1": ("node-b", 2)}


async def test_a_node_that_does_not_hold_a_pbx_writes_none_of_its_calls(db: Database) -> None:
    """Without an epoch for the PBX (never led it, or released it) a flush writes nothing of it."""
    fence = EpochFence()
    await LeaseRepository(db).take_over("pbx1", "elsewhere")
    service = _service(db, fence)
    await _feed(service, "direct-answered")
    with pytest.raises(WriteFenced):
        await service.flush()
    assert await CallRepository(db).between() == []
    assert fence.rejected == 1


async def test_a_replaced_leader_cannot_move_the_cdr_watermark(db: Database) -> None:
    """A CDR pass of the old leader ends after the take-over: its watermark advance is refused (WriteFenced)
    and the mark stays where the calls written so far put it, so the new leader reads the period again."""
    leases = LeaseRepository(db)
    fence_a = EpochFence()
    fence_a.hold("pbx1", await leases.take_over("pbx1", "node-a"), asyncio.Event())
    marks = WatermarkRepository(db, fence=fence_a)
    first = BASE_TIME
    await marks.advance("pbx1", first)
    await leases.take_over("pbx1", "node-b")
    with pytest.raises(WriteFenced):
        await marks.advance("pbx1", first + timedelta(hours=1))
    assert await marks.get("pbx1") == first
