"""A party lookup that fails (the store briefly unreachable) does not make a known client an unknown caller: the
write re-reads the party in its own transaction, so no lead is created for the client's number (review28c)."""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from sqlalchemy import func, select

from crmtel.ami.protocol import Message
from crmtel.calls.service import CallService
from crmtel.config import CallsSettings
from crmtel.domain import LookupResult
from crmtel.errors import StoreUnavailable
from crmtel.fakepbx.simulator import Rewriter, load_patterns
from crmtel.store.calls import CallRepository
from crmtel.store.db import Database
from crmtel.store.models import LeadRow
from crmtel.store.parties import NewClient, PartyRepository

CLIENT = "+79160000001"
BASE = datetime(2026, 12, 6, 12, 0, tzinfo=UTC)


@dataclass
class FailingOnce:
    """The store's party read, failing the first time it is asked (as a pool timeout or a dropped link does)."""

    inner: PartyRepository
    failed: list[str] = field(default_factory=list)

    async def lookup(self, e164: str) -> LookupResult:
        if not self.failed:
            self.failed.append(e164)
            raise StoreUnavailable("database unreachable: connection reset")
        return await self.inner.lookup(e164)


async def test_a_known_client_whose_lookup_failed_gets_no_lead_and_keeps_its_party(db: Database) -> None:
    parties = PartyRepository(db)
    await parties.add_client(NewClient(name="ООО Ромашка", phones=(CLIENT,)))
    failing = FailingOnce(parties)
    service = CallService(db, CallsSettings(), failing)
    pattern = {p.name: p for p in load_patterns()}["direct-caller-gives-up"]
    stream = Rewriter(random.Random(1)).rewrite(
        pattern, start=0.0, epoch=1.8e9, stretch=0.01, caller=(CLIENT, "Иван Петров")
    )
    try:
        for item in stream:
            await service.on_event("pbx1", Message(item.headers), BASE + timedelta(seconds=item.t))
        await service.flush()
        assert failing.failed == [CLIENT]
        (call,) = await CallRepository(db).between()
        assert call.record.ended_at is not None
        # Before: the failed lookup counted as "nobody": a lead named after the caller, and the call its.
        assert call.record.party_name == "ООО Ромашка"
        async with db.session() as session:
            leads = await session.scalar(select(func.count()).select_from(LeadRow))
        assert leads == 0
    finally:
        await service.aclose()
