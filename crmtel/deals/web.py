"""The deals JSON API: the list, the pipeline by stage, opening, moving, winning and losing deals."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import datetime
from typing import Annotated, Literal

from aiohttp import web
from pydantic import AwareDatetime, Field, StringConstraints

from crmtel.config import DealsSettings
from crmtel.crm.models import Kind, Viewer
from crmtel.crm.schemas import Login, Name, Out, PhoneOut, encode_cursor, phone_out, time_cursor
from crmtel.crm.web import error, json_out, viewer_of
from crmtel.deals import export
from crmtel.domain import DealStatus, Role
from crmtel.errors import NotFound
from crmtel.phones import display
from crmtel.push.amounts import AmountText, deal_amount
from crmtel.push.context import current_manager, translator
from crmtel.push.downloads import csv_stream
from crmtel.push.inputs import MAX_ID, Body, Query, ShortText, read_body, read_query
from crmtel.store.crm_deals import CrmDeals, DealChanges, DealView, NewCrmDeal, StageColumn
from crmtel.store.history import CallHistory, CallView, visible_to
from crmtel.store.managers import ManagerRepository
from crmtel.timestamps import as_utc, iso_instant

Stage = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=50)]


class DealListQuery(Query):
    """``GET /api/deals``: filters and the page."""

    status: Literal["open", "won", "lost"] | None = None
    stage: Stage | None = None
    manager: Login | None = None
    cursor: Annotated[str, StringConstraints(max_length=1000)] | None = None
    limit: Annotated[int, Field(ge=1, le=100)] = 50


class DealCsvQuery(Query):
    """``GET /api/deals.csv``: the list's filters, and ``sep=comma`` for a comma-separated file."""

    status: Literal["open", "won", "lost"] | None = None
    stage: Stage | None = None
    manager: Login | None = None
    sep: Literal["comma"] | None = None


class PipelineQuery(Query):
    """``GET /api/deals/pipeline``: one manager's pipeline (heads), or everyone's they may see."""

    manager: Login | None = None


class DealCreate(Body):
    """``POST /api/deals``: a deal for a client or lead (``call`` links it to the call it came from)."""

    kind: Literal["client", "lead"]
    party_id: Annotated[int, Field(ge=1, le=MAX_ID)]
    title: Name
    amount: AmountText = ""
    stage: Stage | None = None
    next_step: ShortText | None = None
    next_step_at: AwareDatetime | None = None
    call: Annotated[str, StringConstraints(max_length=200)] | None = None
    manager: Login | None = None


class DealEdit(Body):
    """``PATCH /api/deals/{id}``: move between stages, win, lose (with a reason), reopen, edit."""

    title: Name | None = None
    amount: AmountText | None = None
    stage: Stage | None = None
    status: Literal["open", "won", "lost"] | None = None
    lost_reason: ShortText | None = None
    next_step: ShortText | None = None
    next_step_at: AwareDatetime | None = None
    clear_next_step: bool = False
    manager: Login | None = None


class DealOut(Out):
    """A deal."""

    id: int
    title: str
    amount: str
    stage: str
    status: str
    client_id: int | None
    lead_id: int | None
    party_name: str | None
    # The party's numbers to call from the deal (own first, then contact persons', at most three); empty when
    # the asker may not see the party itself.
    phones: list[PhoneOut]
    manager_id: int | None
    manager_name: str | None
    call_id: str | None
    opened_at: str
    closed_at: str | None
    next_step: str | None
    next_step_at: str | None
    lost_reason: str | None


class DealListOut(Out):
    """A page of deals; ``next`` is the cursor of the following page."""

    items: list[DealOut]
    next: str | None


class StageOut(Out):
    """A pipeline column: the stage, its open deals' count and sum, and the newest deals."""

    stage: str
    count: int
    amount: str
    deals: list[DealOut]


class PipelineOut(Out):
    """The pipeline, stages in the configured order, and the reasons a deal may be lost."""

    stages: list[StageOut]
    lost_reasons: list[str]


def deal_out(deal: DealView, region: str) -> DealOut:
    """A deal for the API (numbers written as people write them in ``region``)."""
    return DealOut(
        id=deal.id,
        title=deal.title,
        amount=f"{deal.amount:.2f}",
        stage=deal.stage,
        status=deal.status,
        client_id=deal.client_id,
        lead_id=deal.lead_id,
        party_name=deal.party_name,
        phones=[phone_out(p, display(p.e164, region)) for p in deal.phones],
        manager_id=deal.manager_id,
        manager_name=deal.manager_name,
        call_id=deal.call_id,
        opened_at=iso_instant(deal.opened_at) or "",
        closed_at=iso_instant(deal.closed_at),
        next_step=deal.next_step,
        next_step_at=iso_instant(deal.next_step_at),
        lost_reason=deal.lost_reason,
    )


def _stage_out(column: StageColumn, region: str) -> StageOut:
    return StageOut(
        stage=column.stage,
        count=column.count,
        amount=f"{column.amount:.2f}",
        deals=[deal_out(d, region) for d in column.deals],
    )


def _utc(value: datetime | None) -> datetime | None:
    """A time from the API (always with its offset) as the UTC instant it is (stored as such)."""
    return None if value is None else as_utc(value)


def may_link(call: CallView, kind: str, party_id: int, viewer: Viewer) -> bool:
    """Whether a deal for (``kind``, ``party_id``), a record the viewer may see, may name ``call`` as the call
    it came from: a call with that very record, or one the viewer may see (a head: any; a manager: one that
    rang at or was answered on her phones, or that she owns) — never another manager's call with someone
    else, which would show her deal on his call's card."""
    if (call.party_kind, call.party_id) == (kind, party_id):
        return True
    return visible_to(call, None if viewer.head else viewer.extensions, viewer.manager_id)


def deal_routes(
    deals: CrmDeals, managers: ManagerRepository, calls: CallHistory, settings: DealsSettings, region: str
) -> web.RouteTableDef:
    """The deals API (behind the session check)."""
    routes = web.RouteTableDef()

    async def manager_id(request: web.Request, login: str | None) -> int | None:
        if login is None:
            return None
        found = await managers.by_login(login)
        if found is None:
            raise error(request, 400, "crm.manager_unknown", field="manager")
        return found.id

    @routes.get("/api/deals")
    async def list_deals(request: web.Request) -> web.Response:
        me = current_manager(request)
        q = read_query(request, DealListQuery)
        try:
            after = time_cursor(q.cursor)
        except ValueError:
            raise error(request, 400, "crm.cursor_invalid", field="cursor") from None
        found, nxt = await deals.find(
            viewer_of(me),
            status=q.status,
            stage=q.stage,
            manager_id=await manager_id(request, q.manager),
            after=after,
            limit=q.limit,
        )
        cursor = encode_cursor([nxt[0].isoformat(), nxt[1]]) if nxt else None
        return json_out(DealListOut(items=[deal_out(d, region) for d in found], next=cursor))

    @routes.get("/api/deals.csv")
    async def download_deals(request: web.Request) -> web.StreamResponse:
        """Every deal the list shows with these filters, newest first, as CSV: the list's keyset pages
        written as they come."""
        me = current_manager(request)
        q = read_query(request, DealCsvQuery)
        who = await manager_id(request, q.manager)
        tr = translator(request)

        async def batches() -> AsyncIterator[list[list[str]]]:
            after: tuple[datetime, int] | None = None
            while True:
                batch, after = await deals.find(
                    viewer_of(me),
                    status=q.status,
                    stage=q.stage,
                    manager_id=who,
                    after=after,
                    limit=500,
                    numbers=False,
                )
                yield export.rows(batch, tr)[1:]
                if after is None:
                    return

        heading = export.rows([], tr)[0]
        return await csv_stream(
            request, heading, batches(), sep=q.sep, filename="deals.csv", numeric=export.NUMERIC
        )

    @routes.get("/api/deals/pipeline")
    async def pipeline(request: web.Request) -> web.Response:
        me = current_manager(request)
        q = read_query(request, PipelineQuery)
        columns = await deals.pipeline(
            viewer_of(me), settings.stages, manager_id=await manager_id(request, q.manager)
        )
        return json_out(
            PipelineOut(
                stages=[_stage_out(c, region) for c in columns], lost_reasons=list(settings.lost_reasons)
            )
        )

    @routes.get(r"/api/deals/{deal_id:\d{1,19}}")
    async def get_deal(request: web.Request) -> web.Response:
        me = current_manager(request)
        deal_id = int(request.match_info["deal_id"])
        found = await deals.get(deal_id, viewer_of(me)) if deal_id <= MAX_ID else None
        if found is None:
            raise error(request, 404, "crm.deal_not_found")
        return json_out(deal_out(found, region))

    @routes.post("/api/deals")
    async def create_deal(request: web.Request) -> web.Response:
        me = current_manager(request)
        body = await read_body(request, DealCreate)
        owner = await manager_id(request, body.manager) if body.manager else me.id
        if owner != me.id and me.role is not Role.HEAD:
            raise error(request, 403, "crm.assign_forbidden", field="manager")
        if body.stage is not None and body.stage not in settings.stages:
            raise error(request, 400, "crm.stage_unknown", field="stage")
        call_row = None
        if body.call:
            call = await calls.get(body.call)
            # A call the manager may not see is answered like one that does not exist (not confirmed).
            if call is None or not may_link(call, body.kind, body.party_id, viewer_of(me)):
                raise error(request, 400, "crm.call_unknown", field="call")
            call_row = call.id
        try:
            created = await deals.create(
                NewCrmDeal(
                    kind=Kind(body.kind),
                    party_id=body.party_id,
                    title=body.title,
                    amount=deal_amount(request, body.amount),
                    stage=body.stage or settings.stages[0],
                    manager_id=owner,
                    next_step=body.next_step or None,
                    next_step_at=_utc(body.next_step_at),
                    call_id=call_row,
                ),
                viewer_of(me),
            )
        except NotFound:
            raise error(request, 404, "crm.not_found") from None
        return json_out(deal_out(created, region), status=201)

    @routes.patch(r"/api/deals/{deal_id:\d{1,19}}")
    async def edit_deal(request: web.Request) -> web.Response:
        me = current_manager(request)
        deal_id = int(request.match_info["deal_id"])
        body = await read_body(request, DealEdit)
        if body.status == "lost" and not (body.lost_reason or "").strip():
            raise error(request, 400, "crm.lost_reason_required", field="lost_reason")
        if body.lost_reason and body.lost_reason.strip() not in settings.lost_reasons:
            raise error(request, 400, "crm.lost_reason_unknown", field="lost_reason")
        if body.stage is not None and body.stage not in settings.stages:
            raise error(request, 400, "crm.stage_unknown", field="stage")
        if body.manager is not None and me.role is not Role.HEAD:
            raise error(request, 403, "crm.assign_forbidden", field="manager")
        cleared = frozenset({"next_step", "next_step_at"}) if body.clear_next_step else frozenset()
        changes = DealChanges(
            title=body.title,
            amount=deal_amount(request, body.amount) if body.amount is not None else None,
            stage=body.stage,
            status=DealStatus(body.status) if body.status else None,
            lost_reason=body.lost_reason.strip() if body.lost_reason else None,
            next_step=body.next_step or None,
            next_step_at=_utc(body.next_step_at),
            manager_id=await manager_id(request, body.manager),
            cleared=cleared,
        )
        try:
            updated = await deals.edit(deal_id if deal_id <= MAX_ID else 0, viewer_of(me), changes)
        except NotFound:
            raise error(request, 404, "crm.deal_not_found") from None
        return json_out(deal_out(updated, region))

    return routes
