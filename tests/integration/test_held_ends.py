"""An ended call whose party lookup is still running is pending work like any other: a stop that runs out of
time names it as not written, and a leader that loses the PBX leaves it to the new leader, who closes it once."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import pytest

from crmtel.calls.service import CallService
from crmtel.cdr.csvsource import CsvCdrSource
from crmtel.cdr.service import Backfill, CdrService
from crmtel.cluster.fence import EpochFence
from crmtel.config import CallsSettings
from crmtel.domain import LookupResult, MissedReason, Outcome, PartyKind
from crmtel.errors import WriteFenced
from crmtel.store.calls import CallRepository
from crmtel.store.db import Database
from crmtel.store.leases import LeaseRepository
from crmtel.store.managers import ManagerRepository
from crmtel.store.parties import NewClient, PartyRepository
from crmtel.store.tasks import TaskRepository
from crmtel.store.watermarks import WatermarkRepository
from tests.fixtures.traces import BASE_TIME, LIVE_TRACES_DIR, load_expected, load_messages

SCENARIO = "direct-caller-gives-up"  # rings 101 for 3 s, the caller hangs up: a missed call
LINKEDID = "1795462399.96"
# The live traces' t = 0 on the PBX's clock (their CDR, ``phones.Master.csv``, is of the same run).
LIVE_BASE = datetime(2026, 12, 6, 12, 29, 50, 281_000, tzinfo=UTC)


@dataclass
class GatedParties:
    """The store's party read, held until the test opens the gate (a loaded store, a busy pool)."""

    inner: PartyRepository
    gate: asyncio.Event = field(default_factory=asyncio.Event)

    async def lookup(self, e164: str) -> LookupResult:
        await self.gate.wait()
        return await self.inner.lookup(e164)


async def _feed(service: CallService, after: float, upto: float) -> None:
    for item in load_messages(SCENARIO):
        if after < item.t <= upto:
            await service.on_event("pbx1", item.message, BASE_TIME + timedelta(seconds=item.t))


def _hangup_at() -> datetime:
    return BASE_TIME + timedelta(seconds=load_messages(SCENARIO)[-1].t)


async def _client_of_vera(db: Database) -> tuple[int, int]:
    """Vera (102) is the personal manager of the caller's client; only 101 (Anna) rings."""
    managers = ManagerRepository(db)
    await managers.save(login="anna", name="Анна", extensions=("101",))
    vera = await managers.save(login="vera", name="Вера", extensions=("102",))
    client = await PartyRepository(db).add_client(
        NewClient(name="ИП Петров", phones=("+79161110001",), manager_id=vera.id)
    )
    return vera.id, client.id


async def _holding_its_end(db: Database, fence: EpochFence | None = None) -> tuple[CallService, GatedParties]:
    """A node that wrote the call ringing, then saw it end while the caller's party is still being read."""
    parties = GatedParties(PartyRepository(db))
    service = CallService(db, CallsSettings(), parties, fence=fence)
    await _feed(service, -1.0, 1.0)
    await service.flush()
    assert [c.record.linkedid for c in await CallRepository(db).live("pbx1")] == [LINKEDID]
    await _feed(service, 1.0, float("inf"))
    assert ("pbx1", LINKEDID) in service._ending, "the end waits for its party"
    return service, parties


async def test_a_stop_out_of_time_names_the_ended_call_still_waiting_for_its_party(
    db: Database, caplog: pytest.LogCaptureFixture
) -> None:
    """SIGTERM while an end waits for its lookup, which outlasts the stop's budget: the stop says that call was
    not written (its line, its count, so the exit status is 75). Before, the end was held outside the outbox:
    "stopping with 0 call(s) not written", exit 0, and the call silently stayed live in the store."""
    await _client_of_vera(db)
    service, _ = await _holding_its_end(db)
    writer = asyncio.create_task(service.write_beside(), name="test-writer")
    await asyncio.sleep(0)  # the writer runs: ``on_idle`` only asks it for a write
    await service.on_idle("pbx1")  # the writer takes the end and waits for its lookup
    await asyncio.sleep(0.05)
    caplog.set_level(logging.ERROR, logger="crmtel.calls.service")
    # The stop in the composition root's order: the drain's write, the writer cancelled, the last write.
    service.begin_stop(0.3)
    try:
        assert not await service.write_all(report=False)
        writer.cancel()
        await asyncio.gather(writer, return_exceptions=True)
        assert not await service.write_all()
    finally:
        writer.cancel()
        await service.aclose()
    assert service.unwritten_at_stop == 1
    assert f"not written: ended call {LINKEDID} on pbx1" in caplog.text
    assert "stopping with 1 call(s) not written" in caplog.text


async def test_a_stop_writes_the_held_end_once_its_lookup_answers_within_the_budget(db: Database) -> None:
    """The lookup answers inside the stop's budget: the end is written with its party, its true end and the
    client's manager's callback task, and nothing is reported."""
    vera, client = await _client_of_vera(db)
    service, parties = await _holding_its_end(db)
    service.begin_stop(30)
    asyncio.get_running_loop().call_later(0.2, parties.gate.set)
    try:
        assert await service.write_all()
    finally:
        await service.aclose()
    assert service.unwritten_at_stop == 0
    (stored,) = await CallRepository(db).between()
    record = stored.record
    assert (record.ended_at, record.outcome, record.ring_seconds) == (_hangup_at(), Outcome.MISSED, 3.0)
    assert (record.party_kind, record.party_id) == (PartyKind.CLIENT, client)
    tasks = await TaskRepository(db).open_tasks()
    assert [(t.manager_id, t.party_id, t.missed_count) for t in tasks] == [(vera, client, 1)]


@pytest.mark.parametrize("taken_over_first", [True, False], ids=["fenced", "last-flush-admitted"])
async def test_a_new_leader_closes_once_the_end_a_lost_leader_held_for_its_party(
    db: Database, taken_over_first: bool
) -> None:
    """A leads the PBX and holds the call's end for its lookup when it loses the lease. If B took the PBX over
    first, A's last write is fenced and A forgets the PBX; B resumes the call from the store and its resync
    (the PBX has no channel of it left) closes it: missed, the caller's client, one callback task for the
    client's manager, ended at the resync (a call that ended in the gap; the CDR amends it where there is one).
    If A's last write got in first, it stored the true end and B has nothing to resume. Never live for ever,
    never twice."""
    vera, client = await _client_of_vera(db)
    leases = LeaseRepository(db)
    fence_a, fence_b = EpochFence(), EpochFence()
    fence_a.hold("pbx1", await leases.take_over("pbx1", "node-a"), asyncio.Event())
    a, parties = await _holding_its_end(db, fence_a)
    b = CallService(db, CallsSettings(), PartyRepository(db), fence=fence_b)

    async def b_takes_over() -> int:
        fence_b.hold("pbx1", await leases.take_over("pbx1", "node-b"), asyncio.Event())
        return await b.restore("pbx1")

    resumed = await b_takes_over() if taken_over_first else 0
    # A's term ends (``ClusterNode.lead``): its last flush, then it forgets the PBX.
    parties.gate.set()
    try:
        if taken_over_first:
            with pytest.raises(WriteFenced):
                await a.flush()
        else:
            await a.flush()
    finally:
        a.forget("pbx1")
        await a.aclose()
    if not taken_over_first:
        resumed = await b_takes_over()
    assert resumed == (1 if taken_over_first else 0)

    resync_at = _hangup_at() + timedelta(seconds=2)
    await b.on_resync("pbx1", [], resync_at)
    await b.flush()
    await b.aclose()

    (stored,) = await CallRepository(db).between()
    record = stored.record
    assert (record.outcome, record.missed_reason) == (Outcome.MISSED, MissedReason.CALLER_HUNG_UP_RINGING)
    assert record.ended_at == (resync_at if taken_over_first else _hangup_at())
    assert (record.party_kind, record.party_id, record.manager_id) == (PartyKind.CLIENT, client, vera)
    assert await CallRepository(db).live("pbx1") == []
    tasks = await TaskRepository(db).open_tasks()
    assert [(t.manager_id, t.party_id, t.missed_count) for t in tasks] == [(vera, client, 1)]


async def test_with_a_cdr_source_the_new_leader_stores_the_held_end_as_it_happened(db: Database) -> None:
    """The same take-over on a PBX with a CDR source (a live run's call, forwarded to a mobile and answered
    there): the new leader's resync amends the call it closes from the CDR, so the end A held and lost is
    stored as it happened — answered on the mobile, its true ring and talk times — not at the resync."""
    scenario, linkedid = "forwarded-to-mobile", "1796560192.5"
    expected = load_expected(scenario, LIVE_TRACES_DIR)
    fedor = await ManagerRepository(db).save(login="fedor", name="Fedor", extensions=("127",))
    leases = LeaseRepository(db)
    fence_a, fence_b = EpochFence(), EpochFence()
    fence_a.hold("pbx1", await leases.take_over("pbx1", "node-a"), asyncio.Event())
    parties = GatedParties(PartyRepository(db))
    a = CallService(db, CallsSettings(), parties, fence=fence_a)
    messages = load_messages(scenario, LIVE_TRACES_DIR)
    for index, item in enumerate(messages):
        await a.on_event("pbx1", item.message, LIVE_BASE + timedelta(seconds=item.t))
        if index == len(messages) // 2:
            await a.flush()
    assert ("pbx1", linkedid) in a._ending, "the end waits for its party"

    b = CallService(db, CallsSettings(), PartyRepository(db), fence=fence_b)
    b.amender = CdrService(
        b,
        WatermarkRepository(db),
        {"pbx1": Backfill("pbx1", CsvCdrSource(LIVE_TRACES_DIR / "phones.Master.csv", UTC), b)},
        {"pbx1": timedelta(0)},
    )
    fence_b.hold("pbx1", await leases.take_over("pbx1", "node-b"), asyncio.Event())
    assert await b.restore("pbx1") == 1
    parties.gate.set()
    try:
        with pytest.raises(WriteFenced):
            await a.flush()
    finally:
        a.forget("pbx1")
        await a.aclose()
    await b.on_resync("pbx1", [], LIVE_BASE + timedelta(seconds=40))
    await b.flush()
    await b.aclose()

    (stored,) = await CallRepository(db).between()
    record = stored.record
    assert (record.outcome, record.answered_by, record.manager_id) == (Outcome.ANSWERED, "127", fedor.id)
    # The CDR counts whole seconds: its times are the call's to within one (the resync was 33 s later).
    assert abs(record.ring_seconds - expected["ring_seconds"]) <= 1.0
    assert abs(record.talk_seconds - expected["talk_seconds"]) <= 1.0
    assert record.ended_at == datetime(2026, 12, 6, 12, 29, 57, 500_000, tzinfo=UTC)
    assert await CallRepository(db).live("pbx1") == []
