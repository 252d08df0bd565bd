"""The clients and leads JSON API (behind the session and CSRF checks): lists, cards, edits, notes, shares,
conversion, merges and timelines. Every answer is filtered by who asks (``crmtel.crm.models.Viewer``): a
record someone may not see is answered exactly like one that does not exist (404)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from decimal import Decimal

from aiohttp import web
from pydantic import BaseModel

from crmtel.config import DealsSettings
from crmtel.crm import export
from crmtel.crm.models import (
    ContactInput,
    Cursor,
    Kind,
    PartyChanges,
    PartyQuery,
    PhoneInput,
    Sort,
    Viewer,
)
from crmtel.crm.schemas import (
    ConvertIn,
    CrmSettingsOut,
    DuplicateOut,
    EditOut,
    IdOut,
    ManagerOut,
    ManagersOut,
    MergeIn,
    MergeOut,
    NoteIn,
    PartyCreate,
    PartyEdit,
    PartyListOut,
    PartyListQuery,
    SharesIn,
    TimelineQuery,
    card_out,
    cursor_of,
    encode_cursor,
    row_out,
)
from crmtel.crm.search import parse_query, visible
from crmtel.crm.service import (
    PHONE_KINDS,
    TASK_KINDS,
    clean_tags,
    email_valid,
    inn_valid,
    may_assign,
    phone_e164,
)
from crmtel.crm.timeline import page_out, timeline_cursor
from crmtel.domain import Manager, Role
from crmtel.errors import NotFound
from crmtel.phones import display
from crmtel.push.amounts import deal_amount
from crmtel.push.context import current_manager, translator
from crmtel.push.downloads import csv_stream
from crmtel.push.inputs import MAX_ID, InputError, read_body, read_query
from crmtel.recordings import locate
from crmtel.store.crm_lists import PartyLists
from crmtel.store.crm_merge import MergeForbidden, MergeRefused, PartyMerger
from crmtel.store.crm_parties import LeadConverted, PartyCards, StaleEdit
from crmtel.store.crm_timeline import TimelineCall, Timelines
from crmtel.store.managers import ManagerRepository
from crmtel.store.parties import NewClient, NewLead, PartyRepository

# Rows a CSV download reads from the store at a time (the memory it holds, whatever the list's length).
_CSV_BATCH = 500


def _naive(key: str) -> bool:
    # ValueError for what is no instant at all.
    return datetime.fromisoformat(key).tzinfo is None


def viewer_of(manager: Manager) -> Viewer:
    """Who asks, as the CRM's store filters by it."""
    return Viewer(manager.id, manager.role is Role.HEAD, frozenset(manager.extensions))


def json_out(model: BaseModel, status: int = 200) -> web.Response:
    """A response model as JSON."""
    return web.Response(text=model.model_dump_json(), status=status, content_type="application/json")


def error(
    request: web.Request, status: int, key: str, *, field: str | None = None, **params: object
) -> InputError:
    """A JSON 4xx in the asker's language, naming the field when there is one."""
    message = translator(request).t(key, **params)
    fields = [{"field": field, "message": message}] if field else None
    return InputError(message, status=status, key=key, fields=fields)


@dataclass(frozen=True, slots=True)
class CrmApi:
    """What the handlers use, built once by the composition root."""

    lists: PartyLists
    cards: PartyCards
    merger: PartyMerger
    timelines: Timelines
    parties: PartyRepository
    managers: ManagerRepository
    region: str
    recordings_dir: object
    deals: DealsSettings

    def fmt(self, numbers: Sequence[str]) -> dict[str, str]:
        """How each number is written for people."""
        return {n: display(n, self.region) for n in numbers}

    def show(self, number: str | None) -> str | None:
        """One number as written for people."""
        return display(number, self.region) if number else None


def _kind(request: web.Request) -> Kind:
    return Kind.CLIENT if request.match_info["kind"] == "clients" else Kind.LEAD


def _party_id(request: web.Request) -> int:
    value = int(request.match_info["party_id"])
    if value > MAX_ID:
        raise web.HTTPNotFound()
    return value


async def _manager_id(request: web.Request, api: CrmApi, login: str | None, me: Manager) -> int | None:
    if login is None or login == "none":
        return None
    if login == "me":
        return me.id
    found = await api.managers.by_login(login)
    if found is None or not found.active:
        raise error(request, 400, "crm.manager_unknown", field="manager")
    return found.id


def _phones(
    request: web.Request, api: CrmApi, phones: Sequence[object], field: str
) -> tuple[PhoneInput, ...]:
    out: dict[str, PhoneInput] = {}
    for i, phone in enumerate(phones):
        number, kind = getattr(phone, "number"), getattr(phone, "kind")  # noqa: B009
        e164 = phone_e164(number, api.region)
        if e164 is None:
            raise error(request, 400, "crm.phone_invalid", field=f"{field}.{i}.number", number=number[:64])
        out.setdefault(e164, PhoneInput(e164, kind))
    return tuple(out.values())


def _check_email(request: web.Request, email: str | None, field: str = "email") -> str | None:
    if not email:
        return None
    if not email_valid(email):
        raise error(request, 400, "crm.email_invalid", field=field)
    return email


def _check_inn(request: web.Request, inn: str | None) -> str | None:
    if not inn:
        return None
    digits = "".join(ch for ch in inn if not ch.isspace())
    if not inn_valid(digits):
        raise error(request, 400, "crm.inn_invalid", field="inn")
    return digits


async def _changes(
    request: web.Request, api: CrmApi, kind: Kind, body: PartyEdit, me: Manager, current: int | None
) -> PartyChanges:
    cleared: set[str] = set()

    def text(name: str, value: str | None) -> str | None:
        if value == "":
            cleared.add(name)
            return None
        return value

    manager_id = None
    unassign = False
    if body.manager is not None:
        wanted = await _manager_id(request, api, body.manager, me)
        if not may_assign(viewer_of(me), current, wanted):
            raise error(request, 403, "crm.assign_forbidden", field="manager")
        unassign = wanted is None
        manager_id = wanted
    contacts = None
    if body.contacts is not None:
        contacts = tuple(
            ContactInput(
                c.id,
                c.name,
                c.position or None,
                _check_email(request, c.email, f"contacts.{i}.email"),
                _phones(request, api, c.phones, f"contacts.{i}.phones"),
            )
            for i, c in enumerate(body.contacts)
        )
    turnover: Decimal | None = None
    if body.turnover is not None:
        if body.turnover.strip() == "":
            cleared.add("turnover")
        else:
            turnover = deal_amount(request, body.turnover)
    if body.status is not None and body.status == "refused" and not (body.refusal_reason or "").strip():
        raise error(request, 400, "crm.refusal_reason_required", field="refusal_reason")
    return PartyChanges(
        name=body.name,
        company=text("company", body.company) if kind is Kind.LEAD else None,
        person=body.person,
        category=text("category", body.category),
        email=text("email", _check_email(request, body.email) if body.email else body.email),
        inn=text("inn", _check_inn(request, body.inn) if body.inn else body.inn),
        tags=clean_tags(body.tags) if body.tags is not None else None,
        comment=text("comment", body.comment),
        turnover=turnover,
        stop_list=body.stop_list,
        status=body.status,
        refusal_reason=text("refusal_reason", body.refusal_reason),
        manager_id=manager_id,
        unassign=unassign,
        phones=_phones(request, api, body.phones, "phones") if body.phones is not None else None,
        contacts=contacts,
        cleared=frozenset(cleared),
    )


async def _party_query(
    request: web.Request, api: CrmApi, q: PartyListQuery, me: Manager, after: Cursor | None, limit: int
) -> PartyQuery:
    """The list's search, filters and sort as the store takes them (400 for an unknown manager)."""
    kind = _kind(request)
    manager_id = await _manager_id(request, api, q.manager, me) if q.manager not in (None, "none") else None
    return PartyQuery(
        kind=kind,
        tokens=parse_query(q.q, api.region),
        manager_id=manager_id,
        unassigned=q.manager == "none",
        open_deals=None if q.open_deals is None else q.open_deals == "yes",
        silent_days=q.silent_days,
        lead_status=q.status if kind is Kind.LEAD else None,
        sort=Sort(q.sort),
        after=after,
        limit=limit,
    )


def crm_routes(api: CrmApi) -> web.RouteTableDef:
    """The clients and leads API (mounted behind the session check)."""
    routes = web.RouteTableDef()
    kinds = "{kind:clients|leads}"
    one = kinds + r"/{party_id:\d{1,19}}"

    @routes.get("/api/managers")
    async def list_managers(request: web.Request) -> web.Response:
        current_manager(request)
        people = [m for m in await api.managers.all() if m.active]
        return json_out(
            ManagersOut(
                managers=[
                    ManagerOut(
                        id=m.id, login=m.login, name=m.name, role=m.role.value, extensions=list(m.extensions)
                    )
                    for m in sorted(people, key=lambda m: m.name.casefold())
                ]
            )
        )

    @routes.get("/api/crm/settings")
    async def crm_settings(request: web.Request) -> web.Response:
        current_manager(request)
        return json_out(
            CrmSettingsOut(
                stages=list(api.deals.stages),
                lost_reasons=list(api.deals.lost_reasons),
                phone_kinds=list(PHONE_KINDS),
                task_kinds=list(TASK_KINDS),
                region=api.region,
            )
        )

    @routes.get(f"/api/{kinds}")
    async def list_parties(request: web.Request) -> web.Response:
        me = current_manager(request)
        q = read_query(request, PartyListQuery)
        try:
            after = cursor_of(q.cursor)
            # A newest-first cursor carries an instant and no term (a term's cursor with sort=-created was a 500).
            newest = after is not None and q.sort == "-created"
            if newest and after is not None and (after.term is not None or _naive(after.key)):
                raise ValueError("cursor")
        except ValueError:
            raise error(request, 400, "crm.cursor_invalid", field="cursor") from None
        query = await _party_query(request, api, q, me, after, q.limit)
        if q.q.strip() and not query.tokens:
            return json_out(PartyListOut(items=[], next=None))
        page = await api.lists.page(query, viewer_of(me))
        numbers = api.fmt([p for item in page.items for p in item.phones])
        nxt = None
        if page.next is not None:
            parts: list[object] = [page.next.key, page.next.id]
            nxt = encode_cursor([*parts, page.next.term] if page.next.term is not None else parts)
        return json_out(PartyListOut(items=[row_out(i, numbers) for i in page.items], next=nxt))

    @routes.get(f"/api/{kinds}.csv")
    async def download_parties(request: web.Request) -> web.StreamResponse:
        """Every client or lead the list shows with these filters, in its order, as CSV: the list's own
        keyset pages (its cursor, never OFFSET) written as they come."""
        me = current_manager(request)
        q = read_query(request, export.PartyCsvQuery)
        query = await _party_query(request, api, q, me, None, _CSV_BATCH)
        tr = translator(request)

        async def batches() -> AsyncIterator[list[list[str]]]:
            page_query = query
            while page_query.tokens or not q.q.strip():
                page = await api.lists.page(page_query, viewer_of(me))
                numbers = api.fmt([p for item in page.items for p in item.phones])
                yield export.rows(page.items, numbers, tr)[1:]
                if page.next is None:
                    return
                page_query = replace(page_query, after=page.next)

        heading = export.rows([], {}, tr)[0]
        name = f"{request.match_info['kind']}.csv"
        return await csv_stream(request, heading, batches(), sep=q.sep, filename=name, numeric=export.NUMERIC)

    @routes.post(f"/api/{kinds}")
    async def create_party(request: web.Request) -> web.Response:
        me = current_manager(request)
        kind = _kind(request)
        body = await read_body(request, PartyCreate)
        phones = _phones(request, api, body.phones, "phones")
        email = _check_email(request, body.email)
        manager_id = await _manager_id(request, api, body.manager, me) if body.manager else me.id
        if manager_id != me.id and me.role is not Role.HEAD:
            raise error(request, 403, "crm.assign_forbidden", field="manager")
        if kind is Kind.CLIENT:
            created = await api.parties.add_client(
                NewClient(
                    name=body.name,
                    phones=tuple(p.e164 for p in phones),
                    kind="person" if body.person else "company",
                    manager_id=manager_id,
                    notes=body.comment or None,
                )
            )
            extra = PartyChanges(email=email, inn=_check_inn(request, body.inn), phones=phones)
        else:
            created = await api.parties.add_lead(
                NewLead(
                    name=body.name,
                    phones=tuple(p.e164 for p in phones),
                    company=body.company or None,
                    email=email,
                    source="manual",
                    manager_id=manager_id,
                )
            )
            extra = PartyChanges(phones=phones)
        await api.cards.edit(kind, created.id, Viewer(me.id, head=True), extra)
        return json_out(IdOut(id=created.id), status=201)

    @routes.get(f"/api/{one}")
    async def get_party(request: web.Request) -> web.Response:
        me = current_manager(request)
        kind = _kind(request)
        card = await api.cards.get(kind, _party_id(request), viewer_of(me))
        if card is None:
            raise error(request, 404, "crm.not_found")
        numbers = api.fmt([p.e164 for p in card.phones] + [p.e164 for c in card.contacts for p in c.phones])
        return json_out(card_out(card, numbers, can_assign=me.role is Role.HEAD or card.manager_id is None))

    @routes.patch(f"/api/{one}")
    async def edit_party(request: web.Request) -> web.Response:
        me = current_manager(request)
        kind = _kind(request)
        party_id = _party_id(request)
        viewer = viewer_of(me)
        current = await api.cards.get(kind, party_id, viewer)
        if current is None:
            raise error(request, 404, "crm.not_found")
        body = await read_body(request, PartyEdit)
        changes = await _changes(request, api, kind, body, me, current.manager_id)
        try:
            result = await api.cards.edit(kind, party_id, viewer, changes, version=body.version)
        except NotFound:
            raise error(request, 404, "crm.not_found") from None
        except StaleEdit:
            raise error(request, 409, "crm.stale") from None
        except LeadConverted:
            raise error(request, 409, "crm.convert_refused", field="status") from None
        card = result.card
        numbers = api.fmt([p.e164 for p in card.phones] + [p.e164 for c in card.contacts for p in c.phones])
        return json_out(
            EditOut(
                card=card_out(card, numbers, can_assign=me.role is Role.HEAD or card.manager_id is None),
                changed=sorted(result.changes),
                duplicates=[DuplicateOut(kind=d.kind.value, id=d.id, name=d.name) for d in result.duplicates],
            )
        )

    @routes.post(f"/api/{one}/notes")
    async def add_note(request: web.Request) -> web.Response:
        me = current_manager(request)
        body = await read_body(request, NoteIn)
        try:
            note_id = await api.cards.add_note(_kind(request), _party_id(request), viewer_of(me), body.text)
        except NotFound:
            raise error(request, 404, "crm.not_found") from None
        return json_out(IdOut(id=note_id), status=201)

    @routes.put(f"/api/{one}/shares")
    async def set_shares(request: web.Request) -> web.Response:
        me = current_manager(request)
        kind = _kind(request)
        party_id = _party_id(request)
        body = await read_body(request, SharesIn)
        ids = []
        for login in body.managers:
            found = await api.managers.by_login(login)
            if found is None:
                raise error(request, 400, "crm.manager_unknown", field="managers")
            ids.append(found.id)
        viewer = viewer_of(me)
        current = await api.cards.get(kind, party_id, viewer)
        if current is None:
            raise error(request, 404, "crm.not_found")
        if not (viewer.head or current.manager_id == me.id):
            raise error(request, 403, "crm.share_forbidden")
        card = await api.cards.share(kind, party_id, viewer, ids)
        numbers = api.fmt([p.e164 for p in card.phones])
        return json_out(card_out(card, numbers, can_assign=viewer.head or card.manager_id is None))

    @routes.post(r"/api/leads/{party_id:\d{1,19}}/convert")
    async def convert(request: web.Request) -> web.Response:
        me = current_manager(request)
        body = await read_body(request, ConvertIn)
        try:
            client_id = await api.merger.convert(
                _party_id(request),
                viewer_of(me),
                client_name=body.name if body.name and visible(body.name).strip() else None,
            )
        except NotFound:
            raise error(request, 404, "crm.not_found") from None
        except MergeRefused:
            raise error(request, 409, "crm.convert_refused") from None
        return json_out(IdOut(id=client_id), status=201)

    @routes.post(f"/api/{one}/merge")
    async def merge(request: web.Request) -> web.Response:
        me = current_manager(request)
        kind = _kind(request)
        body = await read_body(request, MergeIn)
        drop = Kind(body.kind)
        if drop is kind and body.id == _party_id(request):
            raise error(request, 400, "crm.merge_self", field="id")
        try:
            moved = await api.merger.merge(kind, _party_id(request), drop, body.id, viewer_of(me))
        except NotFound:
            raise error(request, 404, "crm.not_found") from None
        except MergeForbidden:
            raise error(request, 403, "crm.merge_forbidden", field="id") from None
        except MergeRefused:
            raise error(request, 409, "crm.merge_refused") from None
        return json_out(MergeOut(moved=moved))

    @routes.get(f"/api/{one}/timeline")
    async def timeline(request: web.Request) -> web.Response:
        me = current_manager(request)
        kind = _kind(request)
        party_id = _party_id(request)
        q = read_query(request, TimelineQuery)
        try:
            after = timeline_cursor(q.cursor)
        except ValueError:
            raise error(request, 400, "crm.cursor_invalid", field="cursor") from None
        viewer = viewer_of(me)
        card = await api.cards.get(kind, party_id, viewer)
        if card is None:
            raise error(request, 404, "crm.not_found")
        owner = viewer.head or card.manager_id == me.id or me.id in card.shared_with
        page = await api.timelines.page(kind, party_id, viewer, owner=owner, limit=q.limit, after=after)
        playable = await _playable(api, [i for i in page.items if isinstance(i, TimelineCall)])
        return json_out(page_out(page, api.show, playable))

    return routes


async def _playable(api: CrmApi, calls: Sequence[TimelineCall]) -> set[int]:
    """The calls whose recording file is really there (checked off the event loop: it may be a network mount)."""
    from pathlib import Path

    root = api.recordings_dir
    wanted = [(c.id, c.call.recording_file, c.call.started_at) for c in calls if c.call.recording_file]
    if not wanted or not isinstance(root, Path):
        return set()

    def look() -> set[int]:
        return {i for i, name, started in wanted if name and locate(root, name, started) is not None}

    return await asyncio.to_thread(look)
