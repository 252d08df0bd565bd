"""The call APIs behind the page: history, notes, leads, deals, callback tasks and recordings."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Mapping, Sequence
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, Literal

from aiohttp import web
from pydantic import AwareDatetime, Field, StrictInt, StringConstraints

from crmtel.domain import Manager, PartyKind
from crmtel.phones import normalize
from crmtel.push.amounts import AmountText, deal_amount
from crmtel.push.context import STATE, current_manager, translator, watch_scope
from crmtel.push.files import send_file
from crmtel.push.inputs import (
    MAX_ID,
    Body,
    LongText,
    Query,
    ShortText,
    read_body,
    read_json,
    read_query,
)
from crmtel.recordings import locate
from crmtel.store.deals import DealSummary, NewDeal
from crmtel.store.history import CallFilter, CallView, visible_to
from crmtel.store.notes import CallbackTask, Note, PartyConflict
from crmtel.store.parties import NewLead
from crmtel.timestamps import as_utc, iso_instant

MAX_DUE_MINUTES = 60 * 24 * 90
# What Asterisk's MixMonitor writes (wav, WAV49 as .WAV, gsm) and what FreePBX converts to.
_AUDIO_TYPES = {".wav": "audio/wav", ".gsm": "audio/x-gsm", ".mp3": "audio/mpeg", ".ogg": "audio/ogg"}


def refuse(
    request: web.Request, cls: type[web.HTTPException], key: str, **params: object
) -> web.HTTPException:
    """A JSON 4xx in the asker's language; ``code`` is the catalogue key (stable, for the page and tests)."""
    text = translator(request).t(key, **params)
    return cls(
        text=json.dumps({"error": text, "code": key}, ensure_ascii=False), content_type="application/json"
    )


class BadRequest(web.HTTPBadRequest):
    """A 400 with a JSON body saying what was wrong."""

    def __init__(self, message: str) -> None:
        super().__init__(text=json.dumps({"error": message}), content_type="application/json")


async def json_body(request: web.Request) -> dict[str, Any]:
    """The request's JSON object, parsed with the bounded loader (new handlers use ``inputs.read_body``)."""
    data = await read_json(request)
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
    return iso_instant(value)


def call_json(
    call: CallView,
    *,
    playable: bool = True,
    names: dict[str, str] | None = None,
    logins: Mapping[int, str] | None = None,
) -> dict[str, Any]:
    """A recorded call for the history list; ``recording`` only when there is a file to play; ``names``
    (extension → manager) adds who answered and who rang by name; ``manager`` is the owner's login."""
    names = names or {}
    return {
        "manager": (logins or {}).get(call.manager_id) if call.manager_id is not None else None,
        "answered_by_name": names.get(call.answered_by or ""),
        "rang_names": [names.get(ext) for ext in call.rang],
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
        "answered_on": call.answered_on,
        "transferred_to": call.transferred_to,
        "queue": call.queue,
        "outcome": call.outcome,
        "missed_reason": call.missed_reason,
        "ring_seconds": round(call.ring_seconds, 1),
        "talk_seconds": round(call.talk_seconds, 1),
        "party_kind": call.party_kind,
        "party_id": call.party_id,
        "party_name": call.party_name,
        "result": call.result,
        "recording": f"/api/calls/{call.call_id}/recording" if call.recording_file and playable else None,
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


async def visible_call(request: web.Request) -> tuple[Manager, CallView]:
    """The manager asking and the call they named, if they may see it (else a 404, or a 409 while not stored)."""
    return await _visible_call(request)


async def _visible_call(request: web.Request) -> tuple[Manager, CallView]:
    state = request.app[STATE]
    manager = current_manager(request)
    scope = watch_scope(manager)
    call_id = request.match_info["call_id"]
    involved_live = scope is not None and state.hub.live.involves(call_id, scope)
    view = await state.history.get(call_id)
    if view is None:
        if involved_live:
            raise refuse(request, web.HTTPConflict, "messages.call_not_recorded")
        raise refuse(request, web.HTTPNotFound, "messages.call_not_found")
    if not (
        visible_to(view, scope, manager.id) or involved_live or await _party_is_mine(request, manager, view)
    ):
        # The same answer as for a call that does not exist: others' calls are not even confirmed.
        raise refuse(request, web.HTTPNotFound, "messages.call_not_found")
    return manager, view


async def _party_is_mine(request: web.Request, manager: Manager, view: CallView) -> bool:
    """A call with a client or lead the manager is responsible for (or that is shared with them) is theirs to
    see and hear, whoever answered it: the client's whole history is on its card."""
    if view.party_kind not in ("client", "lead") or view.party_id is None:
        return False
    return await request.app[STATE].parties.owned_by(view.party_kind, view.party_id, manager.id)


async def _playable(request: web.Request, calls: Sequence[CallView]) -> set[str]:
    """The calls whose recording file is really there (a player for a missing file would only show 0:00)."""
    root = request.app[STATE].settings.recordings_dir
    wanted = [(c.call_id, c.recording_file, c.started_at, c.linkedid) for c in calls if c.recording_file]
    if not wanted:
        return set()

    def look() -> set[str]:
        return {cid for cid, name, started, key in wanted if locate(root, name, started, key) is not None}

    # A few stat() calls, but on a network mount they may block: off the event loop.
    return await asyncio.to_thread(look)


class CallsQuery(Query):
    """``?limit=&before=`` of the history list, and its filters (a head's drill-down from the report)."""

    limit: int = Field(default=50, ge=1, le=200)
    before: int | None = Field(default=None, ge=1, le=MAX_ID)
    manager: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=100)] | None = (
        None
    )
    from_: AwareDatetime | None = Field(default=None, alias="from")
    to: AwareDatetime | None = None
    direction: Literal["inbound", "outbound", "internal"] | None = None
    outcome: Literal["answered", "missed"] | None = None
    number: Annotated[str, StringConstraints(strip_whitespace=True, max_length=64)] | None = None
    recording: Literal["yes"] | None = None


def call_filter(request: web.Request, q: CallsQuery, people: Sequence[Manager]) -> CallFilter:
    """The list's filters as the store takes them (400 for a manager login nobody has)."""
    only = CallFilter(
        since=as_utc(q.from_) if q.from_ else None,
        until=as_utc(q.to) if q.to else None,
        direction=q.direction,
        outcome=q.outcome,
        digits="".join(ch for ch in q.number or "" if ch.isdigit())[-10:] or None,
        recording=q.recording == "yes",
    )
    if q.manager is not None:
        who = next((m for m in people if m.login == q.manager), None)
        if who is None:
            raise refuse(request, web.HTTPBadRequest, "crm.manager_unknown")
        only = replace(only, manager_id=who.id, manager_extensions=who.extensions)
    return only


async def list_calls(request: web.Request) -> web.Response:
    """``GET /api/calls?limit=&before=&manager=&from=&to=&direction=&outcome=&number=&recording=``: the newest
    calls the manager may see, narrowed by the filters, with the managers' names beside their extensions."""
    state = request.app[STATE]
    q = read_query(request, CallsQuery)
    me = current_manager(request)
    people = await state.managers.all()
    only = call_filter(request, q, people)
    calls = await state.history.list(
        watch_scope(me), limit=q.limit, before_id=q.before, only=only, owner_id=me.id
    )
    playable = await _playable(request, calls)
    names = {ext: m.name for m in people for ext in m.extensions}
    logins = {m.id: m.login for m in people}
    return web.json_response(
        {"calls": [call_json(c, playable=c.call_id in playable, names=names, logins=logins) for c in calls]}
    )


async def get_call(request: web.Request) -> web.Response:
    """``GET /api/calls/{call_id}``: one call with its notes, deals and tasks."""
    state = request.app[STATE]
    _manager, call = await _visible_call(request)
    notes = await state.notes.for_call(call.id)
    deals = await state.deals.for_calls([call.id])
    tasks = await state.notes.tasks_for_call(call.id)
    owner = await state.managers.get(call.manager_id) if call.manager_id is not None else None
    logins = {owner.id: owner.login} if owner is not None else {}
    names = {ext: m.name for m in await state.managers.all() for ext in m.extensions}
    playable = call.call_id in await _playable(request, [call])
    return web.json_response(
        {
            "call": call_json(call, playable=playable, names=names, logins=logins),
            "notes": [_note_json(n) for n in notes],
            "deals": [_deal_json(d) for d in deals],
            "tasks": [_task_json(t) for t in tasks],
        }
    )


class NoteBody(Body):
    """The result of a call."""

    topic: ShortText = ""
    result: ShortText = ""
    comment: LongText = ""


async def add_note(request: web.Request) -> web.Response:
    """``POST /api/calls/{call_id}/notes``: the result of the call (topic, result, comment)."""
    state = request.app[STATE]
    manager, call = await _visible_call(request)
    body = await read_body(request, NoteBody)
    if not (body.topic or body.result or body.comment):
        raise refuse(request, web.HTTPBadRequest, "messages.note_empty")
    note = await state.notes.add(
        call.id, manager.id, topic=body.topic, result=body.result, comment=body.comment
    )
    return web.json_response(_note_json(note), status=201)


class LeadBody(Body):
    """The lead made from a call's caller."""

    name: Annotated[ShortText, Field(min_length=1)]
    company: ShortText = ""
    email: ShortText = ""


async def create_lead(request: web.Request) -> web.Response:
    """``POST /api/calls/{call_id}/lead``: make the caller a lead (or fill in the lead the call already has)."""
    state = request.app[STATE]
    manager, call = await _visible_call(request)
    body = await read_body(request, LeadBody)
    name, company, email = body.name, body.company or None, body.email or None
    if call.party_kind == PartyKind.CLIENT.value:
        raise refuse(request, web.HTTPConflict, "messages.caller_is_client")
    phone = normalize(call.other_number, state.region)
    if phone.e164 is None and call.party_id is None:
        raise refuse(request, web.HTTPBadRequest, "messages.caller_no_number")
    lead = NewLead(
        name=name, phones=(phone.raw,), company=company, email=email, source="call", manager_id=manager.id
    )
    try:
        saved = await state.notes.lead_for_call(
            call.id, lead, [(phone.e164, phone.raw)] if phone.e164 else []
        )
    except PartyConflict as err:
        raise refuse(request, web.HTTPConflict, "messages.caller_is_client") from err
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


class DealBody(Body):
    """A deal opened from a call; ``amount`` as typed (``150 000,50``) or a JSON number; empty means 0."""

    title: Annotated[ShortText, Field(min_length=1)]
    amount: AmountText = ""


async def create_deal(request: web.Request) -> web.Response:
    """``POST /api/calls/{call_id}/deals``: open a deal for the call's client or lead."""
    state = request.app[STATE]
    manager, call = await _visible_call(request)
    body = await read_body(request, DealBody)
    title, amount = body.title, deal_amount(request, body.amount)
    client_id, lead_id = _party_ids(call)
    if client_id is None and lead_id is None:
        raise refuse(request, web.HTTPConflict, "messages.deal_needs_party")
    deal = await state.deals.add(
        NewDeal(
            title=title,
            amount=amount,
            manager_id=manager.id,
            client_id=client_id,
            lead_id=lead_id,
            call_id=call.id,
        )
    )
    return web.json_response(_deal_json(deal), status=201)


class TaskBody(Body):
    """A callback task: due at a moment (with its offset) or in a number of minutes."""

    title: ShortText = ""
    due_at: AwareDatetime | None = None
    due_minutes: Annotated[StrictInt, Field(ge=1, le=MAX_DUE_MINUTES)] | None = None


def _due_at(request: web.Request, body: TaskBody, default_minutes: int) -> datetime:
    now = datetime.now(UTC)
    if body.due_at is not None:
        if not now - timedelta(days=366) <= body.due_at <= now + timedelta(days=3660):
            raise refuse(request, web.HTTPBadRequest, "messages.due_at_range")
        # The instant the page meant, in UTC (10:00+03:00 is 07:00Z), as everything is stored.
        return as_utc(body.due_at)
    return now + timedelta(minutes=body.due_minutes or default_minutes)


async def create_task(request: web.Request) -> web.Response:
    """``POST /api/calls/{call_id}/tasks``: a callback task for this manager, attached to the call."""
    state = request.app[STATE]
    manager, call = await _visible_call(request)
    body = await read_body(request, TaskBody)
    title = body.title or translator(request).t("messages.task_default_title")
    due = _due_at(request, body, state.callback_due_minutes)
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


async def get_recording(request: web.Request) -> web.StreamResponse:
    """``GET /api/calls/{call_id}/recording``: the call's recording, only for those who may see the call."""
    state = request.app[STATE]
    _manager, call = await _visible_call(request)
    if not call.recording_file:
        raise refuse(request, web.HTTPNotFound, "messages.no_recording")
    path = locate(state.settings.recordings_dir, call.recording_file, call.started_at, call.linkedid)
    if path is None:
        raise refuse(request, web.HTTPNotFound, "messages.recording_missing")
    # The system's MIME table varies (audio/x-wav, audio/wave…); browsers all play the registered names.
    kind = _AUDIO_TYPES.get(path.suffix.lower(), "application/octet-stream")
    try:
        return await send_file(
            request, path, content_type=kind, headers={"Cache-Control": "private, no-store"}
        )
    except (FileNotFoundError, PermissionError, IsADirectoryError) as err:
        # Gone or unreadable between finding and opening it (rotated, permissions).
        raise refuse(request, web.HTTPNotFound, "messages.recording_missing") from err


def add_routes(router: web.UrlDispatcher) -> None:
    """Mount the call APIs (all behind the session check)."""
    router.add_get("/api/calls", list_calls)
    router.add_get("/api/calls/{call_id}", get_call)
    router.add_post("/api/calls/{call_id}/notes", add_note)
    router.add_post("/api/calls/{call_id}/lead", create_lead)
    router.add_post("/api/calls/{call_id}/deals", create_deal)
    router.add_post("/api/calls/{call_id}/tasks", create_task)
    router.add_get("/api/calls/{call_id}/recording", get_recording)
