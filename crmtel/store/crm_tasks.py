"""Tasks as the task list and the calendar see them: listed by due time, created, completed with a result,
reopened (also after a call closed one by itself), reassigned by heads; every change audited."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import ColumnElement, and_, exists, or_, select, tuple_
from sqlalchemy.orm import aliased

from crmtel.crm.models import Kind, Viewer
from crmtel.errors import CrmtelError, NotFound
from crmtel.store.crm_parties import audit_in, may_see_in
from crmtel.store.db import Database
from crmtel.store.models import CallRow, ClientRow, LeadRow, ManagerRow, PartyShareRow, PhoneRow, TaskRow
from crmtel.tasks.rules import PLANNED
from crmtel.timestamps import assume_utc


class TaskState(CrmtelError):
    """The task is not in a state that allows this (completing a closed task, reopening an open one)."""


_OWN_CLIENT = aliased(ClientRow)
_OWN_LEAD = aliased(LeadRow)


@dataclass(frozen=True, slots=True)
class TaskItem:
    """A task with what the list and the calendar show."""

    id: int
    kind: str
    title: str
    note: str | None
    phone: str | None
    status: str
    source: str
    missed_count: int
    due_at: datetime
    created_at: datetime
    done_at: datetime | None
    result: str | None
    closed_by_call: str | None
    closed_by_call_id: int | None
    closed_by_call_talk: float | None
    closed_by_call_started: datetime | None
    manager_id: int | None
    manager_name: str | None
    party_kind: str | None
    party_id: int | None
    party_name: str | None
    # The login of the manager the task belongs to (the API's ``manager``).
    manager_login: str | None = None

    def overdue(self, now: datetime) -> bool:
        """Open and past its due time."""
        return self.status == "open" and self.due_at < now


@dataclass(frozen=True, slots=True)
class NewTask:
    """A task set from a card or the task list."""

    kind: str
    title: str
    due_at: datetime
    manager_id: int
    party_kind: Kind | None = None
    party_id: int | None = None
    note: str | None = None
    phone: str | None = None


_CLOSER = aliased(CallRow)


def task_scope(viewer: Viewer) -> ColumnElement[bool] | None:
    """A manager's own tasks and those of their own or shared clients and leads; a head's: everyone's."""
    if viewer.head:
        return None
    me = viewer.manager_id
    return or_(
        TaskRow.manager_id == me,
        # Aliases: the list's own query joins clients and leads, which would swallow these subqueries.
        exists().where(_OWN_CLIENT.id == TaskRow.client_id, _OWN_CLIENT.manager_id == me),
        exists().where(_OWN_LEAD.id == TaskRow.lead_id, _OWN_LEAD.manager_id == me),
        exists().where(
            PartyShareRow.manager_id == me,
            or_(
                and_(PartyShareRow.kind == "client", PartyShareRow.party_id == TaskRow.client_id),
                and_(PartyShareRow.kind == "lead", PartyShareRow.party_id == TaskRow.lead_id),
            ),
        ),
    )


def _select() -> Any:
    return (
        select(
            TaskRow,
            ManagerRow.name,
            ManagerRow.login,
            ClientRow.name,
            LeadRow.name,
            _CLOSER.pbx,
            _CLOSER.linkedid,
            _CLOSER.talk_seconds,
            _CLOSER.started_at,
        )
        .outerjoin(ManagerRow, ManagerRow.id == TaskRow.manager_id)
        .outerjoin(ClientRow, ClientRow.id == TaskRow.client_id)
        .outerjoin(LeadRow, LeadRow.id == TaskRow.lead_id)
        .outerjoin(_CLOSER, _CLOSER.id == TaskRow.closed_by_call_id)
    )


def _item(row: Sequence[Any]) -> TaskItem:
    task, mname, mlogin, cname, lname, pbx, linkedid, talk, started = row
    kind = "client" if task.client_id else "lead" if task.lead_id else None
    return TaskItem(
        id=task.id,
        kind=task.kind,
        title=task.title,
        note=task.note,
        phone=task.phone,
        status="open" if task.status == "open" else "closed",
        source=task.source or "missed",
        missed_count=task.missed_count,
        due_at=assume_utc(task.due_at) or task.due_at,
        created_at=assume_utc(task.created_at) or task.created_at,
        done_at=assume_utc(task.done_at),
        result=task.result,
        closed_by_call=f"{pbx}:{linkedid}" if pbx is not None else None,
        closed_by_call_id=task.closed_by_call_id,
        closed_by_call_talk=float(talk) if talk is not None else None,
        closed_by_call_started=assume_utc(started),
        manager_id=task.manager_id,
        manager_name=mname,
        party_kind=kind,
        party_id=task.client_id or task.lead_id,
        party_name=cname or lname,
        manager_login=mlogin,
    )


class CrmTasks:
    """The task list, the calendar and task changes."""

    def __init__(self, db: Database) -> None:
        self._db = db

    async def find(
        self,
        viewer: Viewer,
        *,
        status: str | None = "open",
        manager_id: int | None = None,
        due_from: datetime | None = None,
        due_to: datetime | None = None,
        overdue_before: datetime | None = None,
        party: tuple[Kind, int] | None = None,
        after: tuple[datetime, int] | None = None,
        limit: int = 100,
    ) -> tuple[list[TaskItem], tuple[datetime, int] | None]:
        """Tasks by due time (keyset on due time and id), and where the next page starts."""
        stmt = _select()
        if (scope := task_scope(viewer)) is not None:
            stmt = stmt.where(scope)
        if status is not None:
            stmt = stmt.where(TaskRow.status == status)
        if manager_id is not None:
            stmt = stmt.where(TaskRow.manager_id == manager_id)
        if due_from is not None:
            stmt = stmt.where(TaskRow.due_at >= due_from)
        if due_to is not None:
            stmt = stmt.where(TaskRow.due_at < due_to)
        if overdue_before is not None:
            stmt = stmt.where(TaskRow.status == "open", TaskRow.due_at < overdue_before)
        if party is not None:
            column = TaskRow.client_id if party[0] is Kind.CLIENT else TaskRow.lead_id
            stmt = stmt.where(column == party[1])
        if after is not None:
            stmt = stmt.where(tuple_(TaskRow.due_at, TaskRow.id) > tuple_(after[0], after[1]))
        stmt = stmt.order_by(TaskRow.due_at, TaskRow.id).limit(limit + 1)
        async with self._db.session() as session:
            rows = [_item(r) for r in (await session.execute(stmt)).all()]
        nxt = (rows[limit - 1].due_at, rows[limit - 1].id) if len(rows) > limit else None
        return rows[:limit], nxt

    async def get(self, task_id: int, viewer: Viewer) -> TaskItem | None:
        """One task, if the viewer may see it."""
        stmt = _select().where(TaskRow.id == task_id)
        if (scope := task_scope(viewer)) is not None:
            stmt = stmt.where(scope)
        async with self._db.session() as session:
            row = (await session.execute(stmt)).first()
            return _item(row) if row is not None else None

    async def create(self, task: NewTask, viewer: Viewer) -> TaskItem:
        """Set a task (NotFound when its client or lead is not the viewer's to see)."""
        now = datetime.now(UTC)
        async with self._db.session() as session:
            phone = task.phone
            if task.party_kind is not None and task.party_id is not None:
                if await may_see_in(session, task.party_kind, task.party_id, viewer) is None:
                    raise NotFound(f"{task.party_kind.value} {task.party_id}")
                if phone is None and task.kind == "callback":
                    owner = PhoneRow.client_id if task.party_kind is Kind.CLIENT else PhoneRow.lead_id
                    phone = await session.scalar(
                        select(PhoneRow.e164).where(owner == task.party_id).order_by(PhoneRow.id).limit(1)
                    )
            row = TaskRow(
                kind=task.kind,
                title=task.title,
                note=task.note,
                phone=phone,
                manager_id=task.manager_id,
                client_id=task.party_id if task.party_kind is Kind.CLIENT else None,
                lead_id=task.party_id if task.party_kind is Kind.LEAD else None,
                status="open",
                source=PLANNED,
                missed_count=0,
                due_at=task.due_at,
                created_at=now,
                updated_at=now,
            )
            session.add(row)
            await session.flush()
            await audit_in(session, viewer.manager_id, "task", row.id, "create", {"title": task.title}, now)
            task_id = row.id
        return await self._must(task_id, viewer)

    async def _must(self, task_id: int, viewer: Viewer) -> TaskItem:
        found = await self.get(task_id, Viewer(viewer.manager_id, head=True))
        if found is None:
            raise NotFound(f"task {task_id}")
        return found

    async def _change(self, task_id: int, viewer: Viewer, action: str, apply: Any) -> TaskItem:
        now = datetime.now(UTC)
        async with self._db.session() as session:
            stmt = select(TaskRow).where(TaskRow.id == task_id)
            if (scope := task_scope(viewer)) is not None:
                stmt = stmt.where(scope)
            row = (await session.execute(stmt.with_for_update())).scalar_one_or_none()
            if row is None:
                raise NotFound(f"task {task_id}")
            diff: dict[str, object] = apply(row, now)
            if diff:
                row.updated_at = now
                await audit_in(session, viewer.manager_id, "task", task_id, action, diff, now)
        return await self._must(task_id, viewer)

    async def complete(self, task_id: int, viewer: Viewer, result: str) -> TaskItem:
        """Close an open task with its result."""

        def apply(row: TaskRow, now: datetime) -> dict[str, object]:
            if row.status != "open":
                raise TaskState(f"task {task_id} is already closed")
            row.status, row.done_at, row.result, row.closed_by_manager_id = (
                "closed",
                now,
                result,
                viewer.manager_id,
            )
            return {"status": ["open", "closed"], "result": [None, result]}

        return await self._change(task_id, viewer, "complete", apply)

    async def reopen(self, task_id: int, viewer: Viewer) -> TaskItem:
        """Open a closed task again (a call closed it by itself, or it was closed by mistake)."""

        def apply(row: TaskRow, now: datetime) -> dict[str, object]:
            if row.status == "open":
                raise TaskState(f"task {task_id} is open")
            diff: dict[str, object] = {
                "status": ["closed", "open"],
                "closed_by_call_id": [row.closed_by_call_id, None],
            }
            row.status, row.done_at, row.result = "open", None, None
            row.closed_by_call_id = row.closed_by_manager_id = None
            return diff

        return await self._change(task_id, viewer, "reopen", apply)

    async def edit(
        self,
        task_id: int,
        viewer: Viewer,
        *,
        title: str | None = None,
        due_at: datetime | None = None,
        note: str | None = None,
        manager_id: int | None = None,
    ) -> TaskItem:
        """Change a task's title, due time, note, or (heads) who does it."""

        def apply(row: TaskRow, now: datetime) -> dict[str, object]:
            diff: dict[str, object] = {}
            for field, value in (
                ("title", title),
                ("due_at", due_at),
                ("note", note),
                ("manager_id", manager_id),
            ):
                old = getattr(row, field)
                if value is not None and (assume_utc(old) if isinstance(old, datetime) else old) != value:
                    diff[field] = [
                        old.isoformat() if isinstance(old, datetime) else old,
                        value.isoformat() if isinstance(value, datetime) else value,
                    ]
                    setattr(row, field, value)
            return diff

        return await self._change(task_id, viewer, "edit", apply)
