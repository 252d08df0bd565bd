"""Export of managers, clients and leads to CSV/XLSX, in the very columns the importer reads back."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import date
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncConnection

from crmtel.errors import CrmtelError, StoreUnavailable
from crmtel.exchange.csvio import BadFile, Cell, write_table
from crmtel.exchange.importer import ImportKind
from crmtel.exchange.progress import NoProgress, Progress
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

MANAGER_HEADER: tuple[str, ...] = ("login", "name", "extensions", "role", "speciality", "active")
CLIENT_HEADER: tuple[str, ...] = (
    "external_id",
    "name",
    "kind",
    "category",
    "manager",
    "turnover",
    "turnover_month",
    "stop_list",
    "notes",
    "phones",
    "contact_name",
    "contact_phones",
)
LEAD_HEADER: tuple[str, ...] = (
    "name",
    "company",
    "phones",
    "email",
    "source",
    "status",
    "refusal_reason",
    "manager",
)


def _yes(flag: bool) -> str:
    return "yes" if flag else "no"


def _month(value: date | None) -> str | None:
    return value.strftime("%Y-%m") if value else None


def _joined(items: Sequence[str]) -> str | None:
    return ", ".join(items) if items else None


async def _grouped(conn: AsyncConnection, key: Any, value: Any) -> dict[int, list[Any]]:
    out: dict[int, list[Any]] = {}
    for k, v in await conn.execute(select(key, value).where(key.is_not(None)).order_by(key, PhoneRow.id)):
        out.setdefault(k, []).append(v)
    return out


async def _logins(conn: AsyncConnection) -> dict[int, str]:
    return dict((await conn.execute(select(ManagerRow.id, ManagerRow.login))).all())


async def _manager_rows(conn: AsyncConnection) -> list[list[Cell]]:
    exts: dict[int, list[str]] = {}
    for mid, ext in await conn.execute(
        select(ExtensionRow.manager_id, ExtensionRow.extension).order_by(ExtensionRow.id)
    ):
        exts.setdefault(mid, []).append(ext)
    rows = await conn.execute(
        select(
            ManagerRow.id,
            ManagerRow.login,
            ManagerRow.name,
            ManagerRow.role,
            ManagerRow.speciality,
            ManagerRow.active,
        ).order_by(ManagerRow.login)
    )
    return [
        [r.login, r.name, _joined(exts.get(r.id, [])), r.role, r.speciality, _yes(r.active)] for r in rows
    ]


async def _client_rows(conn: AsyncConnection) -> list[list[Cell]]:
    logins = await _logins(conn)
    phones = await _grouped(conn, PhoneRow.client_id, PhoneRow.e164)
    contact_phones = await _grouped(conn, PhoneRow.contact_id, PhoneRow.e164)
    contacts: dict[int, list[tuple[str | None, int | None]]] = {}
    for client_id, contact_id, name in await conn.execute(
        select(ClientContactRow.client_id, ContactRow.id, ContactRow.name)
        .join(ContactRow, ContactRow.id == ClientContactRow.contact_id)
        .order_by(ClientContactRow.client_id, ContactRow.id)
    ):
        contacts.setdefault(client_id, []).append((name, contact_id))
    out: list[list[Cell]] = []
    for r in await conn.execute(select(ClientRow).order_by(ClientRow.id)):
        c = r._mapping
        base: list[Cell] = [
            c["external_id"],
            c["name"],
            c["kind"],
            c["category"],
            logins.get(c["manager_id"]) if c["manager_id"] is not None else None,
            c["turnover"],
            _month(c["turnover_month"]),
            _yes(c["stop_list"]),
            c["notes"],
            _joined(phones.get(c["id"], [])),
        ]
        # A client with several contact persons takes one row per person, the client columns repeated.
        people = contacts.get(c["id"]) or [(None, None)]
        for person, person_id in people:
            numbers = contact_phones.get(person_id, []) if person_id is not None else []
            out.append([*base, person, _joined(numbers)])
    return out


async def _lead_rows(conn: AsyncConnection) -> list[list[Cell]]:
    logins = await _logins(conn)
    phones = await _grouped(conn, PhoneRow.lead_id, PhoneRow.e164)
    out: list[list[Cell]] = []
    for r in await conn.execute(select(LeadRow).order_by(LeadRow.id)):
        c = r._mapping
        out.append(
            [
                c["name"],
                c["company"],
                _joined(phones.get(c["id"], [])),
                c["email"],
                c["source"],
                c["status"],
                c["refusal_reason"],
                logins.get(c["manager_id"]) if c["manager_id"] is not None else None,
            ]
        )
    return out


async def export_file(db: Database, kind: ImportKind, path: Path, progress: Progress | None = None) -> int:
    """Write every record of ``kind`` to ``path`` (.csv or .xlsx); returns the number of data rows."""
    shown = progress or NoProgress()
    if path.suffix.lower() not in {".csv", ".txt", ".xlsx"}:
        raise BadFile(f"{path.name}: unsupported file type {path.suffix or '(none)'}; use .csv or .xlsx")
    shown.step(f"reading {kind.value}")
    try:
        async with db.engine.connect() as conn:
            if kind is ImportKind.MANAGERS:
                header, rows = MANAGER_HEADER, await _manager_rows(conn)
            elif kind is ImportKind.CLIENTS:
                header, rows = CLIENT_HEADER, await _client_rows(conn)
            else:
                header, rows = LEAD_HEADER, await _lead_rows(conn)
    except SQLAlchemyError as err:
        raise StoreUnavailable(f"database error during export: {err.__class__.__name__}: {err}") from err
    except OSError as err:
        raise StoreUnavailable(f"database unreachable: {err}") from err
    shown.step(f"writing {path.name}", rows=len(rows))
    try:
        return await asyncio.to_thread(write_table, path, header, rows)
    except OSError as err:
        raise CrmtelError(f"cannot write {path}: {err.strerror or err}") from err
