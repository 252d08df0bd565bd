"""Import of managers, clients and leads from CSV/XLSX: checked first, then written in bulk, in one transaction.

Keys that make re-imports idempotent: managers by login; clients by ``external_id``, or — when a row has
none — by name (case- and spacing-insensitive) plus first phone; leads by phone; contact persons by name
plus any of their phones. Imports add numbers, contacts and links, they never remove them.
"""

from __future__ import annotations

import asyncio
import enum
from collections.abc import AsyncIterator, Iterable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import Table, bindparam, delete, false, func, insert, select, update
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncConnection

from crmtel.domain import LeadStatus
from crmtel.errors import StoreUnavailable
from crmtel.store.csvio import RawTable, read_table
from crmtel.store.db import Database
from crmtel.store.importrows import (
    ClientRecord,
    LeadRecord,
    ManagerRecord,
    Parsed,
    RowIssue,
    client_key,
    name_key,
    parse_clients,
    parse_leads,
    parse_managers,
)
from crmtel.store.managers import hash_password, verify_password
from crmtel.store.models import (
    ClientContactRow,
    ClientRow,
    ContactRow,
    ExtensionRow,
    LeadRow,
    ManagerRow,
    PhoneRow,
)

_CHUNK = 5000
_CLIENTS: Table = ClientRow.__table__  # type: ignore[assignment]
_LEADS: Table = LeadRow.__table__  # type: ignore[assignment]
_MANAGERS: Table = ManagerRow.__table__  # type: ignore[assignment]
_CONTACTS: Table = ContactRow.__table__  # type: ignore[assignment]


class ImportKind(enum.StrEnum):
    """What a file holds."""

    MANAGERS = "managers"
    CLIENTS = "clients"
    LEADS = "leads"


@dataclass(slots=True)
class ImportReport:
    """What an import did (or, with errors or a dry run, would have done)."""

    kind: ImportKind
    rows: int = 0
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    errors: list[RowIssue] = field(default_factory=list)
    warnings: list[RowIssue] = field(default_factory=list)
    applied: bool = False
    dry_run: bool = False

    @property
    def bad_rows(self) -> int:
        """How many lines had at least one error."""
        return len({e.line for e in self.errors})

    def summary(self) -> str:
        """One line for the operator."""
        verb = "would import" if self.dry_run else ("imported" if self.applied else "imported nothing from")
        return (
            f"{verb} {self.rows} {self.kind.value} rows: {self.created} created, {self.updated} updated, "
            f"{self.unchanged} unchanged, {self.bad_rows} bad rows, {len(self.warnings)} warnings"
        )


class _Rollback(Exception):
    """Raised inside the transaction to undo a dry run or a refused import."""


@asynccontextmanager
async def _transaction(db: Database) -> AsyncIterator[AsyncConnection]:
    try:
        async with db.engine.begin() as conn:
            yield conn
    except SQLAlchemyError as err:
        raise StoreUnavailable(f"database error during import: {err.__class__.__name__}: {err}") from err
    except OSError as err:
        raise StoreUnavailable(f"database unreachable: {err}") from err


def _chunks(items: Sequence[Any], size: int = _CHUNK) -> Iterable[Sequence[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _now() -> datetime:
    return datetime.now(UTC)


async def _logins(conn: AsyncConnection) -> dict[str, int]:
    rows = await conn.execute(select(ManagerRow.login, ManagerRow.id))
    return {login.casefold(): mid for login, mid in rows}


@dataclass(slots=True)
class _Owners:
    """Who already owns each number of the file."""

    clients: dict[str, set[int]] = field(default_factory=dict)
    contacts: dict[str, set[int]] = field(default_factory=dict)
    leads: dict[str, set[int]] = field(default_factory=dict)


async def _owners(conn: AsyncConnection, numbers: Iterable[str]) -> _Owners:
    found = _Owners()
    wanted = sorted(set(numbers))
    for chunk in _chunks(wanted):
        rows = await conn.execute(
            select(PhoneRow.e164, PhoneRow.client_id, PhoneRow.contact_id, PhoneRow.lead_id).where(
                PhoneRow.e164.in_(chunk)
            )
        )
        for e164, client_id, contact_id, lead_id in rows:
            if client_id is not None:
                found.clients.setdefault(e164, set()).add(client_id)
            if contact_id is not None:
                found.contacts.setdefault(e164, set()).add(contact_id)
            if lead_id is not None:
                found.leads.setdefault(e164, set()).add(lead_id)
    return found


async def _insert_returning_ids(conn: AsyncConnection, table: Table, rows: list[dict[str, Any]]) -> list[int]:
    if not rows:
        return []
    if conn.dialect.name == "sqlite":
        # SQLite cannot promise RETURNING order for a multi-row INSERT, so SQLAlchemy would insert row by
        # row. Instead: take the write lock (a no-op UPDATE), then hand out ids above the current maximum.
        await conn.execute(update(table).where(false()).values(id=table.c.id))
        top = (await conn.execute(select(func.coalesce(func.max(table.c.id), 0)))).scalar_one()
        ids = list(range(top + 1, top + 1 + len(rows)))
        await conn.execute(insert(table), [{**r, "id": i} for r, i in zip(rows, ids, strict=True)])
        return ids
    result = await conn.execute(insert(table).returning(table.c.id, sort_by_parameter_order=True), rows)
    return [r[0] for r in result]


async def _insert(conn: AsyncConnection, table: Any, rows: list[dict[str, Any]]) -> None:
    if rows:
        await conn.execute(insert(table), rows)


async def _update_by_id(conn: AsyncConnection, table: Table, rows: list[dict[str, Any]]) -> None:
    if not rows:
        return
    columns = [k for k in rows[0] if k != "id"]
    stmt = (
        update(table).where(table.c.id == bindparam("b_id")).values({c: bindparam(f"b_{c}") for c in columns})
    )
    await conn.execute(stmt, [{f"b_{k}": v for k, v in r.items()} for r in rows])


def _changed(values: dict[str, Any], current: Any) -> bool:
    return any(getattr(current, k) != v for k, v in values.items())


async def import_file(
    db: Database,
    kind: ImportKind,
    path: Path,
    *,
    region: str = "RU",
    skip_bad_rows: bool = False,
    dry_run: bool = False,
) -> ImportReport:
    """Import a CSV/XLSX file; with errors nothing is written unless ``skip_bad_rows``."""
    table = await asyncio.to_thread(read_table, path)
    return await import_table(db, kind, table, region=region, skip_bad_rows=skip_bad_rows, dry_run=dry_run)


async def import_table(
    db: Database,
    kind: ImportKind,
    table: RawTable,
    *,
    region: str = "RU",
    skip_bad_rows: bool = False,
    dry_run: bool = False,
) -> ImportReport:
    """Import rows already read from a file (see ``import_file``)."""
    report = ImportReport(kind=kind, dry_run=dry_run, rows=len(table.rows))
    try:
        async with _transaction(db) as conn:
            if kind is ImportKind.MANAGERS:
                await _import_managers(conn, table, report, skip_bad_rows)
            elif kind is ImportKind.CLIENTS:
                await _import_clients(conn, table, region, report, skip_bad_rows)
            else:
                await _import_leads(conn, table, region, report, skip_bad_rows)
            report.errors.sort(key=lambda i: i.line)
            report.warnings.sort(key=lambda i: i.line)
            report.applied = not dry_run and (skip_bad_rows or not report.errors)
            if not report.applied:
                raise _Rollback
    except _Rollback:
        pass
    return report


def _accept(parsed: Parsed[Any], report: ImportReport, skip_bad_rows: bool) -> bool:
    report.errors.extend(parsed.errors)
    report.warnings.extend(parsed.warnings)
    return skip_bad_rows or not report.errors


# --- managers ---------------------------------------------------------------------------------------


async def _import_managers(
    conn: AsyncConnection, table: RawTable, report: ImportReport, skip_bad_rows: bool
) -> None:
    parsed = parse_managers(table)
    existing = {
        r.login.casefold(): r
        for r in await conn.execute(
            select(
                ManagerRow.id,
                ManagerRow.login,
                ManagerRow.name,
                ManagerRow.role,
                ManagerRow.active,
                ManagerRow.speciality,
                ManagerRow.password_hash,
            )
        )
    }
    ext_owner: dict[str, int] = {}
    exts_of: dict[int, set[str]] = {}
    for mid, ext in await conn.execute(select(ExtensionRow.manager_id, ExtensionRow.extension)):
        ext_owner[ext] = mid
        exts_of.setdefault(mid, set()).add(ext)
    in_file = {existing[r.login.casefold()].id for r in parsed.records if r.login.casefold() in existing}
    login_of = {r.id: r.login for r in existing.values()}
    records: list[ManagerRecord] = []
    for rec in parsed.records:
        taken = next((e for e in rec.extensions if ext_owner.get(e) not in (None, *in_file)), None)
        if taken is not None:
            owner = login_of[ext_owner[taken]]
            parsed.errors.append(RowIssue(rec.line, f"extension {taken} belongs to manager {owner!r}"))
        else:
            records.append(rec)
    if not _accept(parsed, report, skip_bad_rows):
        return

    def new_hash(rec: ManagerRecord) -> str | None:
        # An unchanged password keeps its hash, so re-importing the same file changes nothing.
        current = existing.get(rec.login.casefold())
        if rec.password is None or (current and verify_password(current.password_hash, rec.password)):
            return None
        return hash_password(rec.password)

    hashes = await asyncio.to_thread(lambda: [new_hash(r) for r in records])
    new_rows: list[dict[str, Any]] = []
    new_records: list[ManagerRecord] = []
    updates: list[dict[str, Any]] = []
    ext_rows: list[tuple[ManagerRecord, int | None]] = []
    for rec, password_hash in zip(records, hashes, strict=True):
        values: dict[str, Any] = {
            "name": rec.name,
            "role": rec.role.value,
            "active": rec.active,
            "speciality": rec.speciality.value if rec.speciality else None,
        }
        current = existing.get(rec.login.casefold())
        if current is None:
            new_rows.append(
                {**values, "login": rec.login, "password_hash": password_hash, "created_at": _now()}
            )
            new_records.append(rec)
            report.created += 1
            continue
        ext_rows.append((rec, current.id))
        same_exts = exts_of.get(current.id, set()) == set(rec.extensions)
        if password_hash is None and same_exts and not _changed(values, current):
            report.unchanged += 1
            continue
        report.updated += 1
        if password_hash is not None:
            values["password_hash"] = password_hash
            await conn.execute(update(ManagerRow).where(ManagerRow.id == current.id).values(values))
        else:
            updates.append({"id": current.id, **values})
    await _update_by_id(conn, _MANAGERS, updates)
    ids = await _insert_returning_ids(conn, _MANAGERS, new_rows)
    ext_rows.extend(zip(new_records, ids, strict=True))
    # Extensions move freely between managers of the file: clear them all first, then write them back.
    touched = [mid for _, mid in ext_rows if mid is not None]
    for chunk in _chunks(touched):
        await conn.execute(delete(ExtensionRow).where(ExtensionRow.manager_id.in_(chunk)))
    await _insert(
        conn,
        ExtensionRow.__table__,
        [{"manager_id": mid, "extension": e} for rec, mid in ext_rows for e in rec.extensions],
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


async def _import_clients(
    conn: AsyncConnection, table: RawTable, region: str, report: ImportReport, skip_bad_rows: bool
) -> None:
    parsed = parse_clients(table, await _logins(conn), region)
    if not _accept(parsed, report, skip_bad_rows):
        return
    records = parsed.records
    columns = (
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
    stored = {r.id: r for r in await conn.execute(select(*columns))}
    first_ids = (
        select(func.min(PhoneRow.id)).where(PhoneRow.client_id.is_not(None)).group_by(PhoneRow.client_id)
    )
    first_phone: dict[int, str] = {}
    for cid, e164 in await conn.execute(
        select(PhoneRow.client_id, PhoneRow.e164).where(PhoneRow.id.in_(first_ids))
    ):
        if cid is not None:
            first_phone[cid] = e164
    by_key: dict[tuple[str, ...], int] = {}
    for r in stored.values():
        if r.external_id:
            by_key[("id", r.external_id)] = r.id
        fp = first_phone.get(r.id)
        by_key.setdefault(client_key(None, r.name, ((fp, fp),) if fp else ()), r.id)

    numbers = [e for rec in records for e, _ in rec.phones]
    numbers += [e for rec in records for c in rec.contacts for e, _ in c.phones]
    owners = await _owners(conn, numbers)
    contact_ids = sorted({cid for ids in owners.contacts.values() for cid in ids})
    contact_names: dict[int, str] = {}
    links: dict[int, set[int]] = {}
    for chunk in _chunks(contact_ids):
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
    now = _now()
    ids = await _insert_returning_ids(
        conn,
        _CLIENTS,
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
    await _insert(conn, PhoneRow.__table__, phone_rows)

    updates: list[dict[str, Any]] = []
    for i, maybe_id in enumerate(existing_ids):
        if maybe_id is None:
            continue
        current = stored[maybe_id]
        wanted = {**values[i], "external_id": records[i].external_id or current.external_id}
        if _changed(wanted, current):
            updates.append({"id": maybe_id, **wanted})
            report.updated += 1
        elif i in touched:
            report.updated += 1
        else:
            report.unchanged += 1
    await _update_by_id(conn, _CLIENTS, updates)


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
    owners: _Owners,
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
    records: Sequence[ClientRecord], owners: _Owners, contact_names: dict[int, str], report: ImportReport
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
    ids = await _insert_returning_ids(
        conn,
        _CONTACTS,
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
    await _insert(conn, ClientContactRow.__table__, link_rows)


# --- leads --------------------------------------------------------------------------------------------


async def _import_leads(
    conn: AsyncConnection, table: RawTable, region: str, report: ImportReport, skip_bad_rows: bool
) -> None:
    parsed = parse_leads(table, await _logins(conn), region)
    owners = await _owners(conn, [e for rec in parsed.records for e, _ in rec.phones])
    records: list[LeadRecord] = []
    existing_ids: list[int | None] = []
    claimed: dict[int, int] = {}
    for rec in parsed.records:
        lead_id = next((min(owners.leads[e]) for e, _ in rec.phones if e in owners.leads), None)
        if lead_id is not None and lead_id in claimed:
            parsed.errors.append(
                RowIssue(
                    rec.line, f"duplicate lead: the same stored lead #{lead_id} as line {claimed[lead_id]}"
                )
            )
            continue
        if lead_id is not None:
            claimed[lead_id] = rec.line
        records.append(rec)
        existing_ids.append(lead_id)
    if not _accept(parsed, report, skip_bad_rows):
        return
    for rec, own in zip(records, existing_ids, strict=True):
        for e164, _ in rec.phones:
            others = [f"client #{c}" for c in sorted(owners.clients.get(e164, ()))]
            others += [f"contact #{c}" for c in sorted(owners.contacts.get(e164, ()))]
            others += [f"lead #{c}" for c in sorted(owners.leads.get(e164, ())) if c != own]
            if others:
                report.warnings.append(
                    RowIssue(rec.line, f"duplicate number {e164}: also {', '.join(others[:3])}")
                )

    lead_columns = (
        LeadRow.id,
        LeadRow.name,
        LeadRow.company,
        LeadRow.email,
        LeadRow.source,
        LeadRow.status,
        LeadRow.refusal_reason,
        LeadRow.manager_id,
    )
    stored: dict[int, Any] = {}
    for chunk in _chunks(sorted({i for i in existing_ids if i is not None})):
        stored.update(
            (r.id, r) for r in await conn.execute(select(*lead_columns).where(LeadRow.id.in_(chunk)))
        )
    now = _now()
    values = [
        {
            "name": rec.name,
            "company": rec.company,
            "email": rec.email,
            "source": rec.source,
            "status": rec.status.value,
            "refusal_reason": rec.refusal_reason,
            "manager_id": rec.manager_id,
        }
        for rec in records
    ]
    new_idx = [i for i, lid in enumerate(existing_ids) if lid is None]
    ids = await _insert_returning_ids(
        conn,
        _LEADS,
        [
            {
                **values[i],
                "created_at": now,
                "converted_at": now if records[i].status is LeadStatus.CONVERTED else None,
            }
            for i in new_idx
        ],
    )
    lead_ids = [lid or 0 for lid in existing_ids]
    for i, lid in zip(new_idx, ids, strict=True):
        lead_ids[i] = lid
    report.created += len(new_idx)
    phone_rows: list[dict[str, Any]] = []
    touched: set[int] = set()
    for i, rec in enumerate(records):
        for e164, raw in rec.phones:
            if lead_ids[i] not in owners.leads.get(e164, ()):
                phone_rows.append(
                    {"e164": e164, "raw": raw, "client_id": None, "contact_id": None, "lead_id": lead_ids[i]}
                )
                touched.add(i)
    await _insert(conn, PhoneRow.__table__, phone_rows)
    updates: list[dict[str, Any]] = []
    for i, maybe_id in enumerate(existing_ids):
        if maybe_id is None:
            continue
        if _changed(values[i], stored[maybe_id]):
            updates.append({"id": maybe_id, **values[i]})
            report.updated += 1
        elif i in touched:
            report.updated += 1
        else:
            report.unchanged += 1
    await _update_by_id(conn, _LEADS, updates)
