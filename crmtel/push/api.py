"""The call APIs behind the page: history, notes, leads, deals, callback tasks and recordings."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

from aiohttp import web

from crmtel.domain import Manager, PartyKind
from crmtel.phones import normalize
from crmtel.push.context import STATE, current_manager, watch_scope
from crmtel.store.deals import DealSummary, NewDeal
from crmtel.store.history import CallView, visible_to
from crmtel.store.notes import CallbackTask, Note, PartyConflict
from crmtel.store.parties import NewLead

MAX_AMOUNT = Decimal("1e13")
MAX_DUE_MINUTES = 60 * 24 * 90


def _error(cls: type[web.HTTPException], message: str) -> web.HTTPException:
    return cls(text=json.dumps({"error": message}), content_type="application/json")


class BadRequest(web.HTTPBadRequest):
    """A 400 with a JSON body saying what was wrong."""

    def __init__(self, message: str) -> None:
        super().__init__(text=json.dumps({"error": message}), content_type="application/json")


async def json_body(request: web.Request) -> dict[str, Any]:
    """The request's JSON object; only ``application/json`` is accepted (plain forms cannot post here)."""
    if request.content_type != "application/json":
        raise _error(web.HTTPUnsupportedMediaType, "send application/json")
    try:
        data = await request.json()
    except (ValueError, UnicodeDecodeError) as err:
        raise BadRequest("body is not valid JSON") from err
    if not isinstance(data, dict):
        raise BadRequest("body must be a JSON object")
    return data


def text_field(body: dict[str, Any], name: str, max_len: int, *, required: bool = False) -> str:
    """A trimmed text field, bounded in length."""
    value = body.get(name)
    if value is None:
        value = ""
    if not isinstance(value, str):
        raise BadRequest(f"{name} must be text")
    value = value.replace("\x00", "").strip()
    if len(value) > max_len:
        raise BadRequest(f"{name} is longer than {max_len} characters")
    if required and not value:
        raise BadRequest(f"{name} is required")
    return value


def manager_json(manager: Manager) -> dict[str, Any]:
    """The public view of a manager."""
    return {
        "id": manager.id,
        "name": manager.name,
        "login": manager.login,
        "role": manager.role.value,
        "extensions": list(manager.extensions),
    }


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def call_json(call: CallView) -> dict[str, Any]:
    """A recorded call for the history list."""
    return {
        "id": call.id,
        "call_id": call.call_id,
        "direction": call.direction,
        "caller_number": call.caller_number,
        "caller_name": call.caller_name,
        "dialled": call.dialled,
        "started_at": _iso(call.started_at),
        "ended_at": _iso(call.ended_at),
        "rang": list(call.rang),
        "answered_by": call.answered_by,
        "queue": call.queue,
        "outcome": call.outcome,
        "missed_reason": call.missed_reason,
        "ring_seconds": round(call.ring_seconds, 1),
        "talk_seconds": round(call.talk_seconds, 1),
        "party_kind": call.party_kind,
        "party_id": call.party_id,
        "party_name": call.party_name,
        "recording": f"/api/calls/{call.call_id}/recording" if call.recording_file else None,
    }


def _note_json(note: Note) -> dict[str, Any]:
    return {
        "id": note.id,
        "manager_id": note.manager_id,
        "topic": note.topic,
        "result": note.result,
        "comment": note.comment,
        "created_at": _iso(note.created_at),
    }


def _deal_json(deal: DealSummary) -> dict[str, Any]:
    return {
        "id": deal.id,
        "title": deal.title,
        "amount": f"{deal.amount:.2f}",
        "stage": deal.stage,
        "status": deal.status.value,
        "client_id": deal.client_id,
        "lead_id": deal.lead_id,
    }


def _task_json(task: CallbackTask) -> dict[str, Any]:
    return {
        "id": task.id,
        "title": task.title,
        "phone": task.phone,
        "due_at": _iso(task.due_at),
        "status": task.status,
    }


async def _visible_call(request: web.Request) -> tuple[Manager, CallView]:
    state = request.app[STATE]
    manager = current_manager(request)
    scope = watch_scope(manager)
    call_id = request.match_info["call_id"]
    involved_live = scope is not None and state.hub.live.involves(call_id, scope)
    view = await state.history.get(call_id)
    if view is None:
        if involved_live:
            raise _error(web.HTTPConflict, "the call is not recorded yet, try again in a moment")
        raise _error(web.HTTPNotFound, "no such call")
    if not (visible_to(view, scope) or involved_live):
        # The same answer as for a call that does not exist: others' calls are not even confirmed.
        raise _error(web.HTTPNotFound, "no such call")
    return manager, view


async def list_calls(request: web.Request) -> web.Response:
    """``GET /api/calls?limit=&before=``: the newest calls the manager may see."""
    state = request.app[STATE]
    try:
        limit = min(max(int(request.query.get("limit", "50")), 1), 200)
        before = int(request.query["before"]) if "before" in request.query else None
    except ValueError as err:
        raise BadRequest("limit and before must be integers") from err
    calls = await state.history.list(watch_scope(current_manager(request)), limit=limit, before_id=before)
    return web.json_response({"calls": [call_json(c) for c in calls]})


async def get_call(request: web.Request) -> web.Response:
    """``GET /api/calls/{call_id}``: one call with its notes, deals and tasks."""
    state = request.app[STATE]
    _manager, call = await _visible_call(request)
    notes = await state.notes.for_call(call.id)
    deals = await state.deals.for_calls([call.id])
    tasks = await state.notes.tasks_for_call(call.id)
    return web.json_response(
        {
            "call": call_json(call),
            "notes": [_note_json(n) for n in notes],
            "deals": [_deal_json(d) for d in deals],
            "tasks": [_task_json(t) for t in tasks],
        }
    )


async def add_note(request: web.Request) -> web.Response:
    """``POST /api/calls/{call_id}/notes``: the result of the call (topic, result, comment)."""
    state = request.app[STATE]
    manager, call = await _visible_call(request)
    body = await json_body(request)
    topic = text_field(body, "topic", 300)
    result = text_field(body, "result", 300)
    comment = text_field(body, "comment", 5000)
    if not (topic or result or comment):
        raise BadRequest("write a topic, a result or a comment")
    note = await state.notes.add(call.id, manager.id, topic=topic, result=result, comment=comment)
    return web.json_response(_note_json(note), status=201)


async def create_lead(request: web.Request) -> web.Response:
    """``POST /api/calls/{call_id}/lead``: make the caller a lead (or fill in the lead the call already has)."""
    state = request.app[STATE]
    manager, call = await _visible_call(request)
    body = await json_body(request)
    name = text_field(body, "name", 300, required=True)
    company = text_field(body, "company", 300) or None
    email = text_field(body, "email", 300) or None
    if call.party_kind == PartyKind.CLIENT.value:
        raise _error(web.HTTPConflict, "this caller is already a client")
    phone = normalize(call.other_number, state.region)
    if phone.e164 is None and call.party_id is None:
        raise BadRequest("the caller has no usable phone number")
    lead = NewLead(
        name=name, phones=(phone.raw,), company=company, email=email, source="call", manager_id=manager.id
    )
    try:
        saved = await state.notes.lead_for_call(
            call.id, lead, [(phone.e164, phone.raw)] if phone.e164 else []
        )
    except PartyConflict as err:
        raise _error(web.HTTPConflict, "this caller is already a client") from err
    return web.json_response(
        {
            "id": saved.id,
            "created": saved.created,
            "duplicates": [{"kind": d.kind.value, "id": d.id, "name": d.name} for d in saved.duplicates],
        },
        status=201 if saved.created else 200,
    )


def _party_ids(call: CallView) -> tuple[int | None, int | None]:
    if call.party_id is None:
        return None, None
    if call.party_kind == PartyKind.CLIENT.value:
        return call.party_id, None
    return None, call.party_id


async def create_deal(request: web.Request) -> web.Response:
    """``POST /api/calls/{call_id}/deals``: open a deal for the call's client or lead."""
    state = request.app[STATE]
    manager, call = await _visible_call(request)
    body = await json_body(request)
    title = text_field(body, "title", 300, required=True)
    try:
        amount = Decimal(str(body.get("amount", "0")).strip() or "0")
    except InvalidOperation as err:
        raise BadRequest("amount must be a number") from err
    if not amount.is_finite() or amount < 0 or amount >= MAX_AMOUNT:
        raise BadRequest("amount must be between 0 and 10^13")
    client_id, lead_id = _party_ids(call)
    if client_id is None and lead_id is None:
        raise _error(web.HTTPConflict, "the caller is unknown: create a lead first")
    deal = await state.deals.add(
        NewDeal(
            title=title,
            amount=amount.quantize(Decimal("0.01")),
            manager_id=manager.id,
            client_id=client_id,
            lead_id=lead_id,
            call_id=call.id,
        )
    )
    return web.json_response(_deal_json(deal), status=201)


def _due_at(body: dict[str, Any], default_minutes: int) -> datetime:
    now = datetime.now(UTC)
    if body.get("due_at"):
        raw = body["due_at"]
        try:
            due = datetime.fromisoformat(raw) if isinstance(raw, str) else None
        except ValueError:
            due = None
        if due is None or due.tzinfo is None:
            raise BadRequest("due_at must be an ISO date-time with a time zone")
        return due
    minutes = body.get("due_minutes", default_minutes)
    if not isinstance(minutes, int) or isinstance(minutes, bool) or not 1 <= minutes <= MAX_DUE_MINUTES:
        raise BadRequest(f"due_minutes must be a whole number from 1 to {MAX_DUE_MINUTES}")
    return now + timedelta(minutes=minutes)


async def create_task(request: web.Request) -> web.Response:
    """``POST /api/calls/{call_id}/tasks``: a callback task for this manager, attached to the call."""
    state = request.app[STATE]
    manager, call = await _visible_call(request)
    body = await json_body(request)
    title = text_field(body, "title", 300) or "Call back"
    due = _due_at(body, state.callback_due_minutes)
    phone = normalize(call.other_number, state.region)
    client_id, lead_id = _party_ids(call)
    task = await state.notes.add_callback(
        call.id,
        manager.id,
        phone=phone.e164 or phone.value or call.other_number,
        title=title,
        due_at=due,
        client_id=client_id,
        lead_id=lead_id,
    )
    return web.json_response(_task_json(task), status=201)


def recording_path(recordings_dir: Path, recording_file: str) -> Path | None:
    """The recording's file inside ``recordings_dir``, or None; nothing outside that folder is ever returned."""
    try:
        base = recordings_dir.resolve(strict=True)
        stored = Path(recording_file)
        relative: Path | None = None
        if stored.is_absolute():
            for root in (recordings_dir, base):
                if stored.is_relative_to(root):
                    relative = stored.relative_to(root)
                    break
            # Recorded on the PBX under another mount point: only the file name is trusted.
            relative = relative or Path(stored.name)
        else:
            relative = stored
        candidate = (base / relative).resolve(strict=True)
    except (OSError, ValueError):
        return None
    if not candidate.is_relative_to(base) or not candidate.is_file():
        return None
    return candidate


async def get_recording(request: web.Request) -> web.FileResponse:
    """``GET /api/calls/{call_id}/recording``: the call's recording, only for those who may see the call."""
    state = request.app[STATE]
    _manager, call = await _visible_call(request)
    if not call.recording_file:
        raise _error(web.HTTPNotFound, "this call has no recording")
    path = recording_path(state.settings.recordings_dir, call.recording_file)
    if path is None:
        raise _error(web.HTTPNotFound, "the recording file is not available")
    return web.FileResponse(path, headers={"Cache-Control": "private, no-store"})


def add_routes(router: web.UrlDispatcher) -> None:
    """Mount the call APIs (all behind the session check)."""
    router.add_get("/api/calls", list_calls)
    router.add_get("/api/calls/{call_id}", get_call)
    router.add_post("/api/calls/{call_id}/notes", add_note)
    router.add_post("/api/calls/{call_id}/lead", create_lead)
    router.add_post("/api/calls/{call_id}/deals", create_deal)
    router.add_post("/api/calls/{call_id}/tasks", create_task)
    router.add_get("/api/calls/{call_id}/recording", get_recording)
