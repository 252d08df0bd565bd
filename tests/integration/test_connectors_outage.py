"""The outages of "what it must show" for amoCRM and a signing webhook receiver (Bitrix24's are in
test_bitrix24.py): a ten-minute outage under the shipped backoff on the outbox's moved clock, and a node killed
mid-delivery whose claims another node takes over."""

from __future__ import annotations

import asyncio
from collections import Counter
from datetime import timedelta

from crmtel.amocrm.client import AmoClient
from crmtel.amocrm.service import AmoCrmSink
from crmtel.calls.service import CallService
from crmtel.config import CallsSettings, OutboxSettings
from crmtel.connectors.service import ConnectorService, OutboxTap, utcnow
from crmtel.store.db import Database
from crmtel.store.outbox import OutboxRepository, SealedTokens
from crmtel.store.parties import PartyRepository
from tests.fixtures.fake_ami import wait_until
from tests.fixtures.traces import SCENARIOS, load_expected
from tests.integration.test_amocrm import FAST, _account, _drive, _settings
from tests.integration.test_bitrix24 import _Clock, _delivered_on_the_clock, _nothing_due
from tests.integration.test_outbox import _receiver
from tests.integration.test_outbox import _sink as _webhook_sink

SHIPPED = OutboxSettings(poll_seconds=0.05, backlog_seconds=0.1)


def _calls_of(scenarios: tuple[str, ...]) -> set[str]:
    return {
        f"pbx1:{load_expected(s)['linkedid']}"
        for s in scenarios
        if load_expected(s)["caller_number"] != "anonymous"
    }


async def _settled(db: Database, connector: str) -> bool:
    return set(await OutboxRepository(db).states(connector)) <= {"delivered"}


async def _at_least(value: int, minimum: int) -> bool:
    return value >= minimum


async def _ten_minutes_down(db: Database, clock: _Clock) -> None:
    for _minute in range(10):
        clock.offset += timedelta(minutes=1)
        # Each minute the worker tries what fell due, and reschedules it by the backoff.
        await wait_until(lambda: _nothing_due(db, clock()), limit=60)


async def test_amocrm_down_ten_minutes_gets_every_call_once_when_back(db: Database) -> None:
    """amoCRM unreachable for ten minutes of the outbox's clock while all nine calls end; when it is back each
    call is posted exactly once (on its contact or in Unsorted), its requests paced (none refused)."""
    clock = _Clock()
    async with _account() as fake:
        # This test is about the backoff: the fake takes twice amoCRM's 7/s, so the arrival jitter of a loaded
        # test process cannot turn a paced request into a 429 (the 7/s itself is test_amocrm's and
        # test_rate_shared's). An unpaced client still gets refused: ~30 requests fall due at once.
        fake.limit_per_second = 14
        fake.contacts["+79161110001"] = (9001, 501)
        settings = _settings(fake)
        client = AmoClient(settings, SealedTokens(db))
        await client.authorize(fake.new_code())
        port = fake.port
        await fake.stop()
        async with ConnectorService(
            [AmoCrmSink(settings, client)], OutboxRepository(db), SHIPPED, node="a", clock=clock
        ) as connectors:
            service = CallService(db, CallsSettings(), PartyRepository(db), tap=connectors.tap)
            await _drive(service, SCENARIOS)
            worker = connectors.workers[0]
            await wait_until(lambda: _at_least(worker.retried, 1), limit=60)
            await _ten_minutes_down(db, clock)
            await fake.start(port)
            clock.offset += timedelta(hours=2)  # past the longest backoff (1 h) of any attempt
            await wait_until(lambda: _delivered_on_the_clock(db, clock, "amocrm"), limit=180)
    assert set(fake.calls) == _calls_of(SCENARIOS)
    assert sorted(fake.posted) == sorted(fake.calls), "a call was posted twice"
    assert fake.over_limit == 0


async def test_a_webhook_receiver_down_ten_minutes_gets_every_event_once_signed(db: Database) -> None:
    """The receiver is down for ten minutes of the outbox's clock: afterwards every event arrives, every
    signature verifies, and no webhook-id arrives twice."""
    clock = _Clock()
    async with _receiver() as receiver:
        port = receiver.port
        await receiver.stop()
        async with ConnectorService(
            [_webhook_sink(receiver.url)], OutboxRepository(db), SHIPPED, node="a", clock=clock
        ) as connectors:
            service = CallService(db, CallsSettings(), PartyRepository(db), tap=connectors.tap)
            await _drive(service, SCENARIOS)
            staged = sum((await OutboxRepository(db).states("hook")).values())
            worker = connectors.workers[0]
            await wait_until(lambda: _at_least(worker.retried, 1), limit=60)
            await _ten_minutes_down(db, clock)
            await receiver.start(port)
            clock.offset += timedelta(hours=2)  # past the longest backoff (1 h) of any attempt
            await wait_until(lambda: _delivered_on_the_clock(db, clock, "hook"), limit=180)
    assert receiver.bad_signatures == 0
    assert len(receiver.accepted) == staged
    assert set(receiver.seen.values()) == {1}
    for scenario in SCENARIOS:
        assert receiver.types_of(load_expected(scenario)["linkedid"]).count("call.ended") == 1, scenario


async def test_an_amocrm_node_killed_mid_delivery_is_taken_over_and_loses_no_call(db: Database) -> None:
    """Node a posts the calls but records only every other answer before it dies; node b takes over after the
    leases: every call is in amoCRM exactly once (a post whose answer was lost is found among the call notes or
    in Unsorted by its uniq and recorded as delivered, not posted again), under the 7/s limit."""
    repo = OutboxRepository(db)
    async with _account() as fake:
        fake.contacts["+79161110001"] = (9001, 501)
        settings = _settings(fake)
        client = AmoClient(settings, SealedTokens(db))
        await client.authorize(fake.new_code())
        sink_a = AmoCrmSink(settings, client)
        service = CallService(db, CallsSettings(), PartyRepository(db), tap=OutboxTap([sink_a]))
        await _drive(service, SCENARIOS)
        lost: list[str] = []
        rounds = 0
        while rounds < 4 and not await _settled(db, "amocrm"):
            claimed = await repo.claim("amocrm", "a", utcnow(), timedelta(seconds=0.2), 50)
            if not claimed:
                await asyncio.sleep(0.05)
                continue
            for i, (event, memo) in enumerate(claimed):
                before = len(fake.posted)
                attempt = await sink_a.deliver(event, memo)
                if (i + rounds) % 2 == 0:
                    await repo.settle(event, attempt, node="a", now=utcnow(), next_at=None)
                else:
                    lost.extend(fake.posted[before:])
            rounds += 1
        assert lost, "node a should die with posts whose answers it never recorded"
        await sink_a.aclose()
        client_b = AmoClient(settings, SealedTokens(db))
        async with ConnectorService([AmoCrmSink(settings, client_b)], repo, FAST, node="b"):
            await wait_until(lambda: _settled(db, "amocrm"), limit=30)
    assert set(fake.calls) == _calls_of(SCENARIOS)
    assert Counter(fake.posted) == Counter(set(fake.posted)), "a call was posted twice"
    assert any(fake.calls[uniq].unsorted for uniq in lost), "no lost post went to Unsorted"
    assert not all(fake.calls[uniq].unsorted for uniq in lost), "no lost post went on a contact"
    assert fake.over_limit == 0
