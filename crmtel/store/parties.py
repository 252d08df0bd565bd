"""Clients, contacts and leads, and the lookup of a phone number among them."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any, Protocol

from sqlalchemy import Select, String, cast, literal, select, union_all
from sqlalchemy.ext.asyncio import AsyncSession

from crmtel.domain import Category, LeadStatus, LookupResult, PartyKind, PartyMatch
from crmtel.phones import normalize
from crmtel.store.db import Database
from crmtel.store.models import (
    ClientContactRow,
    ClientRow,
    ContactRow,
    ExtensionRow,
    LeadRow,
    ManagerRow,
    PhoneRow,
)

# Ranks: lower is better. A client with a personal manager beats a client without one, which beats a lead.
RANK_CLIENT_WITH_MANAGER = 0
RANK_CLIENT = 1
RANK_LEAD = 2
RANK_CONVERTED_LEAD = 3


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


def _client_columns(kind_via_contact: bool) -> list[Any]:
    via = ContactRow.name if kind_via_contact else cast(literal(None), String)
    return [
        literal(PartyKind.CLIENT.value).label("kind"),
        ClientRow.id.label("id"),
        ClientRow.name.label("name"),
        cast(literal(None), String).label("company"),
        ClientRow.category.label("category"),
        ClientRow.manager_id.label("manager_id"),
        ClientRow.turnover.label("turnover"),
        ClientRow.turnover_month.label("turnover_month"),
        ClientRow.stop_list.label("stop_list"),
        cast(literal(None), String).label("lead_status"),
        via.label("via_contact"),
    ]


def _lookup_query(e164: str) -> Select[Any]:
    via_contact = (
        select(*_client_columns(True))
        .select_from(PhoneRow)
        .join(ContactRow, ContactRow.id == PhoneRow.contact_id)
        .join(ClientContactRow, ClientContactRow.contact_id == ContactRow.id)
        .join(ClientRow, ClientRow.id == ClientContactRow.client_id)
        .where(PhoneRow.e164 == e164)
    )
    direct = (
        select(*_client_columns(False))
        .select_from(PhoneRow)
        .join(ClientRow, ClientRow.id == PhoneRow.client_id)
        .where(PhoneRow.e164 == e164)
    )
    leads = (
        select(
            literal(PartyKind.LEAD.value).label("kind"),
            LeadRow.id.label("id"),
            LeadRow.name.label("name"),
            LeadRow.company.label("company"),
            cast(literal(None), String).label("category"),
            LeadRow.manager_id.label("manager_id"),
            literal(None).label("turnover"),
            literal(None).label("turnover_month"),
            literal(False).label("stop_list"),
            LeadRow.status.label("lead_status"),
            cast(literal(None), String).label("via_contact"),
        )
        .select_from(PhoneRow)
        .join(LeadRow, LeadRow.id == PhoneRow.lead_id)
        .where(PhoneRow.e164 == e164)
    )
    return union_all(via_contact, direct, leads)  # type: ignore[return-value]


def _as_date(value: Any) -> date | None:
    if value is None or isinstance(value, date):
        return value
    return date.fromisoformat(str(value))


def _as_decimal(value: Any) -> Decimal | None:
    if value is None or isinstance(value, Decimal):
        return value
    return Decimal(str(value))


def _category(value: str | None) -> Category | None:
    try:
        return Category(value) if value else None
    except ValueError:
        return None


async def lookup_in(session: AsyncSession, e164: str) -> LookupResult:
    """Every client (directly or through a contact) and lead owning ``e164``, best first."""
    rows = (await session.execute(_lookup_query(e164))).all()
    if not rows:
        return LookupResult(e164=e164)
    manager_ids = {r.manager_id for r in rows if r.manager_id is not None}
    managers: dict[int, tuple[str, bool, list[str]]] = {}
    if manager_ids:
        found = await session.execute(
            select(ManagerRow.id, ManagerRow.name, ManagerRow.active, ExtensionRow.extension)
            .outerjoin(ExtensionRow, ExtensionRow.manager_id == ManagerRow.id)
            .where(ManagerRow.id.in_(manager_ids))
            .order_by(ManagerRow.id, ExtensionRow.id)
        )
        for mid, mname, active, ext in found:
            entry = managers.setdefault(mid, (mname, bool(active), []))
            if ext is not None:
                entry[2].append(ext)
    best: dict[tuple[str, int], PartyMatch] = {}
    for r in rows:
        mgr = managers.get(r.manager_id) if r.manager_id is not None else None
        if r.kind == PartyKind.CLIENT.value:
            rank = RANK_CLIENT_WITH_MANAGER if mgr is not None else RANK_CLIENT
        else:
            rank = RANK_CONVERTED_LEAD if r.lead_status == LeadStatus.CONVERTED.value else RANK_LEAD
        match = PartyMatch(
            kind=PartyKind(r.kind),
            id=r.id,
            name=r.name,
            rank=rank,
            company=r.company,
            category=_category(r.category),
            manager_id=r.manager_id,
            manager_name=mgr[0] if mgr else None,
            manager_extensions=tuple(mgr[2]) if mgr else (),
            manager_active=mgr[1] if mgr else False,
            turnover=_as_decimal(r.turnover),
            turnover_month=_as_date(r.turnover_month),
            stop_list=bool(r.stop_list),
            via_contact=r.via_contact,
        )
        key = (r.kind, r.id)
        # The same client can be reached through its own number and a contact's: keep one, the direct one.
        if key not in best or (best[key].via_contact is not None and match.via_contact is None):
            best[key] = match
    ordered = sorted(best.values(), key=lambda m: (m.rank, m.kind.value, m.id))
    return LookupResult(e164=e164, matches=tuple(ordered))


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

    async def lookup(self, e164: str) -> LookupResult:
        """Every CRM record the number belongs to, best first (see ``lookup_in``)."""
        async with self._db.session() as session:
            return await lookup_in(session, e164)

    async def lookup_raw(self, raw: str) -> LookupResult:
        """Normalise a raw number, then look it up; extensions and garbage match nothing."""
        e164 = normalize(raw, self._region).e164
        if e164 is None:
            return LookupResult(e164=None)
        return await self.lookup(e164)

    async def _duplicates(self, session: AsyncSession, numbers: Sequence[str]) -> tuple[PartyMatch, ...]:
        found: list[PartyMatch] = []
        for e164 in numbers:
            found.extend((await lookup_in(session, e164)).matches)
        return tuple(found)

    async def add_client(self, client: NewClient) -> Created:
        """Create a client with its own numbers; numbers already owned elsewhere are reported."""
        phones = _unique_e164(client.phones, self._region)
        async with self._db.session() as session:
            dups = await self._duplicates(session, [e for e, _ in phones])
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
            return Created(row.id, dups)

    async def add_contact(
        self, name: str, phones: Sequence[str], client_ids: Sequence[int], email: str | None = None
    ) -> Created:
        """Create a contact person acting for one or more clients."""
        numbers = _unique_e164(phones, self._region)
        async with self._db.session() as session:
            dups = await self._duplicates(session, [e for e, _ in numbers])
            row = ContactRow(name=name, email=email)
            session.add(row)
            await session.flush()
            session.add_all(ClientContactRow(client_id=cid, contact_id=row.id) for cid in set(client_ids))
            session.add_all(PhoneRow(e164=e, raw=r, contact_id=row.id) for e, r in numbers)
            return Created(row.id, dups)

    async def add_lead(self, lead: NewLead) -> Created:
        """Create a lead; numbers already owned by a client or another lead are reported."""
        phones = _unique_e164(lead.phones, self._region)
        async with self._db.session() as session:
            return await add_lead_in(session, lead, phones)


async def add_lead_in(session: AsyncSession, lead: NewLead, phones: Sequence[tuple[str, str]]) -> Created:
    """Create a lead inside an open session (``phones`` are ``(e164, raw)`` pairs)."""
    dups: list[PartyMatch] = []
    for e164, _ in phones:
        dups.extend((await lookup_in(session, e164)).matches)
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
    return Created(row.id, tuple(dups))
