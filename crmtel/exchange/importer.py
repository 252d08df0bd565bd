"""Import of managers, clients and leads from CSV/XLSX: checked first, then written in bulk, in one transaction.

Keys that make re-imports idempotent: managers by login; clients by ``external_id``, or — when a row has
none — by name (case- and spacing-insensitive) plus first phone; leads by phone; contact persons by name
plus any of their phones. Imports add numbers, contacts and links, they never remove them.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import delete, select, update
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncConnection

from crmtel.domain import LeadStatus, Role
from crmtel.errors import StoreUnavailable
from crmtel.exchange.csvio import BadFile, RawTable
from crmtel.exchange.importbase import (
    LEADS,
    MANAGERS,
    ImportKind,
    ImportReport,
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
from crmtel.exchange.importclients import import_clients, write_clients
from crmtel.exchange.importrows import (
    LeadRecord,
    ManagerRecord,
    Parsed,
    RowIssue,
    parse_clients,
    parse_leads,
    parse_managers,
)
from crmtel.exchange.progress import NoProgress, Progress
from crmtel.exchange.seen import SeenClients, SeenLeads
from crmtel.exchange.streams import TableStream
from crmtel.managers.models import MobilePolicy
from crmtel.store.changes import StoreChange
from crmtel.store.crm_terms import LEAD, reindex_in
from crmtel.store.db import Database
from crmtel.store.managers import end_sessions, hash_password, verify_password
from crmtel.store.models import (
    ExtensionRow,
    LeadRow,
    ManagerRow,
    PhoneRow,
)

__all__ = ["ImportKind", "ImportReport", "import_file", "import_table"]


class _Rollback(Exception):
    """Raised inside the transaction to undo a dry run or a refused import."""


@asynccontextmanager
async def _transaction(db: Database) -> AsyncIterator[AsyncConnection]:
    try:
        async with db.engine.begin() as conn:
            yield conn
        # Written on a bare connection: the card caches hear of it here (any card may have changed).
        await db.told(StoreChange(everything=True))
    except SQLAlchemyError as err:
        raise StoreUnavailable(f"database error during import: {err.__class__.__name__}: {err}") from err
    except OSError as err:
        raise StoreUnavailable(f"database unreachable: {err}") from err


async def import_file(
    db: Database,
    kind: ImportKind,
    path: Path,
    *,
    region: str = "RU",
    skip_bad_rows: bool = False,
    dry_run: bool = False,
    progress: Progress | None = None,
    batch_rows: int = 5000,
    mobiles: MobilePolicy | None = None,
) -> ImportReport:
    """Import a CSV/XLSX file; with errors nothing is written unless ``skip_bad_rows``. Clients are streamed
    in batches of ``batch_rows``."""
    shown = progress or NoProgress()
    if kind is ImportKind.CLIENTS:
        shown.step("checking" if dry_run else "checking and writing")
        return await _stream_clients(db, path, region, skip_bad_rows, dry_run, shown, batch_rows)
    if kind is ImportKind.LEADS:
        shown.step("checking" if dry_run else "checking and writing")
        return await _stream_leads(db, path, region, skip_bad_rows, dry_run, shown, batch_rows)
    shown.step(f"reading {path.name}")
    policy = mobiles or MobilePolicy(region)
    return await _stream_managers(db, path, policy, skip_bad_rows, dry_run, shown, batch_rows)


async def import_table(
    db: Database,
    kind: ImportKind,
    table: RawTable,
    *,
    region: str = "RU",
    skip_bad_rows: bool = False,
    dry_run: bool = False,
    mobiles: MobilePolicy | None = None,
) -> ImportReport:
    """Import rows already read from a file (see ``import_file``)."""
    report = ImportReport(kind=kind, dry_run=dry_run, rows=len(table.rows))
    try:
        async with _transaction(db) as conn:
            if kind is ImportKind.MANAGERS:
                await _write_managers(
                    conn, parse_managers(table, region, mobiles=mobiles), report, skip_bad_rows
                )
            elif kind is ImportKind.CLIENTS:
                await import_clients(conn, table, region, report, skip_bad_rows)
            else:
                await _import_leads(conn, table, region, report, skip_bad_rows)
            _settle(report, dry_run, skip_bad_rows)
    except _Rollback:
        pass
    return report


# --- clients, streamed ---------------------------------------------------------------------------------

# Issues kept for the report (the rest are counted): a file of millions of bad rows must not fill memory.
MAX_ISSUES = 10_000


def _keep(issues: list[RowIssue], more: list[RowIssue], report: ImportReport, errors: bool) -> None:
    room = max(0, MAX_ISSUES - len(issues))
    issues.extend(more[:room])
    if len(more) > room:
        if errors:
            report.errors_omitted += len(more) - room
        else:
            report.warnings_omitted += len(more) - room


async def _stream_clients(
    db: Database,
    path: Path,
    region: str,
    skip_bad_rows: bool,
    dry_run: bool,
    progress: Progress,
    batch_rows: int,
) -> ImportReport:
    """Clients from a file of any size: read, checked and written in batches of ``batch_rows`` rows (memory
    follows the batch, not the file), all in one transaction (rolled back on errors unless
    ``skip_bad_rows``, and for a dry run)."""
    report = ImportReport(kind=ImportKind.CLIENTS, dry_run=dry_run)
    stream = await asyncio.to_thread(TableStream, path)
    seen = SeenClients()
    try:
        async with _transaction(db) as conn:
            logins = await manager_logins(conn)
            batches = stream.batches(max(1, batch_rows))
            while (batch := await asyncio.to_thread(next, batches, None)) is not None:
                first = report.rows == 0
                report.rows += len(batch)
                parsed = parse_clients(RawTable(stream.header, batch), logins, region)
                records, clashes = seen.check(parsed.records)
                # Header warnings (unknown columns) are the same for every batch: kept once.
                warnings = [w for w in parsed.warnings if first or w.line != 1]
                _keep(report.errors, [*parsed.errors, *clashes], report, errors=True)
                _keep(report.warnings, warnings, report, errors=False)
                if skip_bad_rows or not report.errors:
                    before = len(report.warnings)
                    await write_clients(conn, records, report)
                    if len(report.warnings) > MAX_ISSUES:
                        report.warnings_omitted += len(report.warnings) - max(before, MAX_ISSUES)
                        del report.warnings[max(before, MAX_ISSUES) :]
                progress.rows(report.rows)
            _settle(report, dry_run, skip_bad_rows)
    except _Rollback:
        pass
    finally:
        seen.close()
        stream.close()
    return report


def _settle(report: ImportReport, dry_run: bool, skip_bad_rows: bool) -> None:
    """Order the issues by line and decide whether the import's transaction commits (else ``_Rollback``)."""
    report.errors.sort(key=lambda i: i.line)
    report.warnings.sort(key=lambda i: i.line)
    report.applied = not dry_run and (skip_bad_rows or not report.errors)
    if not report.applied:
        raise _Rollback


async def _stream_leads(
    db: Database,
    path: Path,
    region: str,
    skip_bad_rows: bool,
    dry_run: bool,
    progress: Progress,
    batch_rows: int,
) -> ImportReport:
    """Leads from a file of any size, in batches in one transaction (as ``_stream_clients``)."""
    report = ImportReport(kind=ImportKind.LEADS, dry_run=dry_run)
    stream = await asyncio.to_thread(TableStream, path)
    earlier = SeenLeads()
    try:
        async with _transaction(db) as conn:
            batches = stream.batches(max(1, batch_rows))
            while (batch := await asyncio.to_thread(next, batches, None)) is not None:
                first = report.rows == 0
                report.rows += len(batch)
                part = ImportReport(kind=ImportKind.LEADS)
                await _import_leads(
                    conn,
                    RawTable(stream.header, batch),
                    region,
                    part,
                    skip_bad_rows,
                    earlier,
                    first_batch=first,
                    # Once an error is known nothing more is written (unless skipping): the rest is checked.
                    check_only=bool(report.errors) and not skip_bad_rows,
                )
                report.created += part.created
                report.updated += part.updated
                report.unchanged += part.unchanged
                _keep(report.errors, part.errors, report, errors=True)
                _keep(report.warnings, part.warnings, report, errors=False)
                progress.rows(report.rows)
            _settle(report, dry_run, skip_bad_rows)
    except _Rollback:
        pass
    finally:
        earlier.close()
        stream.close()
    return report


# --- managers ---------------------------------------------------------------------------------------

# A managers file is checked as a whole (logins and extensions move between its rows), so its good rows are
# kept until it is written: past this many rows it is not a team's managers file. Each kept row is small (login
# 100, name 300, password 1,000 characters at most), so the file's memory stays bounded whatever its size.
MAX_MANAGER_ROWS = 20_000


async def _stream_managers(
    db: Database,
    path: Path,
    mobiles: MobilePolicy,
    skip_bad_rows: bool,
    dry_run: bool,
    progress: Progress,
    batch_rows: int,
) -> ImportReport:
    """Managers read row by row within the stream's bounds (line, cell, XLSX text), checked in batches, then
    written in one transaction (as ``import_table``): the file is never held whole."""
    report = ImportReport(kind=ImportKind.MANAGERS, dry_run=dry_run)
    stream = await asyncio.to_thread(TableStream, path)
    kept: Parsed[ManagerRecord] = Parsed()
    logins: dict[str, int] = {}
    extensions: dict[str, int] = {}
    try:
        batches = stream.batches(max(1, batch_rows))
        while (batch := await asyncio.to_thread(next, batches, None)) is not None:
            first = report.rows == 0
            report.rows += len(batch)
            if report.rows > MAX_MANAGER_ROWS:
                raise BadFile(
                    f"{path.name}: more than {MAX_MANAGER_ROWS} manager rows: not a team's managers file"
                )
            parsed = parse_managers(
                RawTable(stream.header, batch),
                mobiles.region,
                logins=logins,
                extensions=extensions,
                mobiles=mobiles,
            )
            kept.records.extend(parsed.records)
            # Header warnings (unknown columns) are the same for every batch: kept once.
            _keep(kept.errors, parsed.errors, report, errors=True)
            _keep(kept.warnings, [w for w in parsed.warnings if first or w.line != 1], report, errors=False)
            progress.rows(report.rows)
    finally:
        stream.close()
    progress.step("checking" if dry_run else "checking and writing", rows=report.rows)
    try:
        async with _transaction(db) as conn:
            await _write_managers(conn, kept, report, skip_bad_rows)
            _settle(report, dry_run, skip_bad_rows)
    except _Rollback:
        pass
    return report


async def _write_managers(
    conn: AsyncConnection, parsed: Parsed[ManagerRecord], report: ImportReport, skip_bad_rows: bool
) -> None:
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
                ManagerRow.mobile,
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
    if not accept(parsed, report, skip_bad_rows):
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
    ending: list[int] = []
    for rec, password_hash in zip(records, hashes, strict=True):
        values: dict[str, Any] = {
            "name": rec.name,
            "role": rec.role.value,
            "active": rec.active,
            "speciality": rec.speciality.value if rec.speciality else None,
        }
        if rec.has_mobile:
            values["mobile"] = rec.mobile
        current = existing.get(rec.login.casefold())
        if current is None:
            new_rows.append(
                {**values, "login": rec.login, "password_hash": password_hash, "created_at": utcnow()}
            )
            new_records.append(rec)
            report.created += 1
            continue
        ext_rows.append((rec, current.id))
        had = exts_of.get(current.id, set())
        same_exts = had == set(rec.extensions)
        if password_hash is None and same_exts and not changed(values, current):
            report.unchanged += 1
            continue
        # The same rules as ``crmtel manager``: a new password, deactivation, an extension taken away or a
        # head made a manager ends that manager's sessions, in this transaction.
        if (
            password_hash is not None
            or not rec.active
            or not had <= set(rec.extensions)
            or (current.role == Role.HEAD.value and rec.role is not Role.HEAD)
        ):
            ending.append(current.id)
        report.updated += 1
        if password_hash is not None:
            values["password_hash"] = password_hash
            await conn.execute(update(ManagerRow).where(ManagerRow.id == current.id).values(values))
        else:
            updates.append({"id": current.id, **values})
    await update_by_id(conn, MANAGERS, updates)
    for chunk in chunks(ending):
        await end_sessions(conn, chunk)
    ids = await insert_returning_ids(conn, MANAGERS, new_rows)
    ext_rows.extend(zip(new_records, ids, strict=True))
    # Extensions move freely between managers of the file: clear them all first, then write them back.
    touched = [mid for _, mid in ext_rows if mid is not None]
    for chunk in chunks(touched):
        await conn.execute(delete(ExtensionRow).where(ExtensionRow.manager_id.in_(chunk)))
    await insert_rows(
        conn,
        ExtensionRow.__table__,
        [{"manager_id": mid, "extension": e} for rec, mid in ext_rows for e in rec.extensions],
    )


# --- leads --------------------------------------------------------------------------------------------


async def _import_leads(
    conn: AsyncConnection,
    table: RawTable,
    region: str,
    report: ImportReport,
    skip_bad_rows: bool,
    earlier: SeenLeads | None = None,
    *,
    first_batch: bool = True,
    check_only: bool = False,
) -> None:
    parsed = parse_leads(table, await manager_logins(conn), region)
    if not first_batch:
        # Header warnings (unknown columns) are the same for every batch of a streamed file: kept once.
        parsed.warnings = [w for w in parsed.warnings if w.line != 1]
    owners = await find_owners(conn, [e for rec in parsed.records for e, _ in rec.phones])
    records: list[LeadRecord] = []
    existing_ids: list[int | None] = []
    # Stored leads matched by rows of earlier batches of a streamed file count as claimed by those rows.
    stored_leads = sorted({lead for ids in owners.leads.values() for lead in ids})
    claimed: dict[int, int] = earlier.get_many(stored_leads) if earlier is not None else {}
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
    if earlier is not None:
        earlier.put_many(claimed)
    if not accept(parsed, report, skip_bad_rows) or check_only:
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
    for chunk in chunks(sorted({i for i in existing_ids if i is not None})):
        stored.update(
            (r.id, r) for r in await conn.execute(select(*lead_columns).where(LeadRow.id.in_(chunk)))
        )
    now = utcnow()
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
    ids = await insert_returning_ids(
        conn,
        LEADS,
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
    await insert_rows(conn, PhoneRow.__table__, phone_rows)
    updates: list[dict[str, Any]] = []
    for i, maybe_id in enumerate(existing_ids):
        if maybe_id is None:
            continue
        if changed(values[i], stored[maybe_id]):
            updates.append({"id": maybe_id, **values[i]})
            report.updated += 1
        elif i in touched:
            report.updated += 1
        else:
            report.unchanged += 1
    await update_by_id(conn, LEADS, updates)
    changed_ids = {lead_ids[i] for i in (*new_idx, *touched)} | {u["id"] for u in updates}
    await reindex_in(conn, LEAD, changed_ids)
