"""The page's callback list (``GET /api/callbacks``), closing a task by hand, and the client/lead search box."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from aiohttp import web
from pydantic import StringConstraints

from crmtel.crm.models import Viewer
from crmtel.domain import Role
from crmtel.errors import NotFound
from crmtel.push.context import current_manager, translator
from crmtel.push.inputs import MAX_ID, Body, Query, read_body, read_query
from crmtel.store.callbacks import CallbackRepository, PartyHit, TaskClosed, TaskView
from crmtel.store.managers import ManagerRepository
from crmtel.timestamps import iso_instant

Login = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=100)]
Result = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=300)]
SearchText = Annotated[str, StringConstraints(strip_whitespace=True, min_length=2, max_length=100)]


class CallbacksQuery(Query):
    """Which tasks: open (default), closed or all; a head may ask for one manager's or "everyone"."""

    status: Literal["open", "closed", "all"] = "open"
    manager: Login | None = None


class CloseBody(Body):
    """Closing a task by hand: what came of it."""

    result: Result


class SearchQuery(Query):
    """The search box: part of a name, a company or a number."""

    q: SearchText


def task_json(task: TaskView, now: datetime) -> dict[str, Any]:
    """A callback task for the page."""
    return {
        "id": task.id,
        "phone": task.phone,
        "status": task.status,
        "missed_count": task.missed_count,
        "first_missed_at": iso_instant(task.first_missed_at),
        "due_at": iso_instant(task.due_at),
        "overdue": task.overdue(now),
        "closed_at": iso_instant(task.closed_at),
        "closed_by_call": task.closed_by_call,
        "result": task.result,
        "title": task.title,
        "manager": task.manager,
        "manager_name": task.manager_name,
        "party_kind": task.party_kind.value if task.party_kind else None,
        "party_id": task.party_id,
        "party_name": task.party_name,
        "last_call": task.last_call,
    }


def hit_json(hit: PartyHit) -> dict[str, Any]:
    """A search result."""
    return {
        "kind": hit.kind.value,
        "id": hit.id,
        "name": hit.name,
        "company": hit.company,
        "manager_id": hit.manager_id,
        "phones": list(hit.phones),
    }


def _error(status: int, key: str, message: str) -> web.Response:
    return web.json_response({"error": message, "key": key}, status=status)


def callback_routes(tasks: CallbackRepository, managers: ManagerRepository) -> web.RouteTableDef:
    """The callback list and search routes (behind the session check)."""
    routes = web.RouteTableDef()

    @routes.get("/api/callbacks")
    async def list_callbacks(request: web.Request) -> web.Response:
        me = current_manager(request)
        query = read_query(request, CallbacksQuery)
        manager_id: int | None = me.id
        if me.role is Role.HEAD:
            manager_id = None
            if query.manager is not None:
                other = await managers.by_login(query.manager)
                if other is None:
                    return _error(404, "callbacks.no_manager", translator(request).t("callbacks.no_manager"))
                manager_id = other.id
        status = None if query.status == "all" else query.status
        found = await tasks.tasks(status=status, manager_id=manager_id)
        now = datetime.now(UTC)
        return web.json_response({"tasks": [task_json(t, now) for t in found]})

    @routes.post(r"/api/callbacks/{task_id:\d{1,18}}/close")
    async def close(request: web.Request) -> web.Response:
        me = current_manager(request)
        tr = translator(request)
        task_id = int(request.match_info["task_id"])
        body = await read_body(request, CloseBody)
        task = await tasks.get(task_id) if task_id <= MAX_ID else None
        if task is None or (me.role is not Role.HEAD and task.manager_id != me.id):
            return _error(404, "callbacks.not_found", tr.t("callbacks.not_found"))
        try:
            closed = await tasks.close(task_id, me.id, body.result)
        except NotFound:
            return _error(404, "callbacks.not_found", tr.t("callbacks.not_found"))
        except TaskClosed:
            return _error(409, "callbacks.already_closed", tr.t("callbacks.already_closed"))
        return web.json_response(task_json(closed, datetime.now(UTC)))

    @routes.get("/api/search")
    async def search(request: web.Request) -> web.Response:
        query = read_query(request, SearchQuery)
        me = current_manager(request)
        viewer = Viewer(me.id, me.role is Role.HEAD)
        return web.json_response({"results": [hit_json(h) for h in await tasks.search(query.q, viewer)]})

    return routes
