"""Queue visits of a call (pure): join, the members offered, then answered, abandoned or exited.

A call keeps one ``QueueVisit`` per queue it joined; the last one is open (``outcome`` None) while the
caller waits. Offers are the real phones the queue rang while the caller waited, so a ``Local/`` member
counts by the phone its ``;2`` half dialled, and a personal manager rung before the queue is not an offer.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime
from typing import Any

from crmtel.calls.tracker.model import Call
from crmtel.domain import CallQueued, QueueOutcome, QueueVisit, call_id

_MAX_VISITS = 16
_MAX_OFFERED = 64


def _open(call: Call) -> QueueVisit | None:
    visit = call.queue_visits[-1] if call.queue_visits else None
    return visit if visit is not None and visit.outcome is None else None


def _event(pbx: str, call: Call, visit: QueueVisit, at: datetime) -> CallQueued:
    return CallQueued(
        call_id=call_id(pbx, call.linkedid),
        queue=visit.queue,
        caller_number=call.caller_number,
        caller_name=call.caller_name,
        joined_at=visit.joined_at,
        outcome=visit.outcome,
        at=at,
    )


def joined(pbx: str, call: Call, queue: str, at: datetime) -> tuple[Call, CallQueued | None]:
    """The caller entered ``queue`` (a repeated join of the queue it waits in changes nothing)."""
    current = _open(call)
    if current is not None and current.queue == queue:
        return call, None
    visits = call.queue_visits
    if current is not None:
        # Joined another queue without leaving this one (lost events): that wait ended unanswered.
        visits = (*visits[:-1], replace(current, left_at=at, outcome=QueueOutcome.EXITED))
    if len(visits) >= _MAX_VISITS:
        return replace(call, queue_visits=visits), None
    visit = QueueVisit(queue=queue, joined_at=at)
    return replace(call, queue_visits=(*visits, visit)), _event(pbx, call, visit, at)


def offered(call: Call, extension: str) -> Call:
    """A phone started ringing for the caller waiting in the queue."""
    current = _open(call)
    if current is None or extension in current.offered or len(current.offered) >= _MAX_OFFERED:
        return call
    return _with_open(call, replace(current, offered=(*current.offered, extension)))


def left(
    pbx: str, call: Call, outcome: QueueOutcome, at: datetime, answered_by: str | None = None
) -> tuple[Call, CallQueued | None]:
    """The wait ended: answered (by ``answered_by``), abandoned or exited; no-op when nobody waits."""
    current = _open(call)
    if current is None:
        return call, None
    visit = replace(current, left_at=at, outcome=outcome, answered_by=answered_by)
    return _with_open(call, visit), _event(pbx, call, visit, at)


def _with_open(call: Call, visit: QueueVisit) -> Call:
    return replace(call, queue_visits=(*call.queue_visits[:-1], visit))


# -- snapshots (``calls.live_state``) ----------------------------------------------------------------
def encode(visits: tuple[QueueVisit, ...]) -> list[dict[str, Any]]:
    """JSON form of a call's queue visits."""
    return [
        {
            "queue": v.queue,
            "joined_at": v.joined_at.isoformat(),
            "left_at": v.left_at.isoformat() if v.left_at else None,
            "outcome": v.outcome.value if v.outcome else None,
            "answered_by": v.answered_by,
            "offered": list(v.offered),
        }
        for v in visits
    ]


def decode(raw: Any) -> tuple[QueueVisit, ...]:
    """Queue visits from their JSON form; ValueError when malformed."""
    if not isinstance(raw, list):
        raise ValueError("snapshot field 'queue_visits' is not a list")
    out: list[QueueVisit] = []
    for item in raw[:_MAX_VISITS]:
        if not isinstance(item, dict):
            raise ValueError("a queue visit is not an object")
        left_at, outcome, answered_by = item.get("left_at"), item.get("outcome"), item.get("answered_by")
        out.append(
            QueueVisit(
                queue=str(item["queue"]),
                joined_at=datetime.fromisoformat(str(item["joined_at"])),
                left_at=datetime.fromisoformat(str(left_at)) if left_at is not None else None,
                outcome=QueueOutcome(outcome) if outcome is not None else None,
                answered_by=str(answered_by) if answered_by is not None else None,
                offered=tuple(str(x) for x in item.get("offered", ())),
            )
        )
    return tuple(out)


def waiting(pbx: str, call: Call, at: datetime) -> CallQueued | None:
    """``CallQueued`` for a caller waiting in a queue right now (None when the call waits in none)."""
    visit = _open(call)
    return _event(pbx, call, visit, at) if visit is not None and call.in_queue else None
