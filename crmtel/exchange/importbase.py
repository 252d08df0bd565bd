"""What every import shares: the report, bulk writes in executemany batches, and who owns a number."""

from __future__ import annotations

import enum
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Table, bindparam, false, func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from crmtel.exchange.importrows import (
    Parsed,
    RowIssue,
)
from crmtel.store.models import (
    ClientRow,
    ContactRow,
    LeadRow,
    ManagerRow,
    PhoneRow,
)

CHUNK = 5000
CLIENTS: Table = ClientRow.__table__  # type: ignore[assignment]
LEADS: Table = LeadRow.__table__  # type: ignore[assignment]
MANAGERS: Table = ManagerRow.__table__  # type: ignore[assignment]
CONTACTS: Table = ContactRow.__table__  # type: ignore[assignment]


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
    # Issues past the report's bound (crmtel.exchange.importer.MAX_ISSUES), counted but not kept.
    errors_omitted: int = 0
    warnings_omitted: int = 0

    @property
    def bad_rows(self) -> int:
        """How many lines had at least one error (those past the bound counted as one line each)."""
        return len({e.line for e in self.errors}) + self.errors_omitted

    def summary(self) -> str:
        """One line for the operator."""
        verb = "would import" if self.dry_run else ("imported" if self.applied else "imported nothing from")
        return (
            f"{verb} {self.rows} {self.kind.value} rows: {self.created} created, {self.updated} updated, "
            f"{self.unchanged} unchanged, {self.bad_rows} bad rows, "
            f"{len(self.warnings) + self.warnings_omitted} warnings"
        )


def chunks(items: Sequence[Any], size: int = CHUNK) -> Iterable[Sequence[Any]]:
    """Slices of ``items`` small enough for one IN list or one batch."""
    for start in range(0, len(items), size):
        yield items[start : start + size]


def utcnow() -> datetime:
    """The current time, timezone-aware (UTC)."""
    return datetime.now(UTC)


async def manager_logins(conn: AsyncConnection) -> dict[str, int]:
    """Every manager login (case-folded) to its id."""
    rows = await conn.execute(select(ManagerRow.login, ManagerRow.id))
    return {login.casefold(): mid for login, mid in rows}


@dataclass(slots=True)
class Owners:
    """Who already owns each number of the file."""

    clients: dict[str, set[int]] = field(default_factory=dict)
    contacts: dict[str, set[int]] = field(default_factory=dict)
    leads: dict[str, set[int]] = field(default_factory=dict)


async def find_owners(conn: AsyncConnection, numbers: Iterable[str]) -> Owners:
    """The stored clients, contact persons and leads owning each of ``numbers``."""
    found = Owners()
    wanted = sorted(set(numbers))
    for chunk in chunks(wanted):
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


async def insert_returning_ids(conn: AsyncConnection, table: Table, rows: list[dict[str, Any]]) -> list[int]:
    """Insert ``rows`` in batches and return their new ids, in order."""
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


async def insert_rows(conn: AsyncConnection, table: Any, rows: list[dict[str, Any]]) -> None:
    """Insert ``rows`` in executemany batches."""
    if rows:
        await conn.execute(insert(table), rows)


async def update_by_id(conn: AsyncConnection, table: Table, rows: list[dict[str, Any]]) -> None:
    """Update each row (a dict with ``id`` and the same other keys) in one executemany."""
    if not rows:
        return
    columns = [k for k in rows[0] if k != "id"]
    stmt = (
        update(table).where(table.c.id == bindparam("b_id")).values({c: bindparam(f"b_{c}") for c in columns})
    )
    await conn.execute(stmt, [{f"b_{k}": v for k, v in r.items()} for r in rows])


def changed(values: dict[str, Any], current: Any) -> bool:
    """Whether any of ``values`` differs from the stored row."""
    return any(getattr(current, k) != v for k, v in values.items())


def accept(parsed: Parsed[Any], report: ImportReport, skip_bad_rows: bool) -> bool:
    """Copy the parse issues into the report; whether writing may go ahead."""
    report.errors.extend(parsed.errors)
    report.warnings.extend(parsed.warnings)
    return skip_bad_rows or not report.errors
