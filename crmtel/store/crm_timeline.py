"""A client's or lead's timeline: calls (with their notes), notes, deals and tasks in one time-ordered list.

Each source is read newest first from its own index, at most one page of it, after the cursor; the pages are
merged in Python. Order: time descending, then kind, then id (the cursor is that triple), so paging never
skips nor repeats an item however many share a second. A client with 5,000 calls costs four index range
reads of 50 rows.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import ColumnElement, and_, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from crmtel.crm.models import Kind, Viewer
from crmtel.store.db import Database
from crmtel.store.history import CallView, _view, visible_to
from crmtel.store.models import CallNoteRow, CallRow, DealRow, ExtensionRow, ManagerRow, PartyNoteRow, TaskRow
from crmtel.store.notes import Note
from crmtel.timestamps import assume_utc


@dataclass(frozen=True, slots=True)
class TimelineCall:
    """A call with the party, and what was written about it."""

    at: datetime
    id: int
    call: CallView
    notes: tuple[Note, ...]
    # The name of the manager on the answering extension only (None for a missed call); the call's owner is
    # ``manager_name`` («ответственный»), never shown as who answered.
    answered_by_name: str | None
    manager_name: str | None = None


@dataclass(frozen=True, slots=True)
class TimelineNote:
    """A note on the party."""

    at: datetime
    id: int
    text: str
    manager_id: int | None
    manager_name: str | None


@dataclass(frozen=True, slots=True)
class TimelineDeal:
    """A deal of the party (at its opening)."""

    at: datetime
    id: int
    title: str
    amount: Decimal
    stage: str
    status: str
    closed_at: datetime | None
    lost_reason: str | None
    call_id: int | None
    manager_name: str | None


@dataclass(frozen=True, slots=True)
class TimelineTask:
    """A task about the party (at its due time)."""

    at: datetime
    id: int
    title: str
    status: str
    result: str | None
    closed_by_call_id: int | None
    manager_name: str | None


TimelineItem = TimelineCall | TimelineNote | TimelineDeal | TimelineTask
# Kinds in the order ties are broken (descending, like the times).
KIND_OF = {TimelineCall: "call", TimelineDeal: "deal", TimelineNote: "note", TimelineTask: "task"}


@dataclass(frozen=True, slots=True)
class TimelineCursor:
    """The last item of a page: its time, kind and id."""

    at: datetime
    kind: str
    id: int


@dataclass(frozen=True, slots=True)
class TimelinePage:
    """Items newest first, and the cursor of the next page (None: no more)."""

    items: tuple[TimelineItem, ...]
    next: TimelineCursor | None


def _after(kind: str, at_col: Any, id_col: Any, cursor: TimelineCursor | None) -> ColumnElement[bool] | None:
    if cursor is None:
        return None
    cond: ColumnElement[bool]
    if kind < cursor.kind:
        cond = at_col <= cursor.at
    elif kind == cursor.kind:
        cond = or_(at_col < cursor.at, and_(at_col == cursor.at, id_col < cursor.id))
    else:
        cond = at_col < cursor.at
    return cond


def _key(item: TimelineItem) -> tuple[datetime, str, int]:
    return (item.at, KIND_OF[type(item)], item.id)


# Calls read at a time while looking for those a manager may see on a record that is not hers.
_CALL_BATCH = 500


async def _calls(
    session: AsyncSession,
    kind: Kind,
    party_id: int,
    only_for: Viewer | None,
    limit: int,
    after: TimelineCursor | None,
) -> tuple[list[CallRow], bool]:
    """Up to ``limit`` of the record's calls after the cursor, newest first, and whether there may be more.

    ``only_for``: a manager on a record that is not hers sees only the calls that rang at her phones or that
    she owns; the calls are read in batches until ``limit`` of those are found, so a page of other people's
    calls never hides hers further back (nor ends the timeline early).
    """
    base = [CallRow.party_kind == kind.value, CallRow.party_id == party_id]
    if (c := _after("call", CallRow.started_at, CallRow.id, after)) is not None:
        base.append(c)
    batch = limit if only_for is None else max(limit, _CALL_BATCH)
    found: list[CallRow] = []
    last: CallRow | None = None
    while True:
        conds = list(base)
        if last is not None:
            conds.append(
                or_(
                    CallRow.started_at < last.started_at,
                    and_(CallRow.started_at == last.started_at, CallRow.id < last.id),
                )
            )
        rows = list(
            (
                await session.execute(
                    select(CallRow)
                    .where(*conds)
                    .order_by(CallRow.started_at.desc(), CallRow.id.desc())
                    .limit(batch)
                )
            ).scalars()
        )
        if only_for is None:
            return rows, len(rows) == limit
        for row in rows:
            if visible_to(_view(row), only_for.extensions, only_for.manager_id):
                found.append(row)
                if len(found) == limit:
                    return found, True
        if len(rows) < batch:
            return found, False
        last = rows[-1]


class Timelines:
    """Timelines over the record store."""

    def __init__(self, db: Database) -> None:
        self._db = db

    async def page(
        self,
        kind: Kind,
        party_id: int,
        viewer: Viewer,
        *,
        owner: bool,
        limit: int = 50,
        after: TimelineCursor | None = None,
    ) -> TimelinePage:
        """One page of the timeline. ``owner``: the viewer's own or shared record, whose every call they may
        see; otherwise (an unassigned record) a manager sees only calls that rang at their phones."""
        names: dict[int, str] = {}
        answerers: dict[str, str] = {}
        items: list[TimelineItem] = []
        async with self._db.session() as session:
            calls, calls_more = await _calls(
                session, kind, party_id, None if (viewer.head or owner) else viewer, limit, after
            )
            views = [_view(r) for r in calls]
            notes: dict[int, list[Note]] = {}
            if views:
                for n in (
                    await session.execute(
                        select(CallNoteRow)
                        .where(CallNoteRow.call_id.in_([v.id for v in views]))
                        .order_by(CallNoteRow.id)
                    )
                ).scalars():
                    notes.setdefault(n.call_id, []).append(
                        Note(
                            n.id,
                            n.call_id,
                            n.manager_id,
                            n.topic,
                            n.result,
                            n.comment,
                            assume_utc(n.created_at),
                        )
                    )
            deal_owner = DealRow.client_id if kind is Kind.CLIENT else DealRow.lead_id
            conds = [deal_owner == party_id]
            if (c := _after("deal", DealRow.opened_at, DealRow.id, after)) is not None:
                conds.append(c)
            deals = list(
                (
                    await session.execute(
                        select(DealRow)
                        .where(*conds)
                        .order_by(DealRow.opened_at.desc(), DealRow.id.desc())
                        .limit(limit)
                    )
                ).scalars()
            )
            conds = [PartyNoteRow.kind == kind.value, PartyNoteRow.party_id == party_id]
            if (c := _after("note", PartyNoteRow.created_at, PartyNoteRow.id, after)) is not None:
                conds.append(c)
            party_notes = list(
                (
                    await session.execute(
                        select(PartyNoteRow)
                        .where(*conds)
                        .order_by(PartyNoteRow.created_at.desc(), PartyNoteRow.id.desc())
                        .limit(limit)
                    )
                ).scalars()
            )
            task_owner = TaskRow.client_id if kind is Kind.CLIENT else TaskRow.lead_id
            conds = [task_owner == party_id]
            if (c := _after("task", TaskRow.due_at, TaskRow.id, after)) is not None:
                conds.append(c)
            tasks = list(
                (
                    await session.execute(
                        select(TaskRow)
                        .where(*conds)
                        .order_by(TaskRow.due_at.desc(), TaskRow.id.desc())
                        .limit(limit)
                    )
                ).scalars()
            )
            wanted = (
                {d.manager_id for d in deals}
                | {n.manager_id for n in party_notes}
                | {t.manager_id for t in tasks}
            )
            wanted |= {c.manager_id for c in calls}
            wanted.discard(None)
            extensions = {c.answered_by for c in calls if c.answered_by}
            if extensions:
                answerers = dict(
                    (
                        await session.execute(
                            select(ExtensionRow.extension, ManagerRow.name)
                            .join(ManagerRow, ManagerRow.id == ExtensionRow.manager_id)
                            .where(ExtensionRow.extension.in_(extensions))
                        )
                    ).all()
                )
            if wanted:
                names = dict(
                    (
                        await session.execute(
                            select(ManagerRow.id, ManagerRow.name).where(ManagerRow.id.in_(wanted))
                        )
                    ).all()
                )
        by_call = {c.id: c.manager_id for c in calls}
        items.extend(
            TimelineCall(
                assume_utc(v.started_at),
                v.id,
                v,
                tuple(notes.get(v.id, ())),
                answerers.get(v.answered_by) if v.answered_by else None,
                names.get(by_call.get(v.id) or 0),
            )
            for v in views
        )
        items.extend(
            TimelineDeal(
                assume_utc(d.opened_at),
                d.id,
                d.title,
                Decimal(d.amount),
                d.stage,
                d.status,
                assume_utc(d.closed_at) if d.closed_at else None,
                d.lost_reason,
                d.call_id,
                names.get(d.manager_id or 0),
            )
            for d in deals
        )
        items.extend(
            TimelineNote(assume_utc(n.created_at), n.id, n.text, n.manager_id, names.get(n.manager_id or 0))
            for n in party_notes
        )
        items.extend(
            TimelineTask(
                assume_utc(t.due_at),
                t.id,
                t.title,
                t.status,
                t.result,
                t.closed_by_call_id,
                names.get(t.manager_id or 0),
            )
            for t in tasks
        )
        items.sort(key=_key, reverse=True)
        more = len(items) > limit or calls_more or any(len(s) == limit for s in (deals, party_notes, tasks))
        page = items[:limit]
        nxt = None
        if more and page:
            at, k, ident = _key(page[-1])
            nxt = TimelineCursor(at, k, ident)
        return TimelinePage(tuple(page), nxt)


def recent_timeline(page: TimelinePage, limit: int) -> Sequence[TimelineItem]:
    """The first ``limit`` items of a page (the ringing card shows a few)."""
    return page.items[:limit]
