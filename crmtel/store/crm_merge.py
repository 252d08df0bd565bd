"""A lead converted into a client, and two records merged into one: numbers, calls, deals, notes, tasks and
shares move to the record kept, in one transaction, with an audit entry on both."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import and_, delete, not_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from crmtel.crm.models import Kind, Viewer
from crmtel.domain import LeadStatus
from crmtel.errors import CrmtelError, NotFound
from crmtel.store.crm_lists import table_of
from crmtel.store.crm_parties import audit_in, may_see_in
from crmtel.store.crm_terms import reindex_in
from crmtel.store.db import Database
from crmtel.store.models import (
    CallRow,
    ClientContactRow,
    ClientRow,
    ContactRow,
    DealRow,
    LeadRow,
    PartyNoteRow,
    PartyShareRow,
    PhoneRow,
    TaskRow,
)


def _count(result: Any) -> int:
    return int(getattr(result, "rowcount", 0) or 0)


class MergeRefused(CrmtelError):
    """The merge or conversion makes no sense (a record with itself, a client into a lead, a converted lead)."""


class MergeForbidden(CrmtelError):
    """The record to merge away is someone else's (only shared with the asker): only its manager or a head may
    make it go, as only they may share it."""


async def _move_history(
    session: AsyncSession, src_kind: Kind, src_id: int, dst_kind: Kind, dst_id: int, dst_name: str
) -> dict[str, int]:
    """Point calls, deals, tasks, notes and shares of one record at another; how many of each moved."""
    moved: dict[str, int] = {}
    result = await session.execute(
        update(CallRow)
        .where(CallRow.party_kind == src_kind.value, CallRow.party_id == src_id)
        .values(party_kind=dst_kind.value, party_id=dst_id, party_name=dst_name)
    )
    moved["calls"] = _count(result)
    src_deal = DealRow.client_id if src_kind is Kind.CLIENT else DealRow.lead_id
    dst_values = {"client_id": dst_id} if dst_kind is Kind.CLIENT else {"lead_id": dst_id}
    if dst_kind is Kind.CLIENT and src_kind is Kind.LEAD:
        # A lead's deal becomes the client's; the lead stays named on it (where it came from).
        result = await session.execute(update(DealRow).where(src_deal == src_id).values(client_id=dst_id))
    else:
        result = await session.execute(update(DealRow).where(src_deal == src_id).values(**dst_values))
    moved["deals"] = _count(result)
    src_task = TaskRow.client_id if src_kind is Kind.CLIENT else TaskRow.lead_id
    if dst_kind is Kind.CLIENT and src_kind is Kind.LEAD:
        result = await session.execute(update(TaskRow).where(src_task == src_id).values(client_id=dst_id))
    else:
        result = await session.execute(update(TaskRow).where(src_task == src_id).values(**dst_values))
    moved["tasks"] = _count(result)
    result = await session.execute(
        update(PartyNoteRow)
        .where(PartyNoteRow.kind == src_kind.value, PartyNoteRow.party_id == src_id)
        .values(kind=dst_kind.value, party_id=dst_id)
    )
    moved["notes"] = _count(result)
    shares = (
        await session.execute(
            select(PartyShareRow.manager_id).where(
                PartyShareRow.kind == src_kind.value, PartyShareRow.party_id == src_id
            )
        )
    ).all()
    have = {
        r[0]
        for r in (
            await session.execute(
                select(PartyShareRow.manager_id).where(
                    PartyShareRow.kind == dst_kind.value, PartyShareRow.party_id == dst_id
                )
            )
        ).all()
    }
    await session.execute(
        delete(PartyShareRow).where(PartyShareRow.kind == src_kind.value, PartyShareRow.party_id == src_id)
    )
    session.add_all(
        PartyShareRow(kind=dst_kind.value, party_id=dst_id, manager_id=m) for (m,) in shares if m not in have
    )
    return moved


async def _move_phones(
    session: AsyncSession, src_kind: Kind, src_id: int, dst_kind: Kind, dst_id: int
) -> int:
    src = PhoneRow.client_id if src_kind is Kind.CLIENT else PhoneRow.lead_id
    dst = PhoneRow.client_id if dst_kind is Kind.CLIENT else PhoneRow.lead_id
    have = {r[0] for r in (await session.execute(select(PhoneRow.e164).where(dst == dst_id))).all()}
    rows = list((await session.execute(select(PhoneRow).where(src == src_id))).scalars())
    moved = 0
    for row in rows:
        if row.e164 in have:
            await session.delete(row)
            continue
        row.client_id = dst_id if dst_kind is Kind.CLIENT else None
        row.lead_id = dst_id if dst_kind is Kind.LEAD else None
        have.add(row.e164)
        moved += 1
    await session.flush()
    return moved


_NOT_CONVERTED = not_(and_(LeadRow.status == LeadStatus.CONVERTED.value, LeadRow.client_id.is_not(None)))


async def _claim(session: AsyncSession, kind: Kind, party_id: int, now: datetime, *, open_lead: bool) -> bool:
    """Lock the record's row for this transaction (a conditional update, first statement that writes): a
    concurrent conversion or merge of the same record waits here, then finds it gone or converted. With
    ``open_lead``, a lead already converted into a client is not claimed. Whether the row was claimed."""
    table = table_of(kind)
    query = update(table).where(table.id == party_id)
    if open_lead and kind is Kind.LEAD:
        query = query.where(_NOT_CONVERTED)
    result = await session.execute(query.values(updated_at=now).execution_options(synchronize_session=False))
    return _count(result) > 0


class PartyMerger:
    """Conversion of leads and merging of records."""

    def __init__(self, db: Database) -> None:
        self._db = db

    async def convert(self, lead_id: int, viewer: Viewer, *, client_name: str | None = None) -> int:
        """Make a lead a client (named ``client_name``, else the lead's company, else its name); the lead's
        numbers, calls, deals, tasks and notes move to the client; when the lead has a company, the lead's
        person becomes the client's contact person. Returns the client's id."""
        now = datetime.now(UTC)
        async with self._db.session() as session:
            claimed = await _claim(session, Kind.LEAD, lead_id, now, open_lead=True)
            lead = await may_see_in(session, Kind.LEAD, lead_id, viewer)
            if lead is None:
                raise NotFound(f"lead {lead_id}")
            if not claimed or (lead.status == LeadStatus.CONVERTED.value and lead.client_id is not None):
                raise MergeRefused(f"lead {lead_id} is already client {lead.client_id}")
            name = (client_name or lead.company or lead.name).strip()[:300]
            client = ClientRow(
                name=name,
                kind="company" if lead.company else "person",
                manager_id=lead.manager_id or viewer.manager_id,
                email=lead.email,
                stop_list=False,
                tags=[],
                created_at=now,
                updated_at=now,
            )
            session.add(client)
            await session.flush()
            if lead.company and lead.name and lead.name != name:
                contact = ContactRow(name=lead.name, email=lead.email)
                session.add(contact)
                await session.flush()
                session.add(ClientContactRow(client_id=client.id, contact_id=contact.id))
                await session.execute(
                    update(PhoneRow)
                    .where(PhoneRow.lead_id == lead_id)
                    .values(lead_id=None, contact_id=contact.id)
                )
            else:
                await _move_phones(session, Kind.LEAD, lead_id, Kind.CLIENT, client.id)
            moved = await _move_history(session, Kind.LEAD, lead_id, Kind.CLIENT, client.id, name)
            lead.status = LeadStatus.CONVERTED.value
            lead.client_id = client.id
            lead.converted_at = now
            lead.updated_at = now
            await audit_in(
                session, viewer.manager_id, "lead", lead_id, "convert", {"client_id": client.id, **moved}, now
            )
            await audit_in(
                session,
                viewer.manager_id,
                "client",
                client.id,
                "create",
                {"from_lead": lead_id, **moved},
                now,
            )
            await reindex_in(session, "l", [lead_id])
            await reindex_in(session, "c", [client.id])
            return client.id

    async def merge(
        self, kind: Kind, keep_id: int, drop_kind: Kind, drop_id: int, viewer: Viewer
    ) -> dict[str, int]:
        """Merge ``drop`` into ``keep`` (a client into a client, a lead into a lead or into a client).

        The kept record keeps its fields and gains the other's numbers, contact persons, calls, deals, tasks,
        notes and shares; a dropped client is deleted, a dropped lead is marked converted into the client (or
        refused as a duplicate of the lead kept). Returns how many of each moved.
        """
        if kind is drop_kind and keep_id == drop_id:
            raise MergeRefused("a record cannot be merged with itself")
        if kind is Kind.LEAD and drop_kind is Kind.CLIENT:
            raise MergeRefused("a client cannot be merged into a lead (merge the lead into the client)")
        now = datetime.now(UTC)
        async with self._db.session() as session:
            # Both rows locked in one order (kind, id), so crossed merges wait for each other, never deadlock;
            # the one that comes second finds a record gone (404) or a lead already converted (409).
            claimed = {}
            for k, i in sorted([(kind, keep_id), (drop_kind, drop_id)], key=lambda p: (p[0].value, p[1])):
                claimed[k, i] = await _claim(session, k, i, now, open_lead=(k, i) == (drop_kind, drop_id))
            keep = await may_see_in(session, kind, keep_id, viewer)
            drop = await may_see_in(session, drop_kind, drop_id, viewer)
            if keep is None:
                raise NotFound(f"{kind.value} {keep_id}")
            if drop is None:
                raise NotFound(f"{drop_kind.value} {drop_id}")
            if not (viewer.head or drop.manager_id in (None, viewer.manager_id)):
                raise MergeForbidden(f"{drop_kind.value} {drop_id} is manager {drop.manager_id}'s")
            if not claimed[drop_kind, drop_id]:
                raise MergeRefused(f"{drop_kind.value} {drop_id} is already client {drop.client_id}")
            moved = {"phones": await _move_phones(session, drop_kind, drop_id, kind, keep_id)}
            if drop_kind is Kind.CLIENT:
                links = (
                    await session.execute(
                        select(ClientContactRow.contact_id).where(ClientContactRow.client_id == drop_id)
                    )
                ).all()
                have = {
                    r[0]
                    for r in (
                        await session.execute(
                            select(ClientContactRow.contact_id).where(ClientContactRow.client_id == keep_id)
                        )
                    ).all()
                }
                await session.execute(delete(ClientContactRow).where(ClientContactRow.client_id == drop_id))
                session.add_all(
                    ClientContactRow(client_id=keep_id, contact_id=c) for (c,) in links if c not in have
                )
                moved["contacts"] = len(links)
                await session.execute(
                    update(LeadRow).where(LeadRow.client_id == drop_id).values(client_id=keep_id)
                )
            moved.update(await _move_history(session, drop_kind, drop_id, kind, keep_id, keep.name))
            snapshot = {"name": drop.name, "id": drop_id, "kind": drop_kind.value}
            if drop_kind is Kind.CLIENT:
                await session.flush()
                await session.delete(drop)
                await session.execute(
                    delete(PartyShareRow).where(
                        PartyShareRow.kind == "client", PartyShareRow.party_id == drop_id
                    )
                )
            else:
                drop.status = LeadStatus.CONVERTED.value if kind is Kind.CLIENT else LeadStatus.REFUSED.value
                drop.client_id = keep_id if kind is Kind.CLIENT else None
                drop.converted_at = now if kind is Kind.CLIENT else drop.converted_at
                if kind is Kind.LEAD:
                    drop.refusal_reason = f"duplicate of lead #{keep_id}"
                drop.updated_at = now
            keep.updated_at = now
            await audit_in(
                session, viewer.manager_id, kind.value, keep_id, "merge", {"merged": snapshot, **moved}, now
            )
            await audit_in(
                session,
                viewer.manager_id,
                drop_kind.value,
                drop_id,
                "merged_into",
                {"into": [kind.value, keep_id]},
                now,
            )
            await session.flush()
            await reindex_in(session, kind.code, [keep_id])
            await reindex_in(session, drop_kind.code, [drop_id])
            return moved
