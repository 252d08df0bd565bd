"""A client's or lead's card: read it, edit it (with the audit trail), share it, write notes on it."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import delete, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from crmtel.crm.models import (
    AuditEntry,
    ContactInput,
    ContactView,
    Kind,
    PartyCard,
    PartyChanges,
    PhoneInput,
    PhoneView,
    Viewer,
)
from crmtel.domain import LeadStatus, PartyMatch
from crmtel.errors import CrmtelError, NotFound
from crmtel.store.crm_lists import table_of
from crmtel.store.crm_terms import clients_of_contacts_in, reindex_in
from crmtel.store.db import Database
from crmtel.store.models import (
    AuditRow,
    ClientContactRow,
    ClientRow,
    ContactRow,
    LeadRow,
    ManagerRow,
    PartyNoteRow,
    PartyShareRow,
    PhoneRow,
)
from crmtel.store.parties import lookup_in
from crmtel.timestamps import assume_utc


class StaleEdit(CrmtelError):
    """The record changed since the editor loaded it."""


class LeadConverted(CrmtelError):
    """A converted lead's status cannot be edited (it would make the lead convertible a second time)."""


async def lock_row_in(session: AsyncSession, kind: Kind, party_id: int) -> None:
    """Hold the record's row for this transaction (an update that changes nothing, the transaction's first
    write): a concurrent edit of the same record waits here and then reads what this one wrote, so two edits
    made on one version cannot both pass the version check (PostgreSQL: the row lock; SQLite: the write lock)."""
    table = table_of(kind)
    await session.execute(
        update(table)
        .where(table.id == party_id)
        .values(id=table.id)
        .execution_options(synchronize_session=False)
    )


async def audit_in(
    session: AsyncSession,
    manager_id: int | None,
    entity: str,
    entity_id: int,
    action: str,
    changes: dict[str, object],
    at: datetime | None = None,
) -> None:
    """Write one audit entry (``changes``: field -> [old, new], or what the action needs to say)."""
    session.add(
        AuditRow(
            at=at or datetime.now(UTC),
            manager_id=manager_id,
            entity=entity,
            entity_id=entity_id,
            action=action,
            changes=changes,
        )
    )


async def may_see_in(session: AsyncSession, kind: Kind, party_id: int, viewer: Viewer) -> Any | None:
    """The party's row when the viewer may see (and so edit) it: a head always; a manager their own,
    shared and unassigned ones. None otherwise, the same as for a record that does not exist."""
    row = await session.get(table_of(kind), party_id)
    if row is None or viewer.head or row.manager_id in (None, viewer.manager_id):
        return row
    shared = await session.get(PartyShareRow, (kind.value, party_id, viewer.manager_id))
    return row if shared is not None else None


async def owns_in(session: AsyncSession, kind: Kind, party_id: int, viewer: Viewer) -> bool:
    """Whether the party is the viewer's own or shared with them (their calls with it are theirs to see)."""
    if viewer.head:
        return True
    row = await session.get(table_of(kind), party_id)
    if row is None:
        return False
    if row.manager_id == viewer.manager_id:
        return True
    return await session.get(PartyShareRow, (kind.value, party_id, viewer.manager_id)) is not None


def _phone_view(row: PhoneRow) -> PhoneView:
    return PhoneView(row.id, row.e164, row.kind, row.contact_id)


async def _card_in(session: AsyncSession, kind: Kind, row: Any, audit_limit: int = 50) -> PartyCard:
    owner = PhoneRow.client_id if kind is Kind.CLIENT else PhoneRow.lead_id
    phones = (await session.execute(select(PhoneRow).where(owner == row.id).order_by(PhoneRow.id))).scalars()
    contacts: list[ContactView] = []
    if kind is Kind.CLIENT:
        people_rows = (
            await session.execute(
                select(ContactRow)
                .join(ClientContactRow, ClientContactRow.contact_id == ContactRow.id)
                .where(ClientContactRow.client_id == row.id)
                .order_by(ContactRow.id)
            )
        ).scalars()
        people = list(people_rows)
        numbers: dict[int, list[PhoneView]] = {}
        if people:
            for p in (
                await session.execute(
                    select(PhoneRow)
                    .where(PhoneRow.contact_id.in_([c.id for c in people]))
                    .order_by(PhoneRow.id)
                )
            ).scalars():
                numbers.setdefault(p.contact_id or 0, []).append(_phone_view(p))
        contacts = [
            ContactView(c.id, c.name, c.position, c.email, tuple(numbers.get(c.id, ()))) for c in people
        ]
    manager_name = None
    if row.manager_id is not None:
        manager_name = await session.scalar(select(ManagerRow.name).where(ManagerRow.id == row.manager_id))
    shares = (
        await session.execute(
            select(PartyShareRow.manager_id).where(
                PartyShareRow.kind == kind.value, PartyShareRow.party_id == row.id
            )
        )
    ).all()
    audit = await audit_of_in(session, kind.value, row.id, audit_limit)
    client = kind is Kind.CLIENT
    return PartyCard(
        kind=kind,
        id=row.id,
        name=row.name,
        company=None if client else row.company,
        person=client and row.kind == "person",
        category=row.category if client else None,
        email=row.email,
        inn=row.inn if client else None,
        tags=tuple(row.tags or ()) if client else (),
        comment=row.notes if client else None,
        turnover=Decimal(row.turnover) if client and row.turnover is not None else None,
        turnover_month=row.turnover_month.isoformat()[:7] if client and row.turnover_month else None,
        stop_list=bool(row.stop_list) if client else False,
        status=None if client else row.status,
        source=None if client else row.source,
        refusal_reason=None if client else row.refusal_reason,
        manager_id=row.manager_id,
        manager_name=manager_name,
        client_id=None if client else row.client_id,
        created_at=assume_utc(row.created_at) or row.created_at,
        updated_at=assume_utc(row.updated_at),
        phones=tuple(_phone_view(p) for p in phones),
        contacts=tuple(contacts),
        shared_with=tuple(r[0] for r in shares),
        audit=tuple(audit),
    )


async def audit_of_in(
    session: AsyncSession, entity: str, entity_id: int, limit: int = 50
) -> list[AuditEntry]:
    """The newest audit entries of a record."""
    rows = await session.execute(
        select(AuditRow, ManagerRow.name)
        .outerjoin(ManagerRow, ManagerRow.id == AuditRow.manager_id)
        .where(AuditRow.entity == entity, AuditRow.entity_id == entity_id)
        .order_by(AuditRow.at.desc(), AuditRow.id.desc())
        .limit(limit)
    )
    return [
        AuditEntry(a.id, assume_utc(a.at) or a.at, a.manager_id, name, a.action, dict(a.changes or {}))
        for a, name in rows.all()
    ]


@dataclass(frozen=True, slots=True)
class EditResult:
    """The card after an edit, what changed, and numbers that another record also has (a warning)."""

    card: PartyCard
    changes: dict[str, object]
    duplicates: tuple[PartyMatch, ...]


def _text(value: object) -> object:
    if isinstance(value, Decimal):
        return f"{value:.2f}"
    if isinstance(value, datetime):
        return value.isoformat()
    return value


def _phones_text(phones: Sequence[PhoneInput] | Sequence[PhoneView]) -> list[str]:
    return [p.e164 + (f" ({p.kind})" if p.kind else "") for p in phones]


class PartyCards:
    """The card of a client or lead over the record store."""

    def __init__(self, db: Database) -> None:
        self._db = db

    async def get(self, kind: Kind, party_id: int, viewer: Viewer) -> PartyCard | None:
        """The card, or None when it does not exist or the viewer may not see it."""
        async with self._db.session() as session:
            row = await may_see_in(session, kind, party_id, viewer)
            return await _card_in(session, kind, row) if row is not None else None

    async def edit(
        self,
        kind: Kind,
        party_id: int,
        viewer: Viewer,
        changes: PartyChanges,
        *,
        version: datetime | None = None,
    ) -> EditResult:
        """Apply an edit, audit what changed (NotFound when the viewer may not see the record; StaleEdit
        when ``version``, the ``updated_at`` the editor loaded, is no longer the record's)."""
        now = datetime.now(UTC)
        async with self._db.session() as session:
            await lock_row_in(session, kind, party_id)
            row = await may_see_in(session, kind, party_id, viewer)
            if row is None:
                raise NotFound(f"{kind.value} {party_id}")
            if (
                kind is Kind.LEAD
                and row.status == LeadStatus.CONVERTED.value
                and changes.status is not None
                and changes.status != row.status
            ):
                raise LeadConverted(f"lead {party_id} is client {row.client_id}")
            # The version is when the record last changed (or was created): an edit made on an older one is stale.
            if version is not None and assume_utc(row.updated_at or row.created_at) != version:
                raise StaleEdit(f"{kind.value} {party_id} changed at {row.updated_at}")
            diff = _apply(kind, row, changes)
            duplicates: tuple[PartyMatch, ...] = ()
            if changes.phones is not None:
                before, dups = await _replace_phones(session, kind, row.id, changes.phones)
                after = _phones_text(changes.phones)
                if before != after:
                    diff["phones"] = [before, after]
                duplicates = dups
            # Other clients the edited contact persons also act for: their index holds the contacts' names
            # and numbers too.
            also: list[int] = []
            if kind is Kind.CLIENT and changes.contacts is not None:
                before_c, after_c, touched = await _replace_contacts(session, row.id, changes.contacts)
                if before_c != after_c:
                    diff["contacts"] = [before_c, after_c]
                    also = [c for c in await clients_of_contacts_in(session, touched) if c != row.id]
            if diff:
                row.updated_at = now
                await audit_in(session, viewer.manager_id, kind.value, row.id, "edit", diff, now)
                await reindex_in(session, kind.code, [row.id, *also])
            await session.flush()
            card = await _card_in(session, kind, row)
            return EditResult(card, diff, duplicates)

    async def share(self, kind: Kind, party_id: int, viewer: Viewer, manager_ids: Sequence[int]) -> PartyCard:
        """Set who else may see and edit the record (NotFound when the viewer may not see it)."""
        async with self._db.session() as session:
            row = await may_see_in(session, kind, party_id, viewer)
            if row is None:
                raise NotFound(f"{kind.value} {party_id}")
            current = {
                r[0]
                for r in (
                    await session.execute(
                        select(PartyShareRow.manager_id).where(
                            PartyShareRow.kind == kind.value, PartyShareRow.party_id == party_id
                        )
                    )
                ).all()
            }
            wanted = set(manager_ids) - {row.manager_id}
            if wanted != current:
                await session.execute(
                    delete(PartyShareRow).where(
                        PartyShareRow.kind == kind.value, PartyShareRow.party_id == party_id
                    )
                )
                session.add_all(
                    PartyShareRow(kind=kind.value, party_id=party_id, manager_id=m) for m in wanted
                )
                await audit_in(
                    session,
                    viewer.manager_id,
                    kind.value,
                    party_id,
                    "share",
                    {"shared_with": [sorted(current), sorted(wanted)]},
                )
                await session.flush()
            return await _card_in(session, kind, row)

    async def add_note(self, kind: Kind, party_id: int, viewer: Viewer, text: str) -> int:
        """Write a note on the record; its id (NotFound when the viewer may not see the record)."""
        async with self._db.session() as session:
            if await may_see_in(session, kind, party_id, viewer) is None:
                raise NotFound(f"{kind.value} {party_id}")
            note = PartyNoteRow(
                kind=kind.value,
                party_id=party_id,
                manager_id=viewer.manager_id,
                text=text,
                created_at=datetime.now(UTC),
            )
            session.add(note)
            await session.flush()
            return note.id


_CLIENT_FIELDS = {
    "name": "name",
    "category": "category",
    "email": "email",
    "inn": "inn",
    "comment": "notes",
    "turnover": "turnover",
    "stop_list": "stop_list",
}
_LEAD_FIELDS = {
    "name": "name",
    "company": "company",
    "email": "email",
    "status": "status",
    "refusal_reason": "refusal_reason",
}


def _apply(kind: Kind, row: Any, changes: PartyChanges) -> dict[str, object]:
    diff: dict[str, object] = {}
    fields = _CLIENT_FIELDS if kind is Kind.CLIENT else _LEAD_FIELDS

    def put(field: str, column: str, value: object) -> None:
        old = getattr(row, column)
        if old != value:
            diff[field] = [_text(old), _text(value)]
            setattr(row, column, value)

    for field, column in fields.items():
        value = getattr(changes, field)
        if field in changes.cleared:
            put(field, column, None if field != "stop_list" else False)
        elif value is not None:
            put(field, column, value)
    if kind is Kind.CLIENT:
        if changes.person is not None:
            put("person", "kind", "person" if changes.person else "company")
        if changes.tags is not None and list(changes.tags) != list(row.tags or []):
            diff["tags"] = [list(row.tags or []), list(changes.tags)]
            row.tags = list(changes.tags)
    if changes.unassign:
        put("manager_id", "manager_id", None)
    elif changes.manager_id is not None:
        put("manager_id", "manager_id", changes.manager_id)
    return diff


async def _replace_phones(
    session: AsyncSession, kind: Kind, party_id: int, phones: Sequence[PhoneInput]
) -> tuple[list[str], tuple[PartyMatch, ...]]:
    owner = PhoneRow.client_id if kind is Kind.CLIENT else PhoneRow.lead_id
    current = list(
        (await session.execute(select(PhoneRow).where(owner == party_id).order_by(PhoneRow.id))).scalars()
    )
    before = _phones_text([_phone_view(p) for p in current])
    wanted = {p.e164: p for p in phones}
    for row in current:
        if row.e164 not in wanted:
            await session.delete(row)
        else:
            row.kind = wanted.pop(row.e164).kind
    duplicates: list[PartyMatch] = []
    for e164, phone in wanted.items():
        found = await lookup_in(session, e164)
        duplicates.extend(m for m in found.matches if not (m.kind.value == kind.value and m.id == party_id))
        session.add(
            PhoneRow(
                e164=e164,
                raw=e164,
                kind=phone.kind,
                client_id=party_id if kind is Kind.CLIENT else None,
                lead_id=party_id if kind is Kind.LEAD else None,
            )
        )
    await session.flush()
    return before, tuple(duplicates)


def _contact_text(name: str, position: str | None, email: str | None, phones: Sequence[Any]) -> str:
    extra = ", ".join(x for x in (position, email, *_phones_text(phones)) if x)
    return f"{name} ({extra})" if extra else name


async def _replace_contacts(
    session: AsyncSession, client_id: int, contacts: Sequence[ContactInput]
) -> tuple[list[str], list[str], list[int]]:
    """Set the client's contact persons; their texts before and after, and the ids of the linked ones it
    kept, changed or unlinked (which other clients may share)."""
    linked = list(
        (
            await session.execute(
                select(ContactRow)
                .join(ClientContactRow, ClientContactRow.contact_id == ContactRow.id)
                .where(ClientContactRow.client_id == client_id)
                .order_by(ContactRow.id)
            )
        ).scalars()
    )
    by_id = {c.id: c for c in linked}
    numbers: dict[int, list[PhoneRow]] = {}
    if linked:
        for p in (
            await session.execute(
                select(PhoneRow).where(PhoneRow.contact_id.in_(list(by_id))).order_by(PhoneRow.id)
            )
        ).scalars():
            numbers.setdefault(p.contact_id or 0, []).append(p)
    before = [
        _contact_text(c.name, c.position, c.email, [_phone_view(p) for p in numbers.get(c.id, [])])
        for c in linked
    ]
    keep: set[int] = set()
    for wanted in contacts:
        contact = by_id.get(wanted.id) if wanted.id is not None else None
        if contact is None:
            contact = ContactRow(name=wanted.name, position=wanted.position, email=wanted.email)
            session.add(contact)
            await session.flush()
            session.add(ClientContactRow(client_id=client_id, contact_id=contact.id))
        else:
            contact.name, contact.position, contact.email = wanted.name, wanted.position, wanted.email
        keep.add(contact.id)
        have = {p.e164: p for p in numbers.get(contact.id, [])}
        for phone in wanted.phones:
            if phone.e164 in have:
                have.pop(phone.e164).kind = phone.kind
            else:
                session.add(PhoneRow(e164=phone.e164, raw=phone.e164, kind=phone.kind, contact_id=contact.id))
        for gone in have.values():
            await session.delete(gone)
    for contact in linked:
        if contact.id in keep:
            continue
        await session.execute(
            delete(ClientContactRow).where(
                ClientContactRow.client_id == client_id, ClientContactRow.contact_id == contact.id
            )
        )
        others = await session.scalar(
            select(ClientContactRow.client_id).where(ClientContactRow.contact_id == contact.id).limit(1)
        )
        if others is None:
            await session.delete(contact)
    await session.flush()
    after = [_contact_text(c.name, c.position, c.email, c.phones) for c in contacts]
    return before, after, sorted(by_id)


async def manager_exists_in(session: AsyncSession, manager_id: int) -> bool:
    """Whether an active manager has this id."""
    found = await session.scalar(
        select(ManagerRow.id).where(ManagerRow.id == manager_id, ManagerRow.active.is_(True))
    )
    return found is not None


async def leads_of_client_in(session: AsyncSession, client_id: int) -> list[int]:
    """Leads converted into this client."""
    rows = await session.execute(select(LeadRow.id).where(LeadRow.client_id == client_id))
    return [r[0] for r in rows.all()]


__all__ = [
    "ClientRow",
    "EditResult",
    "LeadConverted",
    "PartyCards",
    "StaleEdit",
    "audit_in",
    "lock_row_in",
    "may_see_in",
    "owns_in",
]
