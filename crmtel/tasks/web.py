"""The tasks JSON API: the list and calendar (by due time), setting, completing with a result, reopening a
task (also one a call closed by itself), and reassigning (heads)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Annotated, Literal

from aiohttp import web
from pydantic import AwareDatetime, Field, StringConstraints

from crmtel.crm.models import Kind
from crmtel.crm.schemas import Login, Name, Out, encode_cursor, time_cursor
from crmtel.crm.service import TASK_KINDS
from crmtel.crm.web import error, json_out, viewer_of
from crmtel.domain import Role
from crmtel.errors import NotFound
from crmtel.phones import display
from crmtel.push.context import current_manager, translator
from crmtel.push.downloads import csv_stream
from crmtel.push.inputs import MAX_ID, Body, LongText, Query, read_body, read_query
from crmtel.store.crm_tasks import CrmTasks, NewTask, TaskItem, TaskState
from crmtel.store.managers import ManagerRepository
from crmtel.tasks import export
from crmtel.timestamps import as_utc, iso_instant

TaskKind = Literal["callback", "call", "meeting", "email", "other"]
assert set(TASK_KINDS) == {"callback", "call", "meeting", "email", "other"}
# A due time further than this from now is a typo (the year 2062), not a plan.
MAX_AHEAD = timedelta(days=3660)


class TaskListQuery(Query):
    """``GET /api/tasks``: which tasks, for whom, due when (``from``/``to``: the calendar's day or week)."""

    status: Literal["open", "closed", "all"] = "open"
    manager: Login | None = None
    from_: AwareDatetime | None = Field(default=None, alias="from")
    to: AwareDatetime | None = None
    overdue: Literal["yes"] | None = None
    kind: Literal["client", "lead"] | None = None
    party_id: Annotated[int, Field(ge=1, le=MAX_ID)] | None = None
    cursor: Annotated[str, StringConstraints(max_length=1000)] | None = None
    limit: Annotated[int, Field(ge=1, le=500)] = 200


class TaskCsvQuery(Query):
    """``GET /api/tasks.csv``: the list's filters, and ``sep=comma`` for a comma-separated file."""

    status: Literal["open", "closed", "all"] = "open"
    manager: Login | None = None
    overdue: Literal["yes"] | None = None
    sep: Literal["comma"] | None = None


class TaskCreate(Body):
    """``POST /api/tasks``: a task at a date and time (with its offset), about a client or lead or not."""

    kind: TaskKind = "callback"
    title: Name
    due_at: AwareDatetime
    note: LongText | None = None
    party_kind: Literal["client", "lead"] | None = None
    party_id: Annotated[int, Field(ge=1, le=MAX_ID)] | None = None
    manager: Login | None = None


class TaskEdit(Body):
    """``PATCH /api/tasks/{id}``: title, due time, note; ``manager`` (heads) reassigns."""

    title: Name | None = None
    due_at: AwareDatetime | None = None
    note: LongText | None = None
    manager: Login | None = None


class TaskComplete(Body):
    """``POST /api/tasks/{id}/complete``: what came of it."""

    result: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=300)]


class TaskOut(Out):
    """A task; ``closed_by_call`` names the call that closed it by itself."""

    id: int
    kind: str
    title: str
    note: str | None
    phone: str | None
    phone_display: str | None
    status: str
    source: str
    missed_count: int
    due_at: str
    overdue: bool
    created_at: str
    done_at: str | None
    result: str | None
    closed_by_call: str | None
    closed_by_call_talk_seconds: float | None
    closed_by_call_started_at: str | None
    manager_id: int | None
    manager: str | None
    manager_name: str | None
    party_kind: str | None
    party_id: int | None
    party_name: str | None


class TaskListOut(Out):
    """Tasks by due time; ``next`` is the cursor of the following page."""

    items: list[TaskOut]
    next: str | None


def task_out(task: TaskItem, now: datetime, region: str) -> TaskOut:
    """A task for the API."""
    return TaskOut(
        id=task.id,
        kind=task.kind,
        title=task.title,
        note=task.note,
        phone=task.phone,
        phone_display=display(task.phone, region) if task.phone else None,
        status=task.status,
        source=task.source,
        missed_count=task.missed_count,
        due_at=iso_instant(task.due_at) or "",
        overdue=task.overdue(now),
        created_at=iso_instant(task.created_at) or "",
        done_at=iso_instant(task.done_at),
        result=task.result,
        closed_by_call=task.closed_by_call,
        closed_by_call_talk_seconds=task.closed_by_call_talk,
        closed_by_call_started_at=iso_instant(task.closed_by_call_started),
        manager_id=task.manager_id,
        manager=task.manager_login,
        manager_name=task.manager_name,
        party_kind=task.party_kind,
        party_id=task.party_id,
        party_name=task.party_name,
    )


def task_routes(tasks: CrmTasks, managers: ManagerRepository, region: str) -> web.RouteTableDef:
    """The tasks API (behind the session check)."""
    routes = web.RouteTableDef()

    async def manager_id(request: web.Request, login: str | None) -> int | None:
        if login is None:
            return None
        found = await managers.by_login(login)
        if found is None or not found.active:
            raise error(request, 400, "crm.manager_unknown", field="manager")
        return found.id

    def due(request: web.Request, value: datetime) -> datetime:
        now = datetime.now(UTC)
        if not now - timedelta(days=366) <= value <= now + MAX_AHEAD:
            raise error(request, 400, "crm.due_range", field="due_at")
        # The instant the page meant, in UTC (10:00+03:00 is 07:00Z), as everything is stored.
        return as_utc(value)

    def task_id(request: web.Request) -> int:
        value = int(request.match_info["task_id"])
        return value if value <= MAX_ID else 0

    @routes.get("/api/tasks")
    async def list_tasks(request: web.Request) -> web.Response:
        me = current_manager(request)
        q = read_query(request, TaskListQuery)
        try:
            after = time_cursor(q.cursor)
        except ValueError:
            raise error(request, 400, "crm.cursor_invalid", field="cursor") from None
        now = datetime.now(UTC)
        found, nxt = await tasks.find(
            viewer_of(me),
            status=None if q.status == "all" else q.status,
            manager_id=await manager_id(request, q.manager),
            due_from=as_utc(q.from_) if q.from_ else None,
            due_to=as_utc(q.to) if q.to else None,
            overdue_before=now if q.overdue else None,
            party=(Kind(q.kind), q.party_id) if q.kind and q.party_id else None,
            after=after,
            limit=q.limit,
        )
        cursor = encode_cursor([nxt[0].isoformat(), nxt[1]]) if nxt else None
        return json_out(TaskListOut(items=[task_out(t, now, region) for t in found], next=cursor))

    @routes.get("/api/tasks.csv")
    async def download_tasks(request: web.Request) -> web.StreamResponse:
        """Every task the list shows with these filters, by due time, as CSV: the list's keyset pages written
        as they come."""
        me = current_manager(request)
        q = read_query(request, TaskCsvQuery)
        who = await manager_id(request, q.manager)
        now = datetime.now(UTC)
        tr = translator(request)

        async def batches() -> AsyncIterator[list[list[str]]]:
            after: tuple[datetime, int] | None = None
            while True:
                batch, after = await tasks.find(
                    viewer_of(me),
                    status=None if q.status == "all" else q.status,
                    manager_id=who,
                    overdue_before=now if q.overdue else None,
                    after=after,
                    limit=500,
                )
                yield export.rows(batch, now, tr, region)[1:]
                if after is None:
                    return

        heading = export.rows([], now, tr, region)[0]
        return await csv_stream(
            request, heading, batches(), sep=q.sep, filename="tasks.csv", numeric=export.NUMERIC
        )

    @routes.post("/api/tasks")
    async def create_task(request: web.Request) -> web.Response:
        me = current_manager(request)
        body = await read_body(request, TaskCreate)
        owner = await manager_id(request, body.manager) if body.manager else me.id
        if owner != me.id and me.role is not Role.HEAD:
            raise error(request, 403, "crm.assign_forbidden", field="manager")
        if (body.party_kind is None) != (body.party_id is None):
            raise error(request, 400, "crm.task_party", field="party_id")
        try:
            created = await tasks.create(
                NewTask(
                    kind=body.kind,
                    title=body.title,
                    due_at=due(request, body.due_at),
                    manager_id=owner or me.id,
                    party_kind=Kind(body.party_kind) if body.party_kind else None,
                    party_id=body.party_id,
                    note=body.note or None,
                ),
                viewer_of(me),
            )
        except NotFound:
            raise error(request, 404, "crm.not_found") from None
        return json_out(task_out(created, datetime.now(UTC), region), status=201)

    @routes.patch(r"/api/tasks/{task_id:\d{1,19}}")
    async def edit_task(request: web.Request) -> web.Response:
        me = current_manager(request)
        body = await read_body(request, TaskEdit)
        if body.manager is not None and me.role is not Role.HEAD:
            raise error(request, 403, "crm.reassign_forbidden", field="manager")
        try:
            updated = await tasks.edit(
                task_id(request),
                viewer_of(me),
                title=body.title,
                due_at=due(request, body.due_at) if body.due_at else None,
                note=body.note,
                manager_id=await manager_id(request, body.manager),
            )
        except NotFound:
            raise error(request, 404, "crm.task_not_found") from None
        return json_out(task_out(updated, datetime.now(UTC), region))

    @routes.post(r"/api/tasks/{task_id:\d{1,19}}/complete")
    async def complete(request: web.Request) -> web.Response:
        me = current_manager(request)
        body = await read_body(request, TaskComplete)
        try:
            done = await tasks.complete(task_id(request), viewer_of(me), body.result)
        except NotFound:
            raise error(request, 404, "crm.task_not_found") from None
        except TaskState:
            raise error(request, 409, "crm.task_closed") from None
        return json_out(task_out(done, datetime.now(UTC), region))

    @routes.post(r"/api/tasks/{task_id:\d{1,19}}/reopen")
    async def reopen(request: web.Request) -> web.Response:
        me = current_manager(request)
        try:
            opened = await tasks.reopen(task_id(request), viewer_of(me))
        except NotFound:
            raise error(request, 404, "crm.task_not_found") from None
        except TaskState:
            raise error(request, 409, "crm.task_open") from None
        return json_out(task_out(opened, datetime.now(UTC), region))

    return routes
