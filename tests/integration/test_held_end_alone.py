"""One caller's party lookup that hangs holds back only that call's end: every other call's changes are
written meanwhile, by the writer beside tracking and by the stop, which names only the held call (review28b),
while a CDR pass waits for that end, and when the records held in memory reach ``calls.max_unwritten``."""

from __future__ import annotations

import asyncio
import random
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from crmtel.ami.protocol import Message
from crmtel.calls.service import CallService
from crmtel.cdr.service import CdrService
from crmtel.config import CallsSettings
from crmtel.domain import LookupResult
from crmtel.fakepbx.server import Recorded
from crmtel.fakepbx.simulator import Rewriter, load_patterns
from crmtel.store.calls import CallRepository, StoredCall
from crmtel.store.db import Database
from crmtel.store.parties import NewClient, PartyRepository
from crmtel.store.watermarks import WatermarkRepository
from tests.fixtures.fake_ami import wait_until

HUNG = "+79160000000"
BASE = datetime(2026, 12, 6, 12, 0, tzinfo=UTC)


@dataclass
class OneHungLookup:
    """The store's party read, except that one caller's is held until the test opens the gate."""

    inner: PartyRepository
    gate: asyncio.Event = field(default_factory=asyncio.Event)

    async def lookup(self, e164: str) -> LookupResult:
        if e164 == HUNG:
            await self.gate.wait()
        return await self.inner.lookup(e164)


async def _parties(db: Database) -> OneHungLookup:
    parties = PartyRepository(db)
    await parties.add_client(NewClient(name="ООО Ромашка", phones=(HUNG,)))
    return OneHungLookup(parties)


def calls(others: int) -> list[Recorded]:
    """A caller who gives up (the hung lookup's), then ``others`` calls from other callers, each ending."""
    patterns = {p.name: p for p in load_patterns()}
    rewriter = Rewriter(random.Random(1))
    stream = rewriter.rewrite(
        patterns["direct-caller-gives-up"], start=0.0, epoch=1.8e9, stretch=0.01, caller=(HUNG, "Иван Петров")
    )
    for i in range(others):
        name = "direct-answered" if i % 2 else "direct-caller-gives-up"
        stream += rewriter.rewrite(patterns[name], start=1.0 + i, epoch=1.8e9, stretch=0.01, new_caller=True)
    return stream


async def _feed(service: CallService, stream: list[Recorded]) -> None:
    for item in stream:
        await service.on_event("pbx1", Message(item.headers), BASE + timedelta(seconds=item.t))


async def _ended(db: Database) -> list[StoredCall]:
    return [c for c in await CallRepository(db).between() if c.record.ended_at is not None]


def _is_hung(call: StoredCall) -> bool:
    return (call.record.caller_number or "")[-10:] == HUNG[-10:]


async def _held_end_written_with_its_party(db: Database) -> None:
    """The hung lookup's call is stored once, with the party its lookup read when it answered."""
    (held,) = [c for c in await _ended(db) if _is_hung(c)]
    assert held.record.party_name == "ООО Ромашка"


async def _count_ended(db: Database, count: int) -> bool:
    return len(await _ended(db)) == count


async def test_a_hung_lookup_holds_back_only_its_own_calls_end(db: Database) -> None:
    parties = await _parties(db)
    service = CallService(db, CallsSettings(), parties)
    writer = asyncio.create_task(service.write_beside(), name="test-writer")
    await asyncio.sleep(0)  # the writer runs: tracking only asks it for writes
    try:
        await _feed(service, calls(5))
        await service.on_idle("pbx1")
        # Before: the writer's batch waited for the hung lookup, and every other call with it.
        await wait_until(lambda: _count_ended(db, 5), limit=10)
        ended = await _ended(db)
        assert all(not _is_hung(c) for c in ended)
        assert service.pending == 1
        assert service.outbox.unwritten == 2
        parties.gate.set()
        await wait_until(lambda: _count_ended(db, 6), limit=10)
        assert service.pending == 0
        await _held_end_written_with_its_party(db)  # written with its party, by the same flush rules
    finally:
        parties.gate.set()
        writer.cancel()
        await asyncio.gather(writer, return_exceptions=True)
        await service.aclose()


async def test_a_stop_writes_the_other_calls_and_names_only_the_end_still_waiting(db: Database) -> None:
    parties = await _parties(db)
    service = CallService(db, CallsSettings(), parties)
    try:
        await _feed(service, calls(5))  # no writer beside: the stop's write has everything to do
        # 0.5 s (before review28c) left a loaded PostgreSQL no time to write the 5 after the lookups' grace.
        service.begin_stop(3.0)
        assert await service.write_all() is False
        # Before: the one batch waited for the hung lookup until the deadline, and all 6 stayed unwritten.
        assert service.unwritten_at_stop == 1
        ended = await _ended(db)
        assert len(ended) == 5
        assert all(not _is_hung(c) for c in ended)
        held, live = service.outbox.held()
        assert (len(held), live) == (1, [])  # still pending: the CDR backfill or the next start brings it
        assert held[0][1] not in {c.record.linkedid for c in await CallRepository(db).between()}
    finally:
        parties.gate.set()
        await service.aclose()


async def test_a_cdr_pass_and_a_hung_lookup_hold_back_no_other_calls_write(db: Database) -> None:
    """A resync's CDR pass does not wait for the held end's party (it stays pending, followed); the writer
    beside tracking goes on writing the calls that end after it, and the held end once its party is read."""
    parties = await _parties(db)
    service = CallService(db, CallsSettings(), parties)
    cdr = CdrService(service, WatermarkRepository(db), {}, {})
    writer = asyncio.create_task(service.write_beside(), name="test-writer")
    passes = asyncio.create_task(cdr.run(), name="test-cdr")
    await asyncio.sleep(0)
    stream = calls(9)
    first, later = stream[: len(calls(5))], stream[len(calls(5)) :]
    try:
        await _feed(service, first)
        await service.on_idle("pbx1")
        await wait_until(lambda: _count_ended(db, 5), limit=10)
        cdr.resynced("pbx1", BASE + timedelta(seconds=10))
        # Before (review28c): the pass's first write waited for the hung lookup's end, and so did the pass.
        await asyncio.wait_for(cdr.idle(), 5)
        await _feed(service, later)
        await service.on_idle("pbx1")
        # Before: the pass waited holding the one write lock (and the batch it took): nothing more was written.
        await wait_until(lambda: _count_ended(db, 9), limit=10)
        assert all(not _is_hung(c) for c in await _ended(db))
        parties.gate.set()
        await asyncio.wait_for(cdr.idle(), 10)
        await wait_until(lambda: _count_ended(db, 10), limit=10)
        await _held_end_written_with_its_party(db)
    finally:
        parties.gate.set()
        passes.cancel()
        writer.cancel()
        await asyncio.gather(passes, writer, return_exceptions=True)
        await service.aclose()


async def test_past_max_unwritten_tracking_writes_the_others_instead_of_waiting_for_a_hung_lookup(
    db: Database,
) -> None:
    """Tracking past ``max_unwritten`` (no writer beside: the store took nothing meanwhile) writes the backlog
    itself: it writes every call not waiting for its party and reads on; the hung lookup's end stays pending."""
    parties = await _parties(db)
    service = CallService(db, CallsSettings(max_unwritten=100), parties)
    try:
        # 60 ended calls are 120 records held: tracking writes them once past 100.
        # Before: that write waited for the hung lookup, and so did every AMI event after it, for ever.
        await asyncio.wait_for(_feed(service, calls(60)), 10)
        assert service.outbox.unwritten <= 100
        ended = await _ended(db)
        assert len(ended) >= 40  # the calls that had ended when it wrote (the rest wait for the next write)
        assert all(not _is_hung(c) for c in ended)
        assert len(service.outbox.held()[0]) == 61 - len(ended)  # the hung lookup's end among them
        parties.gate.set()
        await service.flush()
        assert len(await _ended(db)) == 61
        assert service.pending == 0
        await _held_end_written_with_its_party(db)
    finally:
        parties.gate.set()
        await service.aclose()


def _answered_start() -> list[Recorded]:
    """The first half of an answered call: stored live, never ended in this stream."""
    pattern = {p.name: p for p in load_patterns()}["direct-answered"]
    stream = Rewriter(random.Random(2)).rewrite(
        pattern, start=0.0, epoch=1.7e9, stretch=0.01, new_caller=True
    )
    return stream[: len(stream) // 2]


async def test_a_cdr_pass_closes_an_orphan_while_a_hung_lookups_end_waits(db: Database) -> None:
    """A quiet PBX: a call stored live by an earlier run (an orphan now) is closed by the resync's CDR pass at
    once, although another caller's end still waits for its hung party lookup (kept pending, not an orphan)."""
    parties = await _parties(db)
    earlier = CallService(db, CallsSettings(), parties)
    await _feed(earlier, _answered_start())
    await earlier.flush()
    await earlier.aclose()
    (orphan,) = await CallRepository(db).between()
    assert orphan.record.ended_at is None
    service = CallService(db, CallsSettings(), parties)
    cdr = CdrService(service, WatermarkRepository(db), {}, {})
    writer = asyncio.create_task(service.write_beside(), name="test-writer")
    passes = asyncio.create_task(cdr.run(), name="test-cdr")
    try:
        await asyncio.sleep(0)
        await _feed(service, calls(0))
        await service.on_idle("pbx1")
        await asyncio.sleep(0.5)
        assert service.outbox.held()[0]  # the hung lookup's end, kept back
        cdr.resynced("pbx1", BASE + timedelta(hours=1))
        # Before: the pass's first write waited for the hung lookup, so the orphan stayed live for ever.
        await wait_until(lambda: _count_ended(db, 1), limit=5)
        (closed,) = await _ended(db)
        assert closed.record.linkedid == orphan.record.linkedid
        assert not _is_hung(closed)
        parties.gate.set()
        await asyncio.wait_for(cdr.idle(), 10)
        await wait_until(lambda: _count_ended(db, 2), limit=10)
        await _held_end_written_with_its_party(db)
    finally:
        parties.gate.set()
        passes.cancel()
        writer.cancel()
        await asyncio.gather(passes, writer, return_exceptions=True)
        await service.aclose()


async def test_a_flush_that_waits_for_a_hung_lookup_writes_every_other_call_first(db: Database) -> None:
    """A plain flush (a CDR pass's last write, before its watermark moves; no writer beside on a quiet PBX)
    writes the calls not waiting for their party at once, then waits for the held end and writes it too."""
    parties = await _parties(db)
    service = CallService(db, CallsSettings(), parties)
    await _feed(service, calls(4))
    flush = asyncio.create_task(service.flush(), name="test-flush")
    try:
        # Before: the flush waited for the hung lookup before writing anything: none of the 4 was stored.
        await wait_until(lambda: _count_ended(db, 4), limit=10)
        assert all(not _is_hung(c) for c in await _ended(db))
        assert not flush.done()
        parties.gate.set()
        await asyncio.wait_for(flush, 10)
        assert service.pending == 0
        await _held_end_written_with_its_party(db)
    finally:
        parties.gate.set()
        await asyncio.gather(flush, return_exceptions=True)
        await service.aclose()
