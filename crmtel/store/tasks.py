"""Callback tasks for missed calls, and the lead an unknown caller becomes."""

from __future__ import annotations

import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import ColumnElement, func, or_, select, text
from sqlalchemy.ext.asyncio import AsyncSession

from crmtel.domain import LeadStatus, PartyKind
from crmtel.store.crm_terms import LEAD, reindex_in
from crmtel.store.db import Database
from crmtel.store.models import LeadRow, ManagerRow, PhoneRow, TaskRow
from crmtel.tasks.rules import MISSED, PLANNED, CallFacts, TaskFacts, closes

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


async def record_missed_in(session: AsyncSession, missed: MissedCall) -> TaskState:
    """Count a missed call on the open callback task for its number, or open one."""
    return (await record_missed_many_in(session, [missed]))[0]


async def record_missed_many_in(session: AsyncSession, calls: Sequence[MissedCall]) -> list[TaskState]:
    """``record_missed_in`` for several missed calls at once (one query for the open tasks)."""
    if not calls:
        return []
    phones = sorted({m.phone for m in calls})
    for phone in phones:
        await lock_in(session, "task:" + phone)
    # A missed call counts on the number's open callback for missed calls only: folded into a callback a
    # person planned for later (tomorrow, in three days), it would be due then, not within callback_due_minutes.
    rows = (
        await session.execute(
            select(TaskRow)
            .where(
                TaskRow.kind == "callback",
                TaskRow.phone.in_(phones),
                TaskRow.status == "open",
                or_(TaskRow.source.is_(None), TaskRow.source != PLANNED),
            )
            .order_by(TaskRow.id.desc())
        )
    ).scalars()
    open_by_phone: dict[str, TaskRow] = {row.phone or "": row for row in rows}
    created: set[int] = set()
    touched: list[TaskRow] = []
    for missed in calls:
        row = open_by_phone.get(missed.phone)
        if row is not None:
            row.missed_count += 1
            row.updated_at = missed.at
            row.call_id = missed.call_id or row.call_id
            row.manager_id = row.manager_id or missed.manager_id
            row.client_id = row.client_id or missed.client_id
            row.lead_id = row.lead_id or missed.lead_id
        else:
            row = open_by_phone[missed.phone] = TaskRow(
                kind="callback",
                phone=missed.phone,
                call_id=missed.call_id,
                manager_id=missed.manager_id,
                client_id=missed.client_id,
                lead_id=missed.lead_id,
                title=missed.title,
                missed_count=1,
                source=MISSED,
                status="open",
                due_at=missed.due_at,
                created_at=missed.at,
                updated_at=missed.at,
            )
            session.add(row)
            created.add(id(row))
        touched.append(row)
    await session.flush()
    return [TaskState(row.id, row.manager_id, row.missed_count, id(row) in created) for row in touched]


@dataclass(frozen=True, slots=True)
class AnsweredCall:
    """An answered call to or from ``phone`` (E.164): it closes the open callback tasks of that number."""

    phone: str
    call_id: int
    ended_at: datetime
    started_at: datetime | None = None
    talk_seconds: float = 0.0


def phone_tail(phone: str, digits: int) -> str:
    """The part of a number callbacks compare (``reports.callback_match_digits``; 0: the whole number)."""
    return phone[-digits:] if digits > 0 else phone


def phone_tail_sql(column: Any, digits: int, dialect: str) -> ColumnElement[Any]:
    """``phone_tail`` in SQL, as the report compares numbers."""
    if digits <= 0:
        exact: ColumnElement[Any] = column
        return exact
    return func.right(column, digits) if dialect == "postgresql" else func.substr(column, -digits)


async def close_answered_in(
    session: AsyncSession, answered: AnsweredCall, digits: int, *, min_talk_seconds: float = 60.0
) -> list[int]:
    """Close the open callback tasks of the number that this answered call closes (``crmtel.tasks.rules``);
    returns their ids. Whoever made the call closes them: the manager called back, a colleague did, or the
    client got through.
    """
    dialect = session.get_bind().dialect.name
    rows = (
        await session.execute(
            select(TaskRow).where(
                TaskRow.kind == "callback",
                TaskRow.status == "open",
                phone_tail_sql(TaskRow.phone, digits, dialect) == phone_tail(answered.phone, digits),
                TaskRow.created_at <= answered.ended_at,
            )
        )
    ).scalars()
    call = CallFacts(answered.started_at or answered.ended_at, answered.ended_at, answered.talk_seconds)
    closed: list[int] = []
    for row in rows:
        task = TaskFacts(row.source or MISSED, _aware(row.created_at), _aware(row.due_at))
        if not closes(task, call, min_talk_seconds):
            continue
        row.status = "closed"
        row.done_at = answered.ended_at
        row.updated_at = answered.ended_at
        row.closed_by_call_id = answered.call_id
        closed.append(row.id)
    if closed:
        await session.flush()
    return closed


def _aware(value: datetime) -> datetime:
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


@dataclass(frozen=True, slots=True)
class WantedLead:
    """An unknown caller that should be a lead."""

    e164: str
    name: str | None
    manager_id: int | None


async def _existing_leads(session: AsyncSession, numbers: Sequence[str]) -> dict[str, LeadRef]:
    rows = await session.execute(
        select(PhoneRow.e164, LeadRow.id, LeadRow.name, LeadRow.manager_id)
        .join(LeadRow, PhoneRow.lead_id == LeadRow.id)
        .where(PhoneRow.e164.in_(numbers))
        .order_by(LeadRow.id.desc())
    )
    return {e164: LeadRef(lid, name, mid, created=False) for e164, lid, name, mid in rows.all()}


async def ensure_leads_in(session: AsyncSession, wanted: Sequence[WantedLead]) -> dict[str, LeadRef]:
    """The lead of each number, created (source ``phone call``) where no lead has it; never two per number."""
    if not wanted:
        return {}
    found = await _existing_leads(session, sorted({w.e164 for w in wanted}))
    postgres = session.get_bind().dialect.name == "postgresql"
    new: dict[str, tuple[LeadRow, WantedLead]] = {}
    for want in wanted:
        if want.e164 in found or want.e164 in new:
            continue
        if postgres:
            await lock_in(session, "lead:" + want.e164)
            # Another crmtel may have created it while we waited for the lock.
            again = await _existing_leads(session, [want.e164])
            if want.e164 in again:
                found[want.e164] = again[want.e164]
                continue
        lead = LeadRow(
            name=(want.name or want.e164)[:300],
            source=LEAD_SOURCE_PHONE,
            status=LeadStatus.NEW.value,
            manager_id=want.manager_id,
            created_at=datetime.now(UTC),
        )
        new[want.e164] = (lead, want)
    if new:
        session.add_all(lead for lead, _ in new.values())
        await session.flush()
        session.add_all(PhoneRow(e164=e164, raw=e164, lead_id=lead.id) for e164, (lead, _) in new.items())
        await reindex_in(session, LEAD, [lead.id for lead, _ in new.values()])
        for e164, (lead, want) in new.items():
            found[e164] = LeadRef(lead.id, lead.name, want.manager_id, created=True)
    return found


async def manager_ids_by_login_in(session: AsyncSession, logins: Sequence[str]) -> dict[str, int]:
    """Ids of the active managers with these logins."""
    if not logins:
        return {}
    rows = await session.execute(
        select(ManagerRow.login, ManagerRow.id).where(
            ManagerRow.login.in_(logins), ManagerRow.active.is_(True)
        )
    )
    return {login: mid for login, mid in rows.all()}


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
