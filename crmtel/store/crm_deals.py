"""Deals as the deal list and the pipeline see them: listed, grouped by stage, moved, won or lost, audited."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import ColumnElement, and_, exists, func, or_, select, tuple_
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased

from crmtel.crm.models import Kind, PhoneView, Viewer
from crmtel.domain import DealStatus
from crmtel.errors import NotFound
from crmtel.store.crm_lists import table_of, visible
from crmtel.store.crm_parties import audit_in, may_see_in
from crmtel.store.db import Database
from crmtel.store.models import CallRow, ClientRow, DealRow, LeadRow, ManagerRow, PartyShareRow
from crmtel.store.party_numbers import CHUNK, numbers_in
from crmtel.timestamps import assume_utc

_OWN_CLIENT = aliased(ClientRow)
_OWN_LEAD = aliased(LeadRow)


@dataclass(frozen=True, slots=True)
class DealView:
    """A deal with the names the list shows."""

    id: int
    title: str
    amount: Decimal
    stage: str
    status: str
    client_id: int | None
    lead_id: int | None
    party_name: str | None
    manager_id: int | None
    manager_name: str | None
    call_id: str | None
    opened_at: datetime
    closed_at: datetime | None
    next_step: str | None
    next_step_at: datetime | None
    lost_reason: str | None
    updated_at: datetime | None
    # The party's numbers, to be called from the deal: only when the viewer may see the party itself (a
    # manager's deal with a colleague's client shows its name, not the colleague's client's numbers).
    phones: tuple[PhoneView, ...] = ()


@dataclass(frozen=True, slots=True)
class StageColumn:
    """One column of the pipeline: its open deals' count and sum, and the newest of them."""

    stage: str
    count: int
    amount: Decimal
    deals: tuple[DealView, ...]


@dataclass(frozen=True, slots=True)
class DealChanges:
    """What an edit of a deal sets (None: unchanged)."""

    title: str | None = None
    amount: Decimal | None = None
    stage: str | None = None
    status: DealStatus | None = None
    lost_reason: str | None = None
    next_step: str | None = None
    next_step_at: datetime | None = None
    manager_id: int | None = None
    cleared: frozenset[str] = frozenset()


@dataclass(frozen=True, slots=True)
class NewCrmDeal:
    """A deal opened from a client's or lead's card (or the deal list)."""

    kind: Kind
    party_id: int
    title: str
    amount: Decimal
    stage: str
    manager_id: int | None
    next_step: str | None = None
    next_step_at: datetime | None = None
    call_id: int | None = None


def deal_scope(viewer: Viewer) -> ColumnElement[bool] | None:
    """The deals a viewer may see: all for a head; a manager's own deals and those of their own or shared
    clients and leads."""
    if viewer.head:
        return None
    me = viewer.manager_id
    shared = exists().where(
        PartyShareRow.manager_id == me,
        or_(
            and_(PartyShareRow.kind == "client", PartyShareRow.party_id == DealRow.client_id),
            and_(PartyShareRow.kind == "lead", PartyShareRow.party_id == DealRow.lead_id),
        ),
    )
    return or_(
        DealRow.manager_id == me,
        # Aliases: the list's own query joins clients and leads, which would swallow these subqueries.
        exists().where(_OWN_CLIENT.id == DealRow.client_id, _OWN_CLIENT.manager_id == me),
        exists().where(_OWN_LEAD.id == DealRow.lead_id, _OWN_LEAD.manager_id == me),
        shared,
    )


def _select() -> Any:
    return (
        select(DealRow, ClientRow.name, LeadRow.name, ManagerRow.name, CallRow.pbx, CallRow.linkedid)
        .outerjoin(ClientRow, ClientRow.id == DealRow.client_id)
        .outerjoin(LeadRow, LeadRow.id == DealRow.lead_id)
        .outerjoin(ManagerRow, ManagerRow.id == DealRow.manager_id)
        .outerjoin(CallRow, CallRow.id == DealRow.call_id)
    )


def _view(row: Sequence[Any]) -> DealView:
    deal, cname, lname, mname, pbx, linkedid = row
    return DealView(
        id=deal.id,
        title=deal.title,
        amount=Decimal(deal.amount),
        stage=deal.stage,
        status=deal.status,
        client_id=deal.client_id,
        lead_id=deal.lead_id,
        party_name=cname or lname,
        manager_id=deal.manager_id,
        manager_name=mname,
        call_id=f"{pbx}:{linkedid}" if pbx is not None else None,
        opened_at=assume_utc(deal.opened_at) or deal.opened_at,
        closed_at=assume_utc(deal.closed_at),
        next_step=deal.next_step,
        next_step_at=assume_utc(deal.next_step_at),
        lost_reason=deal.lost_reason,
        updated_at=assume_utc(deal.updated_at),
    )


def _party(view: DealView) -> tuple[Kind, int] | None:
    """Whose deal it is: the client, else the lead (a converted lead's deal stays with its client)."""
    if view.client_id is not None:
        return Kind.CLIENT, view.client_id
    if view.lead_id is not None:
        return Kind.LEAD, view.lead_id
    return None


async def _visible_ids(session: AsyncSession, kind: Kind, ids: set[int], viewer: Viewer) -> set[int]:
    """Those of the parties ``ids`` of ``kind`` the viewer may see."""
    scope = visible(kind, viewer)
    if scope is None or not ids:
        return ids
    t = table_of(kind)
    ordered = sorted(ids)
    seen: set[int] = set()
    for start in range(0, len(ordered), CHUNK):
        chunk = ordered[start : start + CHUNK]
        seen.update((await session.execute(select(t.id).where(t.id.in_(chunk), scope))).scalars())
    return seen


async def _with_numbers(session: AsyncSession, views: Sequence[DealView], viewer: Viewer) -> list[DealView]:
    """The deals with their parties' numbers, for the parties the viewer may see (their cards' rule)."""
    wanted: dict[Kind, set[int]] = {Kind.CLIENT: set(), Kind.LEAD: set()}
    for view in views:
        if (party := _party(view)) is not None:
            wanted[party[0]].add(party[1])
    numbers: dict[tuple[Kind, int], tuple[PhoneView, ...]] = {}
    for kind, ids in wanted.items():
        seen = await _visible_ids(session, kind, ids, viewer)
        for pid, phones in (await numbers_in(session, kind, seen)).items():
            numbers[(kind, pid)] = phones
    out = []
    for view in views:
        party = _party(view)
        out.append(replace(view, phones=numbers.get(party, ())) if party is not None else view)
    return out


async def _visible_deal(session: AsyncSession, deal_id: int, viewer: Viewer) -> DealRow | None:
    stmt = select(DealRow).where(DealRow.id == deal_id)
    if (scope := deal_scope(viewer)) is not None:
        stmt = stmt.where(scope)
    return (await session.execute(stmt)).scalar_one_or_none()


class CrmDeals:
    """The deal list, the pipeline and deal edits."""

    def __init__(self, db: Database) -> None:
        self._db = db

    async def find(
        self,
        viewer: Viewer,
        *,
        status: str | None = None,
        stage: str | None = None,
        manager_id: int | None = None,
        after: tuple[datetime, int] | None = None,
        limit: int = 50,
        numbers: bool = True,
    ) -> tuple[list[DealView], tuple[datetime, int] | None]:
        """Deals newest first (keyset on opened time and id), and where the next page starts; ``numbers``:
        with the parties' numbers (the download has no use for them)."""
        stmt = _select()
        if (scope := deal_scope(viewer)) is not None:
            stmt = stmt.where(scope)
        if status:
            stmt = stmt.where(DealRow.status == status)
        if stage:
            stmt = stmt.where(DealRow.stage == stage)
        if manager_id is not None:
            stmt = stmt.where(DealRow.manager_id == manager_id)
        if after is not None:
            stmt = stmt.where(tuple_(DealRow.opened_at, DealRow.id) < tuple_(after[0], after[1]))
        stmt = stmt.order_by(DealRow.opened_at.desc(), DealRow.id.desc()).limit(limit + 1)
        async with self._db.session() as session:
            rows = [_view(r) for r in (await session.execute(stmt)).all()]
            nxt = (rows[limit - 1].opened_at, rows[limit - 1].id) if len(rows) > limit else None
            page = rows[:limit]
            return (await _with_numbers(session, page, viewer) if numbers else page), nxt

    async def pipeline(
        self, viewer: Viewer, stages: Sequence[str], *, manager_id: int | None = None, per_stage: int = 50
    ) -> list[StageColumn]:
        """The open deals by stage (configured stages first, then any other stage found), with sums."""
        conds: list[ColumnElement[bool]] = [DealRow.status == DealStatus.OPEN.value]
        if (scope := deal_scope(viewer)) is not None:
            conds.append(scope)
        if manager_id is not None:
            conds.append(DealRow.manager_id == manager_id)
        async with self._db.session() as session:
            sums = {
                stage: (int(n), Decimal(total or 0))
                for stage, n, total in (
                    await session.execute(
                        select(DealRow.stage, func.count(), func.sum(DealRow.amount))
                        .where(*conds)
                        .group_by(DealRow.stage)
                    )
                ).all()
            }
            order = [*stages, *sorted(s for s in sums if s not in stages)]
            columns = []
            for stage in order:
                rows = (
                    await session.execute(
                        _select()
                        .where(*conds, DealRow.stage == stage)
                        .order_by(DealRow.opened_at.desc(), DealRow.id.desc())
                        .limit(per_stage)
                    )
                ).all()
                n, total = sums.get(stage, (0, Decimal(0)))
                columns.append(StageColumn(stage, n, total, tuple(_view(r) for r in rows)))
            shown = iter(await _with_numbers(session, [d for c in columns for d in c.deals], viewer))
            return [replace(c, deals=tuple(next(shown) for _ in c.deals)) for c in columns]

    async def get(self, deal_id: int, viewer: Viewer) -> DealView | None:
        """One deal, if the viewer may see it."""
        return await self._read(deal_id, viewer, viewer)

    async def _read(self, deal_id: int, scope_of: Viewer, viewer: Viewer) -> DealView | None:
        """One deal within ``scope_of``'s deals, with the numbers ``viewer`` may see."""
        async with self._db.session() as session:
            stmt = _select().where(DealRow.id == deal_id)
            if (scope := deal_scope(scope_of)) is not None:
                stmt = stmt.where(scope)
            row = (await session.execute(stmt)).first()
            if row is None:
                return None
            (found,) = await _with_numbers(session, [_view(row)], viewer)
            return found

    async def create(self, deal: NewCrmDeal, viewer: Viewer) -> DealView:
        """Open a deal for a client or lead the viewer may see (NotFound otherwise)."""
        now = datetime.now(UTC)
        async with self._db.session() as session:
            if await may_see_in(session, deal.kind, deal.party_id, viewer) is None:
                raise NotFound(f"{deal.kind.value} {deal.party_id}")
            row = DealRow(
                title=deal.title,
                amount=deal.amount,
                stage=deal.stage,
                status=DealStatus.OPEN.value,
                manager_id=deal.manager_id,
                client_id=deal.party_id if deal.kind is Kind.CLIENT else None,
                lead_id=deal.party_id if deal.kind is Kind.LEAD else None,
                call_id=deal.call_id,
                next_step=deal.next_step,
                next_step_at=deal.next_step_at,
                opened_at=now,
                updated_at=now,
            )
            session.add(row)
            await session.flush()
            await audit_in(session, viewer.manager_id, "deal", row.id, "create", {"title": deal.title}, now)
            deal_id = row.id
        # Read back whatever it became (a head may have given it to a colleague), numbers as the editor may see them.
        found = await self._read(deal_id, Viewer(viewer.manager_id, head=True), viewer)
        assert found is not None
        return found

    async def edit(self, deal_id: int, viewer: Viewer, changes: DealChanges) -> DealView:
        """Change a deal; won/lost close it (``closed_at`` now, what the reports count), open reopens it."""
        now = datetime.now(UTC)
        async with self._db.session() as session:
            row = await _visible_deal(session, deal_id, viewer)
            if row is None:
                raise NotFound(f"deal {deal_id}")
            diff: dict[str, object] = {}

            def put(field: str, value: object) -> None:
                old = getattr(row, field)
                if old != value:
                    diff[field] = [_plain(old), _plain(value)]
                    setattr(row, field, value)

            for field in (
                "title",
                "amount",
                "stage",
                "next_step",
                "next_step_at",
                "manager_id",
                "lost_reason",
            ):
                if field in changes.cleared:
                    put(field, None)
                elif (value := getattr(changes, field)) is not None:
                    put(field, value)
            if changes.status is not None and changes.status.value != row.status:
                put("status", changes.status.value)
                if changes.status is DealStatus.OPEN:
                    row.closed_at = None
                    row.lost_reason = None
                else:
                    row.closed_at = now
                if changes.status is not DealStatus.LOST:
                    row.lost_reason = None
            if diff:
                row.updated_at = now
                await audit_in(session, viewer.manager_id, "deal", deal_id, "edit", diff, now)
        # Read back whatever it became (a head may have given it to a colleague), numbers as the editor may see them.
        found = await self._read(deal_id, Viewer(viewer.manager_id, head=True), viewer)
        assert found is not None
        return found


def _plain(value: object) -> object:
    if isinstance(value, Decimal):
        return f"{value:.2f}"
    if isinstance(value, datetime):
        return (assume_utc(value) or value).isoformat()
    return value
