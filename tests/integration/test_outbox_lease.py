"""A batch slower than its lease (a slow CRM) stays its node's: another node does not deliver it again."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from crmtel.config import OutboxSettings
from crmtel.connectors.models import Attempt, Kind, OutboxEvent, Staged, Verdict
from crmtel.connectors.service import DeliveryWorker
from crmtel.store.db import Database
from crmtel.store.outbox import OutboxRepository, stage_in
from tests.fixtures.fake_ami import wait_until


class SlowCrm:
    """A CRM answering each request in 1.2 s (well inside any timeout) that counts the effects it saw."""

    name = "slow"
    kinds = frozenset(Kind)
    rate_per_second = 1000.0
    rate_burst = 1000

    def __init__(self, seen: Counter[str]) -> None:
        self.seen = seen

    async def deliver(self, event: OutboxEvent, memo: Mapping[str, Any]) -> Attempt:
        await asyncio.sleep(1.2)
        self.seen[event.key] += 1
        return Attempt(Verdict.DELIVERED, "HTTP 200")

    async def aclose(self) -> None:
        return None


async def test_a_slow_crm_sees_each_effect_once_with_two_nodes(db: Database) -> None:
    """Node a's batch of 6 takes ~7 s with a 5 s lease: it keeps its claims, so node b delivers none of them."""
    settings = OutboxSettings(lease_seconds=5, batch=6, concurrency=1, poll_seconds=0.05)
    staged = [Staged("pbx1", f"1.{i}", Kind.ENDED, f"pbx1:1.{i}:ended", {}) for i in range(6)]
    async with db.session() as session:
        await stage_in(session, "slow", staged, datetime.now(UTC))
    seen: Counter[str] = Counter()
    repo = OutboxRepository(db)
    a = DeliveryWorker(SlowCrm(seen), repo, settings, node="a")
    b = DeliveryWorker(SlowCrm(seen), repo, settings, node="b")
    task_a = asyncio.create_task(a.run(), name="node-a")
    await asyncio.sleep(0.5)  # node a claims the whole batch first
    task_b = asyncio.create_task(b.run(), name="node-b")
    try:

        async def all_delivered() -> bool:
            return (await repo.states("slow")).get("delivered") == 6

        await wait_until(all_delivered, limit=40)
        await asyncio.sleep(1.5)  # anything node b took would be delivered by now
    finally:
        for task in (task_a, task_b):
            task.cancel()
        await asyncio.gather(task_a, task_b, return_exceptions=True)
    assert sorted(seen) == sorted(s.key for s in staged)
    assert {key: n for key, n in seen.items() if n > 1} == {}
    assert (a.delivered, b.delivered) == (6, 0)
