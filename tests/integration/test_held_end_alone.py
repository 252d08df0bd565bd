"""One caller's party lookup that hangs holds back only that call's end: every other call's changes are
written meanwhile, by the writer beside tracking and by the stop, which names only the held call (review28b)."""

from __future__ import annotations

import asyncio
import random
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from crmtel.ami.protocol import Message
from crmtel.calls.service import CallService
from crmtel.config import CallsSettings
from crmtel.domain import LookupResult
from crmtel.fakepbx.server import Recorded
from crmtel.fakepbx.simulator import Rewriter, load_patterns
from crmtel.store.calls import CallRepository, StoredCall
from crmtel.store.db import Database
from crmtel.store.parties import NewClient, PartyRepository
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
        (held,) = [c for c in await _ended(db) if _is_hung(c)]
        assert held.record.party_name == "ООО Ромашка"  # written with its party, by the same flush rules
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
        service.begin_stop(0.5)
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
