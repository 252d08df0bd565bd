"""The per-CRM rate limit shared by a cluster's nodes over Redis: two nodes delivering one outbox to the strict
fakes stay together within the CRM's limit, counted at the fake by its own clock; per-node limits do not."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import uuid
from collections.abc import AsyncIterator, Sequence
from datetime import UTC, datetime
from pathlib import Path

import pytest
from pydantic import SecretStr
from redis.asyncio import Redis

from crmtel.amocrm.client import AmoClient
from crmtel.amocrm.fake import FakeAmoCrm
from crmtel.amocrm.service import AmoCrmSink
from crmtel.bitrix24.client import Bitrix24Client
from crmtel.bitrix24.service import Bitrix24Sink
from crmtel.bitrix24.tokens import TokenStore
from crmtel.bitrix24.web import EventHandler
from crmtel.config import AmoCrmSettings, Bitrix24Settings, OutboxSettings
from crmtel.connectors.rate import RateLimits, SharedRateLimit
from crmtel.connectors.service import ConnectorService, Sink
from crmtel.domain import CallEnded, CallRecord, Direction, Outcome
from crmtel.store.db import Database
from crmtel.store.outbox import OutboxRepository, SealedTokens
from tests.fixtures.bitrix24 import fake_portal, handler_app, settings_for
from tests.fixtures.ci import in_ci
from tests.fixtures.fake_ami import wait_until

REDIS_URL = "redis://127.0.0.1:6379/0"
T0 = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)
# Small batches: both nodes hold claims at the same time, as in a cluster with a backlog.
SETTINGS = OutboxSettings(
    retry_min_seconds=0.05,
    retry_max_seconds=0.3,
    poll_seconds=0.05,
    backlog_seconds=0.1,
    lease_seconds=30,
    batch=4,
    concurrency=4,
)


def _redis_up() -> bool:
    try:
        with socket.create_connection(("127.0.0.1", 6379), timeout=1):
            return True
    except OSError:
        return False


pytestmark = pytest.mark.skipif(
    not _redis_up() and not in_ci(), reason="Redis is not running on 127.0.0.1:6379"
)


@contextlib.asynccontextmanager
async def _redis() -> AsyncIterator[tuple[Redis, str]]:
    """Redis and a key prefix of this test's own (its buckets deleted afterwards)."""
    redis = Redis.from_url(REDIS_URL)
    prefix = f"crmtel:test:{uuid.uuid4().hex}"
    try:
        yield redis, prefix
    finally:
        keys = [k async for k in redis.scan_iter(f"{prefix}:*")]
        if keys:
            await redis.delete(*keys)
        await redis.aclose()


def _ended(n: int) -> CallEnded:
    record = CallRecord(
        pbx="pbx1",
        linkedid=f"1700000000.{n}",
        direction=Direction.INBOUND,
        caller_number=f"+7916{n:07d}",
        caller_name=None,
        dialled=None,
        started_at=T0,
        rang=("101",),
        answered_by="101",
        outcome=Outcome.ANSWERED,
        talk_seconds=30.0,
    )
    return CallEnded(call_id=f"pbx1:{record.linkedid}", record=record, at=T0)


async def _stage(db: Database, service: ConnectorService, calls: int) -> None:
    async with db.session() as session:
        await service.tap.write_in(session, [_ended(n) for n in range(calls)])


async def _settled(db: Database, name: str) -> bool:
    return set(await OutboxRepository(db).states(name)) <= {"delivered"}


def _busiest_second(arrivals: Sequence[float]) -> int:
    """The most requests the fake saw within any one second of its own clock."""
    times = sorted(arrivals)
    best, start = 0, 0
    for end, at in enumerate(times):
        while at - times[start] >= 1.0:
            start += 1
        best = max(best, end - start + 1)
    return best


def _amo_settings(fake: FakeAmoCrm) -> AmoCrmSettings:
    return AmoCrmSettings(
        account=fake.url,
        client_id=fake.client_id,
        client_secret=SecretStr(fake.client_secret),
        redirect_uri=fake.redirect_uri,
        users={"101": 501},
    )


async def _amo_run(
    db: Database, limits: tuple[RateLimits, RateLimits], calls: int
) -> tuple[FakeAmoCrm, list[int]]:
    fake = FakeAmoCrm(
        client_id="amo-client", client_secret="amo-secret-0123456789", redirect_uri="https://x/cb"
    )
    await fake.start()
    try:
        settings = _amo_settings(fake)
        first = AmoClient(settings, SealedTokens(db), limits=limits[0])
        await first.authorize(fake.new_code())
        sinks = [
            AmoCrmSink(settings, first),
            AmoCrmSink(settings, AmoClient(settings, SealedTokens(db), limits=limits[1])),
        ]
        repo = OutboxRepository(db)
        async with (
            ConnectorService([sinks[0]], repo, SETTINGS, node="a", limits=limits[0]) as a,
            ConnectorService([sinks[1]], repo, SETTINGS, node="b", limits=limits[1]) as b,
        ):
            await _stage(db, a, calls)
            await wait_until(lambda: _settled(db, "amocrm"), limit=120)
            delivered = [a.workers[0].delivered, b.workers[0].delivered]
    finally:
        await fake.stop()
    return fake, delivered


async def test_two_nodes_sharing_the_bucket_stay_within_amocrms_7_per_second(db: Database) -> None:
    """40 ended calls delivered by two nodes at once: both deliver, amoCRM gets each call once, never more
    than 7 requests in any second of the fake's clock and no 429."""
    async with _redis() as (redis, prefix):
        shared = RateLimits(redis, prefix=prefix)
        fake, delivered = await _amo_run(db, (shared, shared), 40)
    assert all(d > 0 for d in delivered), delivered
    assert sum(delivered) == 40
    assert len(fake.calls) == 40
    assert fake.over_limit == 0
    assert _busiest_second(fake.arrivals) <= 7, _busiest_second(fake.arrivals)
    assert len(fake.arrivals) >= 40


async def test_per_node_limits_let_two_nodes_overrun_amocrm(db: Database) -> None:
    """The control: the same two nodes each with its own 7/s send more than amoCRM takes (its 429s counted),
    which is what the shared bucket prevents."""
    fake, delivered = await _amo_run(db, (RateLimits(), RateLimits()), 40)
    assert all(d > 0 for d in delivered), delivered
    assert len(fake.calls) == 40  # the refused ones were retried
    assert fake.over_limit > 0
    assert _busiest_second(fake.arrivals) > 7


def _b24_sink(db: Database, settings: Bitrix24Settings, folder: Path, limits: RateLimits) -> Bitrix24Sink:
    tokens = TokenStore(SealedTokens(db), settings.client_secret.get_secret_value())
    return Bitrix24Sink(settings, Bitrix24Client(settings, tokens, limits=limits), db, folder)


async def test_two_nodes_sharing_the_bucket_keep_bitrix24s_leaky_bucket(db: Database, tmp_path: Path) -> None:
    """The portal's bucket (here 20/s, 15 deep; crmtel 20/s, burst 10 — the 50/40 of the defaults scaled
    down): two nodes deliver 40 calls together, every REST request paced in one bucket, none refused
    (QUERY_LIMIT_EXCEEDED), each call finished once; no second of the fake's clock holds more than the
    bucket lets through (15 + 20)."""
    async with fake_portal() as fake, _redis() as (redis, prefix):
        settings = settings_for(fake, rate_per_second=20.0, rate_burst=10)
        shared = RateLimits(redis, prefix=prefix)
        sink_a = _b24_sink(db, settings, tmp_path, shared)
        async with handler_app(EventHandler(sink_a.client, sink_a.users, db, None)) as url:
            assert await fake.install(url) == 200
        sink_b = _b24_sink(db, settings, tmp_path, shared)
        fake.bucket = (20.0, 15)
        fake.arrivals.clear()
        repo = OutboxRepository(db)
        sinks: list[Sink] = [sink_a, sink_b]
        async with (
            ConnectorService([sinks[0]], repo, SETTINGS, node="a", limits=shared) as a,
            ConnectorService([sinks[1]], repo, SETTINGS, node="b", limits=shared) as b,
        ):
            await _stage(db, a, 40)
            await wait_until(lambda: _settled(db, "bitrix24"), limit=120)
            delivered = [a.workers[0].delivered, b.workers[0].delivered]
    assert all(d > 0 for d in delivered), delivered
    assert fake.over_limit == 0
    assert len(fake.activities) == 40
    assert len(fake.arrivals) >= 80  # a register and a finish per call
    assert _busiest_second(fake.arrivals) <= 35


async def test_without_redis_a_node_keeps_its_own_pace() -> None:
    """Redis unreachable: the shared limit falls back to the node's own (no error, still paced)."""
    redis = Redis.from_url("redis://127.0.0.1:1/0", socket_connect_timeout=0.2)
    slept: list[float] = []

    async def sleep(seconds: float) -> None:
        slept.append(seconds)
        await asyncio.sleep(seconds)

    limit = SharedRateLimit(redis, "crmtel:test:none", 10.0, sleep=sleep)
    try:
        for _ in range(3):
            await limit.acquire()
    finally:
        await redis.aclose()
    assert len(slept) >= 2
    assert sum(slept) == pytest.approx(0.21, abs=0.02)
