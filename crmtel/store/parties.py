"""Clients, contacts and leads, and the lookup of a phone number among them."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Protocol

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from crmtel.domain import Category, LeadStatus, LookupResult, PartyMatch
from crmtel.phones import normalize
from crmtel.store.crm_terms import CLIENT, LEAD, reindex_in
from crmtel.store.db import Database

# lookup_in is re-exported: other stores look numbers up inside their own transactions.
from crmtel.store.lookup import LookupReader
from crmtel.store.lookup import lookup_in as lookup_in
from crmtel.store.models import (
    ClientContactRow,
    ClientRow,
    ContactRow,
    LeadRow,
    PartyShareRow,
    PhoneRow,
)


class PartyLookup(Protocol):
    """Finds who a phone number belongs to."""

    async def lookup(self, e164: str) -> LookupResult:
        """Every CRM record the number belongs to, best first."""
        ...


@dataclass(frozen=True, slots=True)
class NewClient:
    """What is needed to create a client; ``phones`` are raw numbers, normalised here."""

    name: str
    phones: tuple[str, ...] = ()
    kind: str = "company"
    category: Category | None = None
    manager_id: int | None = None
    turnover: Decimal | None = None
    turnover_month: date | None = None
    stop_list: bool = False
    notes: str | None = None
    external_id: str | None = None


@dataclass(frozen=True, slots=True)
class NewLead:
    """What is needed to create a lead."""

    name: str
    phones: tuple[str, ...] = ()
    company: str | None = None
    email: str | None = None
    source: str = "import"
    status: LeadStatus = LeadStatus.NEW
    manager_id: int | None = None


@dataclass(frozen=True, slots=True)
class Created:
    """The id of a new record and the existing records that already own one of its numbers."""

    id: int
    duplicates: tuple[PartyMatch, ...]


def _now() -> datetime:
    return datetime.now(UTC)


def _unique_e164(phones: Iterable[str], region: str) -> list[tuple[str, str]]:
    seen: dict[str, str] = {}
    for raw in phones:
        e164 = normalize(raw, region).e164
        if e164 is not None and e164 not in seen:
            seen[e164] = raw
    return [(e, r) for e, r in seen.items()]


class PartyRepository:
    """Clients, contacts, leads and phone lookup, over the record store."""

    def __init__(self, db: Database, region: str = "RU") -> None:
        self._db = db
        self._region = region
        self._reader = LookupReader(db)

    async def lookup(self, e164: str) -> LookupResult:
        """Every CRM record the number belongs to, best first (see ``crmtel.store.lookup``)."""
        return await self._reader.lookup(e164)

    async def lookup_raw(self, raw: str) -> LookupResult:
        """Normalise a raw number, then look it up; extensions and garbage match nothing."""
        e164 = normalize(raw, self._region).e164
        if e164 is None:
            return LookupResult(e164=None)
        return await self.lookup(e164)

    async def owned_by(self, kind: str, party_id: int, manager_id: int) -> bool:
        """Whether the client or lead is the manager's own or shared with them."""
        table = ClientRow if kind == "client" else LeadRow
        async with self._db.session() as session:
            owner = await session.scalar(select(table.manager_id).where(table.id == party_id))
            if owner == manager_id:
                return True
            shared = await session.get(PartyShareRow, (kind, party_id, manager_id))
            return shared is not None

    async def add_client(self, client: NewClient) -> Created:
        """Create a client with its own numbers; numbers already owned elsewhere are reported."""
        phones = _unique_e164(client.phones, self._region)
        async with self._db.session() as session:
            dups = await owners_of(session, [e for e, _ in phones])
            row = ClientRow(
                name=client.name,
                kind=client.kind,
                category=client.category.value if client.category else None,
                manager_id=client.manager_id,
                turnover=client.turnover,
                turnover_month=client.turnover_month,
                stop_list=client.stop_list,
                notes=client.notes,
                external_id=client.external_id,
                created_at=_now(),
            )
            session.add(row)
            await session.flush()
            session.add_all(PhoneRow(e164=e, raw=r, client_id=row.id) for e, r in phones)
            await reindex_in(session, CLIENT, [row.id])
            return Created(row.id, dups)

    async def set_details(self, client_id: int, *, inn: str | None = None, email: str | None = None) -> None:
        """Set a client's INN and e-mail (imports and the demo; the card edits through crmtel.store.crm_parties)."""
        async with self._db.session() as session:
            row = await session.get(ClientRow, client_id)
            if row is None:
                return
            row.inn = inn or row.inn
            row.email = email or row.email
            await reindex_in(session, CLIENT, [client_id])

    async def add_contact(
        self, name: str, phones: Sequence[str], client_ids: Sequence[int], email: str | None = None
    ) -> Created:
        """Create a contact person acting for one or more clients."""
        numbers = _unique_e164(phones, self._region)
        async with self._db.session() as session:
            dups = await owners_of(session, [e for e, _ in numbers])
            row = ContactRow(name=name, email=email)
            session.add(row)
            await session.flush()
            session.add_all(ClientContactRow(client_id=cid, contact_id=row.id) for cid in set(client_ids))
            session.add_all(PhoneRow(e164=e, raw=r, contact_id=row.id) for e, r in numbers)
            await reindex_in(session, CLIENT, client_ids)
            return Created(row.id, dups)

    async def add_lead(self, lead: NewLead) -> Created:
        """Create a lead; numbers already owned by a client or another lead are reported."""
        phones = _unique_e164(lead.phones, self._region)
        async with self._db.session() as session:
            return await add_lead_in(session, lead, phones)


async def owners_of(session: AsyncSession, numbers: Sequence[str]) -> tuple[PartyMatch, ...]:
    """Every record that already owns one of these E.164 numbers (reported as duplicates on insert)."""
    found: list[PartyMatch] = []
    for e164 in numbers:
        found.extend((await lookup_in(session, e164)).matches)
    return tuple(found)


async def add_lead_in(session: AsyncSession, lead: NewLead, phones: Sequence[tuple[str, str]]) -> Created:
    """Create a lead inside an open session (``phones`` are ``(e164, raw)`` pairs)."""
    dups = await owners_of(session, [e for e, _ in phones])
    row = LeadRow(
        name=lead.name,
        company=lead.company,
        email=lead.email,
        source=lead.source,
        status=lead.status.value,
        manager_id=lead.manager_id,
        created_at=_now(),
    )
    session.add(row)
    await session.flush()
    session.add_all(PhoneRow(e164=e, raw=r, lead_id=row.id) for e, r in phones)
    await reindex_in(session, LEAD, [row.id])
    return Created(row.id, dups)
