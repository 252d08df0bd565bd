"""The search index of clients and leads (``party_terms`` and the folded ``name_key``), kept by every writer.

Whoever creates or changes a client, a lead, their numbers or contact persons calls ``reindex_in`` for the
parties touched, inside the same transaction: the index is never behind the records.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any, Protocol

from sqlalchemy import Table, bindparam, delete, insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from crmtel.crm.search import PartyText, name_key, terms
from crmtel.store.models import (
    ClientContactRow,
    ClientRow,
    ContactRow,
    LeadRow,
    PartyTermRow,
    PhoneRow,
)

CLIENT = "c"
LEAD = "l"


class _Executor(Protocol):
    def execute(self, statement: Any, parameters: Any = None, /) -> Any: ...


def _client_texts(conn: _Executor, ids: Sequence[int]) -> dict[int, PartyText]:
    rows = conn.execute(
        select(ClientRow.id, ClientRow.name, ClientRow.email, ClientRow.inn).where(ClientRow.id.in_(ids))
    ).all()
    phones: dict[int, list[str]] = {}
    for cid, e164 in conn.execute(
        select(PhoneRow.client_id, PhoneRow.e164).where(PhoneRow.client_id.in_(ids))
    ).all():
        phones.setdefault(cid, []).append(e164)
    contacts: dict[int, list[tuple[str, str | None]]] = {}
    contact_ids: dict[int, set[int]] = {}
    for cid, contact_id, cname, cemail in conn.execute(
        select(ClientContactRow.client_id, ContactRow.id, ContactRow.name, ContactRow.email)
        .join(ContactRow, ContactRow.id == ClientContactRow.contact_id)
        .where(ClientContactRow.client_id.in_(ids))
    ).all():
        contacts.setdefault(cid, []).append((cname, cemail))
        contact_ids.setdefault(contact_id, set()).add(cid)
    if contact_ids:
        for contact_id, e164 in conn.execute(
            select(PhoneRow.contact_id, PhoneRow.e164).where(PhoneRow.contact_id.in_(list(contact_ids)))
        ).all():
            for cid in contact_ids[contact_id]:
                phones.setdefault(cid, []).append(e164)
    return {
        cid: PartyText(
            name=name,
            email=email,
            inn=inn,
            phones=tuple(phones.get(cid, ())),
            contact_names=tuple(n for n, _ in contacts.get(cid, ())),
            contact_emails=tuple(e for _, e in contacts.get(cid, ()) if e),
        )
        for cid, name, email, inn in rows
    }


def _lead_texts(conn: _Executor, ids: Sequence[int]) -> dict[int, PartyText]:
    rows = conn.execute(
        select(LeadRow.id, LeadRow.name, LeadRow.company, LeadRow.email).where(LeadRow.id.in_(ids))
    ).all()
    phones: dict[int, list[str]] = {}
    for lid, e164 in conn.execute(
        select(PhoneRow.lead_id, PhoneRow.e164).where(PhoneRow.lead_id.in_(ids))
    ).all():
        phones.setdefault(lid, []).append(e164)
    return {
        lid: PartyText(name=name, company=company, email=email, phones=tuple(phones.get(lid, ())))
        for lid, name, company, email in rows
    }


def reindex_sync(conn: _Executor, kind: str, ids: Iterable[int], *, created: bool = True) -> None:
    """Recompute the terms and sort keys of these clients (``kind`` c) or leads (l) from what is stored
    (``created``: also copy each party's ``created_at`` — false only for migrations older than 0021, whose
    ``party_terms`` has no such column yet)."""
    wanted = sorted(set(ids))
    for start in range(0, len(wanted), 500):
        chunk = wanted[start : start + 500]
        texts = _client_texts(conn, chunk) if kind == CLIENT else _lead_texts(conn, chunk)
        core: Table = ClientRow.__table__ if kind == CLIENT else LeadRow.__table__  # type: ignore[assignment]
        born: dict[int, Any] = {}
        if created:
            born = dict(conn.execute(select(core.c.id, core.c.created_at).where(core.c.id.in_(chunk))).all())
        conn.execute(delete(PartyTermRow).where(PartyTermRow.kind == kind, PartyTermRow.party_id.in_(chunk)))
        rows = [
            {"kind": kind, "party_id": pid, "term": term, "name_key": name_key(text.name)}
            | ({"created_at": born[pid]} if created else {})
            for pid, text in texts.items()
            for term in sorted(terms(text))
        ]
        if rows:
            conn.execute(insert(PartyTermRow), rows)
        keys = [{"pid": pid, "key": name_key(text.name)} for pid, text in texts.items()]
        if keys:
            conn.execute(
                update(core).where(core.c.id == bindparam("pid")).values(name_key=bindparam("key")),
                keys,
            )


async def reindex_in(session: AsyncSession | AsyncConnection, kind: str, ids: Iterable[int]) -> None:
    """``reindex_sync`` inside an async session's (or connection's) transaction."""
    wanted = sorted(set(ids))
    if not wanted:
        return
    if isinstance(session, AsyncSession):
        await session.flush()
        await session.run_sync(lambda sync: reindex_sync(sync, kind, wanted))
    else:
        await session.run_sync(lambda sync: reindex_sync(sync, kind, wanted))


async def clients_of_contacts_in(session: AsyncSession, contact_ids: Iterable[int]) -> list[int]:
    """The clients these contact persons act for (their index holds the contacts' names and numbers)."""
    wanted = sorted(set(contact_ids))
    if not wanted:
        return []
    rows = await session.execute(
        select(ClientContactRow.client_id).where(ClientContactRow.contact_id.in_(wanted)).distinct()
    )
    return [r[0] for r in rows.all()]
