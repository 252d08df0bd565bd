"""Callback tasks as the page and the CLI see them: listed with their party and manager, closed by hand;
and the search box over clients and leads (by name or number)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import ColumnElement, or_, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased

from crmtel.crm.models import Kind, Viewer
from crmtel.domain import PartyKind, call_id
from crmtel.errors import CrmtelError, NotFound
from crmtel.store.crm_lists import visible
from crmtel.store.db import Database
from crmtel.store.models import CallRow, ClientRow, LeadRow, ManagerRow, PhoneRow, TaskRow
from crmtel.timestamps import assume_utc


class TaskClosed(CrmtelError):
    """The task is already closed."""


@dataclass(frozen=True, slots=True)
class TaskView:
    """A callback task with what the list shows about it."""

    id: int
    phone: str | None
    status: str
    missed_count: int
    first_missed_at: datetime
    due_at: datetime
    closed_at: datetime | None
    closed_by_call: str | None
    closed_by_call_id: int | None
    result: str | None
    title: str
    manager_id: int | None
    manager: str | None
    manager_name: str | None
    party_kind: PartyKind | None
    party_id: int | None
    party_name: str | None
    last_call: str | None

    def overdue(self, now: datetime) -> bool:
        """Open and past its due time."""
        return self.status == "open" and self.due_at < now


@dataclass(frozen=True, slots=True)
class PartyHit:
    """A client or lead found by the search box, with the numbers one can call."""

    kind: PartyKind
    id: int
    name: str
    company: str | None
    manager_id: int | None
    phones: tuple[str, ...]


_CLOSER = aliased(CallRow)
_LAST = aliased(CallRow)


def _task_select() -> Any:
    return (
        select(
            TaskRow,
            ManagerRow.login,
            ManagerRow.name,
            ClientRow.name,
            LeadRow.name,
            _CLOSER.pbx,
            _CLOSER.linkedid,
            _LAST.pbx,
            _LAST.linkedid,
        )
        .outerjoin(ManagerRow, ManagerRow.id == TaskRow.manager_id)
        .outerjoin(ClientRow, ClientRow.id == TaskRow.client_id)
        .outerjoin(LeadRow, LeadRow.id == TaskRow.lead_id)
        .outerjoin(_CLOSER, _CLOSER.id == TaskRow.closed_by_call_id)
        .outerjoin(_LAST, _LAST.id == TaskRow.call_id)
        .where(TaskRow.kind == "callback")
    )


def _view(row: Sequence[object]) -> TaskView:
    task, login, mname, cname, lname, cpbx, clid, lpbx, llid = row
    assert isinstance(task, TaskRow)
    kind = PartyKind.CLIENT if task.client_id else PartyKind.LEAD if task.lead_id else None
    return TaskView(
        id=task.id,
        phone=task.phone,
        status="open" if task.status == "open" else "closed",
        missed_count=task.missed_count,
        first_missed_at=assume_utc(task.created_at) or task.created_at,
        due_at=assume_utc(task.due_at) or task.due_at,
        closed_at=assume_utc(task.done_at),
        closed_by_call=call_id(str(cpbx), str(clid)) if cpbx is not None else None,
        closed_by_call_id=task.closed_by_call_id,
        result=task.result,
        title=task.title,
        manager_id=task.manager_id,
        manager=login if isinstance(login, str) else None,
        manager_name=mname if isinstance(mname, str) else None,
        party_kind=kind,
        party_id=task.client_id or task.lead_id,
        party_name=str(cname or lname) if (cname or lname) else None,
        last_call=call_id(str(lpbx), str(llid)) if lpbx is not None else None,
    )


class CallbackRepository:
    """Listing and closing callback tasks; searching the CRM for the search box."""

    def __init__(self, db: Database) -> None:
        self._db = db

    async def tasks(
        self, *, status: str | None = "open", manager_id: int | None = None, limit: int = 500
    ) -> list[TaskView]:
        """Tasks, open ones most urgent first, then the most recently closed; ``status`` None: all."""
        stmt = _task_select()
        if status is not None:
            stmt = stmt.where(TaskRow.status == status)
        if manager_id is not None:
            stmt = stmt.where(TaskRow.manager_id == manager_id)
        stmt = stmt.order_by(TaskRow.status.desc(), TaskRow.due_at, TaskRow.id).limit(limit)
        async with self._db.session() as session:
            return [_view(row) for row in (await session.execute(stmt)).all()]

    async def get(self, task_id: int) -> TaskView | None:
        """One callback task."""
        async with self._db.session() as session:
            row = (await session.execute(_task_select().where(TaskRow.id == task_id))).first()
            return _view(row) if row is not None else None

    async def close(
        self, task_id: int, manager_id: int, result: str, *, now: datetime | None = None
    ) -> TaskView:
        """Close an open task by hand with its result (NotFound / TaskClosed otherwise)."""
        async with self._db.session() as session:
            await self._close_in(session, task_id, manager_id, result, now or datetime.now(UTC))
        view = await self.get(task_id)
        if view is None:
            raise NotFound(f"task {task_id}")
        return view

    @staticmethod
    async def _close_in(
        session: AsyncSession, task_id: int, manager_id: int, result: str, now: datetime
    ) -> None:
        row = await session.get(TaskRow, task_id, with_for_update=True)
        if row is None or row.kind != "callback":
            raise NotFound(f"task {task_id}")
        if row.status != "open":
            raise TaskClosed(f"task {task_id} is already closed")
        row.status = "closed"
        row.done_at = now
        row.updated_at = now
        row.result = result[:300]
        row.closed_by_manager_id = manager_id

    async def search(self, query: str, viewer: Viewer, *, limit: int = 20) -> list[PartyHit]:
        """Clients and leads whose name, company or number contains ``query`` — of those ``viewer`` may see
        (a head: all; a manager: their own, shared with them and unassigned, as the CRM's lists)."""
        text = query.strip()
        digits = "".join(ch for ch in text if ch.isdigit())
        if len(text) < 2:
            return []
        # SQLite lowers ASCII only: also try the text as typed and capitalised (Cyrillic names).
        patterns = {f"%{v}%" for v in (text, text.lower(), text.capitalize())}

        def named(column: Any) -> ColumnElement[bool]:
            return or_(*(column.ilike(p) for p in patterns))

        client_match = [named(ClientRow.name)]
        lead_match = [named(LeadRow.name), named(LeadRow.company)]
        if len(digits) >= 3:
            numbers = PhoneRow.e164.like(f"%{digits}%")
            client_match.append(ClientRow.id.in_(select(PhoneRow.client_id).where(numbers)))
            lead_match.append(LeadRow.id.in_(select(PhoneRow.lead_id).where(numbers)))
        clients = select(ClientRow.id, ClientRow.name, ClientRow.manager_id).where(or_(*client_match))
        leads = select(LeadRow.id, LeadRow.name, LeadRow.company, LeadRow.manager_id).where(or_(*lead_match))
        for_clients, for_leads = visible(Kind.CLIENT, viewer), visible(Kind.LEAD, viewer)
        if for_clients is not None and for_leads is not None:
            clients, leads = clients.where(for_clients), leads.where(for_leads)
        async with self._db.session() as session:
            found_clients = (await session.execute(clients.order_by(ClientRow.name).limit(limit))).all()
            found_leads = (await session.execute(leads.order_by(LeadRow.name).limit(limit))).all()
            cids = [r[0] for r in found_clients]
            lids = [r[0] for r in found_leads]
            phones = (
                await session.execute(
                    select(PhoneRow.client_id, PhoneRow.lead_id, PhoneRow.e164)
                    .where(or_(PhoneRow.client_id.in_(cids), PhoneRow.lead_id.in_(lids)))
                    .order_by(PhoneRow.id)
                )
            ).all()
        by_client: dict[int, list[str]] = {}
        by_lead: dict[int, list[str]] = {}
        for cid, lid, e164 in phones:
            if cid is not None:
                by_client.setdefault(cid, []).append(e164)
            elif lid is not None:
                by_lead.setdefault(lid, []).append(e164)
        hits = [
            PartyHit(PartyKind.CLIENT, cid, name, None, mid, tuple(by_client.get(cid, ())))
            for cid, name, mid in found_clients
        ]
        hits += [
            PartyHit(PartyKind.LEAD, lid, name, company, mid, tuple(by_lead.get(lid, ())))
            for lid, name, company, mid in found_leads
        ]
        return hits[:limit]
