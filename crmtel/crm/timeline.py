"""The timeline's JSON: one explicit model per kind of item (``type`` says which), newest first."""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal

from crmtel.crm.schemas import Out, cursor_id, decode_cursor, encode_cursor
from crmtel.store.crm_timeline import (
    TimelineCall,
    TimelineCursor,
    TimelineDeal,
    TimelineItem,
    TimelineNote,
    TimelinePage,
)
from crmtel.timestamps import iso_instant


class CallNoteOut(Out):
    """What a manager wrote about a call (topic, result, comment)."""

    id: int
    topic: str
    result: str
    comment: str
    created_at: str


class TimelineCallOut(Out):
    """A call on the timeline: direction, outcome, who answered, talk time, its recording and notes."""

    type: Literal["call"] = "call"
    at: str
    id: int
    call_id: str
    direction: str
    number: str | None
    number_display: str | None
    outcome: str | None
    missed_reason: str | None
    answered_by: str | None
    answered_by_name: str | None
    manager_name: str | None
    talk_seconds: float
    recording: str | None
    notes: list[CallNoteOut]


class TimelineNoteOut(Out):
    """A note on the record."""

    type: Literal["note"] = "note"
    at: str
    id: int
    text: str
    manager_name: str | None


class TimelineDealOut(Out):
    """A deal, at its opening."""

    type: Literal["deal"] = "deal"
    at: str
    id: int
    title: str
    amount: str
    stage: str
    status: str
    closed_at: str | None
    lost_reason: str | None
    manager_name: str | None


class TimelineTaskOut(Out):
    """A task, at its due time."""

    type: Literal["task"] = "task"
    at: str
    id: int
    title: str
    status: str
    result: str | None
    closed_by_call: bool
    manager_name: str | None


TimelineOut = TimelineCallOut | TimelineNoteOut | TimelineDealOut | TimelineTaskOut


class TimelinePageOut(Out):
    """A page of the timeline; ``next`` is the cursor of the following page."""

    items: list[TimelineOut]
    next: str | None


def item_out(
    item: TimelineItem, display: Callable[[str | None], str | None], playable: set[int]
) -> TimelineOut:
    """One timeline item for the API (``playable``: calls whose recording file is there)."""
    at = iso_instant(item.at) or ""
    if isinstance(item, TimelineCall):
        call = item.call
        number = call.other_number
        return TimelineCallOut(
            at=at,
            id=item.id,
            call_id=call.call_id,
            direction=call.direction,
            number=number,
            number_display=display(number),
            outcome=call.outcome if call.ended_at else None,
            missed_reason=call.missed_reason,
            answered_by=call.answered_by,
            answered_by_name=item.answered_by_name,
            manager_name=item.manager_name,
            talk_seconds=round(call.talk_seconds, 1),
            recording=f"/api/calls/{call.call_id}/recording" if item.id in playable else None,
            notes=[
                CallNoteOut(
                    id=n.id,
                    topic=n.topic,
                    result=n.result,
                    comment=n.comment,
                    created_at=iso_instant(n.created_at) or "",
                )
                for n in item.notes
            ],
        )
    if isinstance(item, TimelineNote):
        return TimelineNoteOut(at=at, id=item.id, text=item.text, manager_name=item.manager_name)
    if isinstance(item, TimelineDeal):
        return TimelineDealOut(
            at=at,
            id=item.id,
            title=item.title,
            amount=f"{item.amount:.2f}",
            stage=item.stage,
            status=item.status,
            closed_at=iso_instant(item.closed_at),
            lost_reason=item.lost_reason,
            manager_name=item.manager_name,
        )
    return TimelineTaskOut(
        at=at,
        id=item.id,
        title=item.title,
        status=item.status,
        result=item.result,
        closed_by_call=item.closed_by_call_id is not None,
        manager_name=item.manager_name,
    )


def page_out(
    page: TimelinePage, display: Callable[[str | None], str | None], playable: set[int]
) -> TimelinePageOut:
    """A timeline page for the API."""
    nxt = None
    if page.next is not None:
        nxt = encode_cursor([page.next.at.isoformat(), page.next.kind, page.next.id])
    return TimelinePageOut(items=[item_out(i, display, playable) for i in page.items], next=nxt)


def timeline_cursor(text: str | None) -> TimelineCursor | None:
    """A timeline cursor from the query string (ValueError: not one)."""
    from datetime import datetime

    if not text:
        return None
    parts = decode_cursor(text)
    if parts is None or len(parts) != 3 or not isinstance(parts[0], str) or not isinstance(parts[1], str):
        raise ValueError("cursor")
    if parts[1] not in ("call", "deal", "note", "task") or not isinstance(parts[2], int):
        raise ValueError("cursor")
    at = datetime.fromisoformat(parts[0])
    if at.tzinfo is None:
        raise ValueError("cursor")
    return TimelineCursor(at, parts[1], cursor_id(parts[2]))
