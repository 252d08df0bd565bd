"""Clients and their contact persons, imported in bulk (see ``crmtel.exchange.importer`` for the keys)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncConnection

from crmtel.exchange.csvio import RawTable
from crmtel.exchange.importbase import (
    CLIENTS,
    CONTACTS,
    ImportReport,
    Owners,
    accept,
    changed,
    chunks,
    find_owners,
    insert_returning_ids,
    insert_rows,
    manager_logins,
    update_by_id,
    utcnow,
)
from crmtel.exchange.importrows import (
    ClientRecord,
    RowIssue,
    client_key,
    name_key,
    parse_clients,
)
from crmtel.store.crm_terms import CLIENT, reindex_in
from crmtel.store.models import (
    ClientContactRow,
    ClientRow,
    ContactRow,
    PhoneRow,
)

# --- clients and their contact persons ----------------------------------------------------------------


@dataclass(slots=True)
class _Contact:
    """One contact person of the file, merged across rows, possibly already stored."""

    name: str
    id: int | None = None
    phones: dict[str, str] = field(default_factory=dict)
    stored_phones: set[str] = field(default_factory=set)
    clients: list[int] = field(default_factory=list)  # indexes into the resolved client list
    lines: list[int] = field(default_factory=list)


async def import_clients(
    conn: AsyncConnection, table: RawTable, region: str, report: ImportReport, skip_bad_rows: bool
) -> None:
    """Check the client rows against the store and write them in bulk (into ``report``)."""
    parsed = parse_clients(table, await manager_logins(conn), region)
    if not accept(parsed, report, skip_bad_rows):
        return
    await write_clients(conn, parsed.records, report)


_COLUMNS = (
    ClientRow.id,
    ClientRow.external_id,
    ClientRow.name,
    ClientRow.kind,
    ClientRow.category,
    ClientRow.manager_id,
    ClientRow.turnover,
    ClientRow.turnover_month,
    ClientRow.stop_list,
    ClientRow.notes,
)


async def _stored_clients(conn: AsyncConnection, ids: set[int]) -> dict[int, Any]:
    stored: dict[int, Any] = {}
    for chunk in chunks(sorted(ids)):
        stored.update({r.id: r for r in await conn.execute(select(*_COLUMNS).where(ClientRow.id.in_(chunk)))})
    return stored


async def _first_phones(conn: AsyncConnection, ids: set[int]) -> dict[int, str]:
    first_phone: dict[int, str] = {}
    for chunk in chunks(sorted(ids)):
        first_ids = (
            select(func.min(PhoneRow.id)).where(PhoneRow.client_id.in_(chunk)).group_by(PhoneRow.client_id)
        )
        for cid, e164 in await conn.execute(
            select(PhoneRow.client_id, PhoneRow.e164).where(PhoneRow.id.in_(first_ids))
        ):
            if cid is not None:
                first_phone[cid] = e164
    return first_phone


async def _candidates(conn: AsyncConnection, records: Sequence[ClientRecord]) -> set[int]:
    """The stored clients these records may be (by external id, first number or name): only those are read,
    so a batch costs the same whatever the size of the store or of the file."""
    ids: set[int] = set()
    external = sorted({r.external_id for r in records if r.external_id})
    for chunk in chunks(external):
        ids.update(
            (await conn.execute(select(ClientRow.id).where(ClientRow.external_id.in_(chunk)))).scalars()
        )
    firsts = sorted({r.phones[0][0] for r in records if r.phones})
    for chunk in chunks(firsts):
        ids.update(
            cid
            for cid in (
                await conn.execute(select(PhoneRow.client_id).where(PhoneRow.e164.in_(chunk)))
            ).scalars()
            if cid is not None
        )
    # Clients without a number are recognised by name (as written, or with its spaces tidied).
    names = sorted({v for r in records if not r.phones for v in (r.name, " ".join(r.name.split()))})
    for chunk in chunks(names):
        ids.update((await conn.execute(select(ClientRow.id).where(ClientRow.name.in_(chunk)))).scalars())
    return ids


async def write_clients(conn: AsyncConnection, records: Sequence[ClientRecord], report: ImportReport) -> None:
    """Write checked client records (one file, or one batch of a file streamed in batches)."""
    candidates = await _candidates(conn, records)
    stored = await _stored_clients(conn, candidates)
    first_phone = await _first_phones(conn, candidates)
    by_key: dict[tuple[str, ...], int] = {}
    for r in sorted(stored.values(), key=lambda row: row.id):
        if r.external_id:
            by_key[("id", r.external_id)] = r.id
        fp = first_phone.get(r.id)
        by_key.setdefault(client_key(None, r.name, ((fp, fp),) if fp else ()), r.id)

    numbers = [e for rec in records for e, _ in rec.phones]
    numbers += [e for rec in records for c in rec.contacts for e, _ in c.phones]
    owners = await find_owners(conn, numbers)
    others = {c for ids in owners.clients.values() for c in ids} - set(stored)
    stored.update(await _stored_clients(conn, others))
    contact_ids = sorted({cid for ids in owners.contacts.values() for cid in ids})
    contact_names: dict[int, str] = {}
    links: dict[int, set[int]] = {}
    for chunk in chunks(contact_ids):
        contact_names.update(
            (await conn.execute(select(ContactRow.id, ContactRow.name).where(ContactRow.id.in_(chunk)))).all()
        )
        for client_id, contact_id in await conn.execute(
            select(ClientContactRow.client_id, ClientContactRow.contact_id).where(
                ClientContactRow.contact_id.in_(chunk)
            )
        ):
            links.setdefault(contact_id, set()).add(client_id)

    existing_ids: list[int | None] = []
    for rec in records:
        found = by_key.get(rec.key)
        if found is None and rec.external_id:
            # A client imported before without an external id is adopted by name and first phone.
            candidate = by_key.get(client_key(None, rec.name, rec.phones))
            if candidate is not None and stored[candidate].external_id is None:
                found = candidate
        existing_ids.append(found)
    _client_phone_warnings(records, existing_ids, owners, stored, links, report)

    values = [_client_values(rec) for rec in records]
    new_idx = [i for i, cid in enumerate(existing_ids) if cid is None]
    now = utcnow()
    ids = await insert_returning_ids(
        conn,
        CLIENTS,
        [{**values[i], "external_id": records[i].external_id, "created_at": now} for i in new_idx],
    )
    client_ids: list[int] = [cid or 0 for cid in existing_ids]
    for i, cid in zip(new_idx, ids, strict=True):
        client_ids[i] = cid
    report.created += len(new_idx)

    touched: set[int] = set()
    phone_rows: list[dict[str, Any]] = []
    for i, rec in enumerate(records):
        own = client_ids[i]
        for e164, raw in rec.phones:
            if own not in owners.clients.get(e164, ()):
                phone_rows.append(
                    {"e164": e164, "raw": raw, "client_id": own, "contact_id": None, "lead_id": None}
                )
                touched.add(i)
    contacts = _merge_contacts(records, owners, contact_names, report)
    await _write_contacts(conn, contacts, client_ids, links, phone_rows, touched)
    await insert_rows(conn, PhoneRow.__table__, phone_rows)

    updates: list[dict[str, Any]] = []
    for i, maybe_id in enumerate(existing_ids):
        if maybe_id is None:
            continue
        current = stored[maybe_id]
        wanted = {**values[i], "external_id": records[i].external_id or current.external_id}
        if changed(wanted, current):
            updates.append({"id": maybe_id, **wanted})
            report.updated += 1
        elif i in touched:
            report.updated += 1
        else:
            report.unchanged += 1
    await update_by_id(conn, CLIENTS, updates)
    changed_ids = {client_ids[i] for i in (*new_idx, *touched)} | {u["id"] for u in updates}
    await reindex_in(conn, CLIENT, changed_ids)


def _client_values(rec: ClientRecord) -> dict[str, Any]:
    return {
        "name": rec.name,
        "kind": rec.kind,
        "category": rec.category.value if rec.category else None,
        "manager_id": rec.manager_id,
        "turnover": rec.turnover,
        "turnover_month": rec.turnover_month,
        "stop_list": rec.stop_list,
        "notes": rec.notes,
    }


def _client_phone_warnings(
    records: Sequence[ClientRecord],
    existing_ids: Sequence[int | None],
    owners: Owners,
    stored: dict[int, Any],
    links: dict[int, set[int]],
    report: ImportReport,
) -> None:
    in_file: dict[str, int] = {}
    for rec, own in zip(records, existing_ids, strict=True):
        for e164, _ in rec.phones:
            others = [
                f"client {stored[c].name!r} (#{c})" for c in sorted(owners.clients.get(e164, ())) if c != own
            ]
            others += [
                f"contact #{c}" for c in sorted(owners.contacts.get(e164, ())) if own not in links.get(c, ())
            ]
            others += [f"lead #{lead}" for lead in sorted(owners.leads.get(e164, ()))]
            first = in_file.setdefault(e164, rec.line)
            if first != rec.line:
                others.append(f"the client on line {first}")
            if others:
                report.warnings.append(
                    RowIssue(rec.line, f"duplicate number {e164}: also {', '.join(others[:3])}")
                )


def _merge_contacts(
    records: Sequence[ClientRecord], owners: Owners, contact_names: dict[int, str], report: ImportReport
) -> list[_Contact]:
    """One _Contact per person: same name and a shared number, within the file or with a stored contact."""
    by_name_phone: dict[tuple[str, str], _Contact] = {}
    stored: dict[int, _Contact] = {}
    merged: list[_Contact] = []
    for i, rec in enumerate(records):
        for person in rec.contacts:
            key = name_key(person.name)
            contact = next(
                (by_name_phone[(key, e)] for e, _ in person.phones if (key, e) in by_name_phone), None
            )
            if contact is None:
                stored_id = next(
                    (
                        cid
                        for e, _ in person.phones
                        for cid in sorted(owners.contacts.get(e, ()))
                        if name_key(contact_names.get(cid, "")) == key
                    ),
                    None,
                )
                contact = stored.get(stored_id) if stored_id is not None else None
                if contact is None:
                    contact = _Contact(name=person.name, id=stored_id)
                    merged.append(contact)
                    if stored_id is not None:
                        stored[stored_id] = contact
            for e164, raw in person.phones:
                by_name_phone[(key, e164)] = contact
                contact.phones.setdefault(e164, raw)
                if contact.id is not None and contact.id in owners.contacts.get(e164, ()):
                    contact.stored_phones.add(e164)
                else:
                    others = [f"client #{c}" for c in sorted(owners.clients.get(e164, ()))]
                    others += [
                        f"contact #{c}" for c in sorted(owners.contacts.get(e164, ())) if c != contact.id
                    ]
                    others += [f"lead #{c}" for c in sorted(owners.leads.get(e164, ()))]
                    if others:
                        report.warnings.append(
                            RowIssue(
                                person.line, f"duplicate contact number {e164}: also {', '.join(others[:3])}"
                            )
                        )
            if i not in contact.clients:
                contact.clients.append(i)
            contact.lines.append(person.line)
    return merged


async def _write_contacts(
    conn: AsyncConnection,
    contacts: Sequence[_Contact],
    client_ids: Sequence[int],
    links: dict[int, set[int]],
    phone_rows: list[dict[str, Any]],
    touched: set[int],
) -> None:
    new = [c for c in contacts if c.id is None]
    ids = await insert_returning_ids(
        conn,
        CONTACTS,
        [{"name": c.name, "email": None, "position": None} for c in new],
    )
    for contact, cid in zip(new, ids, strict=True):
        contact.id = cid
    link_rows: list[dict[str, Any]] = []
    for contact in contacts:
        assert contact.id is not None
        for e164, raw in contact.phones.items():
            if e164 not in contact.stored_phones:
                phone_rows.append(
                    {"e164": e164, "raw": raw, "client_id": None, "contact_id": contact.id, "lead_id": None}
                )
                touched.update(contact.clients)
        have = links.get(contact.id, set())
        for i in contact.clients:
            if client_ids[i] not in have:
                link_rows.append({"client_id": client_ids[i], "contact_id": contact.id})
                touched.add(i)
    await insert_rows(conn, ClientContactRow.__table__, link_rows)
