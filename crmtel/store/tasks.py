"""Callback tasks for missed calls, and the lead an unknown caller becomes."""

from __future__ import annotations

import zlib
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncSession

from crmtel.domain import PartyKind
from crmtel.store.db import Database
from crmtel.store.models import LeadRow, ManagerRow, PhoneRow, TaskRow
from crmtel.store.parties import NewLead, add_lead_in

LEAD_SOURCE_PHONE = "phone call"


@dataclass(frozen=True, slots=True)
class MissedCall:
    """What a missed inbound call asks of the task list."""

    phone: str
    call_id: int | None
    manager_id: int | None
    client_id: int | None
    lead_id: int | None
    title: str
    due_at: datetime
    at: datetime


@dataclass(frozen=True, slots=True)
class TaskState:
    """An open callback task after a missed call was counted on it."""

    id: int
    manager_id: int | None
    missed_count: int
    created: bool


@dataclass(frozen=True, slots=True)
class LeadRef:
    """The lead a number belongs to, and whether it was just created."""

    id: int
    name: str
    manager_id: int | None
    created: bool


async def lock_in(session: AsyncSession, key: str) -> None:
    """Serialise writers on ``key`` until the transaction ends (PostgreSQL; SQLite writes are serial)."""
    if session.get_bind().dialect.name == "postgresql":
        await session.execute(
            text("SELECT pg_advisory_xact_lock(:k)"), {"k": zlib.crc32(key.encode()) - (1 << 31)}
        )


async def manager_id_by_login_in(session: AsyncSession, login: str) -> int | None:
    """The id of the active manager with ``login``."""
    return (
        await session.execute(
            select(ManagerRow.id).where(ManagerRow.login == login, ManagerRow.active.is_(True))
        )
    ).scalar_one_or_none()


async def record_missed_in(session: AsyncSession, missed: MissedCall) -> TaskState:
    """Count a missed call on the open callback task for its number, or open one."""
    await lock_in(session, "task:" + missed.phone)
    row = (
        await session.execute(
            select(TaskRow)
            .where(TaskRow.kind == "callback", TaskRow.phone == missed.phone, TaskRow.status == "open")
            .order_by(TaskRow.id)
            .limit(1)
        )
    ).scalar_one_or_none()
    if row is not None:
        row.missed_count += 1
        row.updated_at = missed.at
        row.call_id = missed.call_id or row.call_id
        row.manager_id = row.manager_id or missed.manager_id
        row.client_id = row.client_id or missed.client_id
        row.lead_id = row.lead_id or missed.lead_id
        await session.flush()
        return TaskState(row.id, row.manager_id, row.missed_count, created=False)
    row = TaskRow(
        kind="callback",
        phone=missed.phone,
        call_id=missed.call_id,
        manager_id=missed.manager_id,
        client_id=missed.client_id,
        lead_id=missed.lead_id,
        title=missed.title,
        missed_count=1,
        status="open",
        due_at=missed.due_at,
        created_at=missed.at,
        updated_at=missed.at,
    )
    session.add(row)
    await session.flush()
    return TaskState(row.id, row.manager_id, 1, created=True)


async def ensure_lead_in(
    session: AsyncSession, e164: str, name: str | None, manager_id: int | None
) -> LeadRef:
    """The lead owning ``e164``, created (source ``phone call``) if no client or lead has the number."""
    await lock_in(session, "lead:" + e164)
    existing = (
        await session.execute(
            select(LeadRow.id, LeadRow.name, LeadRow.manager_id)
            .join(PhoneRow, PhoneRow.lead_id == LeadRow.id)
            .where(PhoneRow.e164 == e164)
            .order_by(LeadRow.id)
            .limit(1)
        )
    ).first()
    if existing is not None:
        return LeadRef(existing[0], existing[1], existing[2], created=False)
    created = await add_lead_in(
        session,
        NewLead(name=name or e164, source=LEAD_SOURCE_PHONE, manager_id=manager_id),
        [(e164, e164)],
    )
    return LeadRef(created.id, name or e164, manager_id, created=True)


@dataclass(frozen=True, slots=True)
class OpenTask:
    """An open callback task as listed."""

    id: int
    phone: str | None
    manager_id: int | None
    party_kind: PartyKind | None
    party_id: int | None
    missed_count: int
    due_at: datetime
    title: str


class TaskRepository:
    """Callback tasks, over the record store."""

    def __init__(self, db: Database) -> None:
        self._db = db

    async def record_missed(self, missed: MissedCall) -> TaskState:
        """See ``record_missed_in``."""
        async with self._db.session() as session:
            return await record_missed_in(session, missed)

    async def open_tasks(self) -> list[OpenTask]:
        """Every open callback task, most urgent first."""
        async with self._db.session() as session:
            rows = (
                await session.execute(
                    select(TaskRow).where(TaskRow.status == "open").order_by(TaskRow.due_at, TaskRow.id)
                )
            ).scalars()
            return [
                OpenTask(
                    id=r.id,
                    phone=r.phone,
                    manager_id=r.manager_id,
                    party_kind=PartyKind.CLIENT if r.client_id else PartyKind.LEAD if r.lead_id else None,
                    party_id=r.client_id or r.lead_id,
                    missed_count=r.missed_count,
                    due_at=r.due_at,
                    title=r.title,
                )
                for r in rows
            ]
