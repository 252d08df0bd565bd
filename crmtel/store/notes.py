"""What managers write down about a call: the result note, a lead made from the caller, a callback task."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import select, update

from crmtel.domain import PartyKind, PartyMatch
from crmtel.errors import CrmtelError, NotFound
from crmtel.store.crm_terms import LEAD, reindex_in
from crmtel.store.db import Database
from crmtel.store.models import CallNoteRow, CallRow, LeadRow, TaskRow
from crmtel.store.parties import NewLead, add_lead_in


@dataclass(frozen=True, slots=True)
class Note:
    """A call's result as a manager wrote it."""

    id: int
    call_id: int
    manager_id: int | None
    topic: str
    result: str
    comment: str
    created_at: datetime


@dataclass(frozen=True, slots=True)
class CallbackTask:
    """A callback task set from a call card."""

    id: int
    call_id: int | None
    manager_id: int | None
    phone: str | None
    title: str
    due_at: datetime
    status: str


@dataclass(frozen=True, slots=True)
class LeadSaved:
    """The lead a call's caller now is; ``duplicates`` are other records already owning the number."""

    id: int
    created: bool
    duplicates: tuple[PartyMatch, ...]


class PartyConflict(CrmtelError):
    """The call already belongs to a client: it cannot become a lead."""


def _note(row: CallNoteRow) -> Note:
    return Note(row.id, row.call_id, row.manager_id, row.topic, row.result, row.comment, row.created_at)


def _task(row: TaskRow) -> CallbackTask:
    return CallbackTask(row.id, row.call_id, row.manager_id, row.phone, row.title, row.due_at, row.status)


class NoteRepository:
    """Call notes, leads created from calls, and callback tasks set from a card."""

    def __init__(self, db: Database) -> None:
        self._db = db

    async def add(
        self, call_id: int, manager_id: int | None, *, topic: str, result: str, comment: str
    ) -> Note:
        """Store a result note against a call (``call_id`` is the calls row id)."""
        async with self._db.session() as session:
            row = CallNoteRow(
                call_id=call_id,
                manager_id=manager_id,
                topic=topic,
                result=result,
                comment=comment,
                created_at=datetime.now(UTC),
            )
            session.add(row)
            await session.flush()
            return _note(row)

    async def for_call(self, call_id: int) -> list[Note]:
        """A call's notes, oldest first."""
        async with self._db.session() as session:
            rows = (
                (
                    await session.execute(
                        select(CallNoteRow).where(CallNoteRow.call_id == call_id).order_by(CallNoteRow.id)
                    )
                )
                .scalars()
                .all()
            )
            return [_note(r) for r in rows]

    async def lead_for_call(self, call_id: int, lead: NewLead, phones: list[tuple[str, str]]) -> LeadSaved:
        """Make the caller a lead: fill in the call's lead (e.g. the one made automatically), or create one.

        Raises ``PartyConflict`` when the call belongs to a client, ``NotFound`` for an unknown call.
        """
        async with self._db.session() as session:
            call = await session.get(CallRow, call_id)
            if call is None:
                raise NotFound(f"call {call_id}")
            if call.party_kind == PartyKind.CLIENT.value:
                raise PartyConflict(f"call {call_id} belongs to a client")
            row = (
                await session.get(LeadRow, call.party_id) if call.party_kind == PartyKind.LEAD.value else None
            )
            if row is not None:
                row.name = lead.name
                row.company = lead.company or row.company
                row.email = lead.email or row.email
                row.manager_id = row.manager_id or lead.manager_id
                call.party_name = lead.name
                await reindex_in(session, LEAD, [row.id])
                return LeadSaved(row.id, created=False, duplicates=())
            created = await add_lead_in(session, lead, phones)
            await session.execute(
                update(CallRow)
                .where(CallRow.id == call_id, CallRow.party_id.is_(None))
                .values(party_kind=PartyKind.LEAD.value, party_id=created.id, party_name=lead.name)
            )
            return LeadSaved(created.id, created=True, duplicates=created.duplicates)

    async def add_callback(
        self,
        call_id: int,
        manager_id: int | None,
        *,
        phone: str | None,
        title: str,
        due_at: datetime,
        client_id: int | None = None,
        lead_id: int | None = None,
    ) -> CallbackTask:
        """Set a callback task from a call card (a minimal writer; missed-call tasks live elsewhere)."""
        now = datetime.now(UTC)
        async with self._db.session() as session:
            row = TaskRow(
                kind="callback",
                phone=phone,
                call_id=call_id,
                manager_id=manager_id,
                client_id=client_id,
                lead_id=lead_id,
                title=title,
                missed_count=0,
                source="planned",
                status="open",
                due_at=due_at,
                created_at=now,
                updated_at=now,
            )
            session.add(row)
            await session.flush()
            return _task(row)

    async def tasks_for_call(self, call_id: int) -> list[CallbackTask]:
        """Tasks attached to a call, oldest first."""
        async with self._db.session() as session:
            rows = (
                (
                    await session.execute(
                        select(TaskRow).where(TaskRow.call_id == call_id).order_by(TaskRow.id)
                    )
                )
                .scalars()
                .all()
            )
            return [_task(r) for r in rows]
