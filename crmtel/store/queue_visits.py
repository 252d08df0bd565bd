"""Queue visits of ended inbound calls, one row per wait plus one per member offered (for queue reports)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import delete, insert, select
from sqlalchemy.ext.asyncio import AsyncSession

from crmtel.domain import CallRecord, Direction, MissedReason, Outcome, QueueOutcome, QueueVisit
from crmtel.store.models import QueueOfferRow, QueueVisitRow
from crmtel.timestamps import assume_utc


def visit_rows(call_id: int, record: CallRecord) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The visit and offer rows of an ended inbound call (also used by the migration that fills old calls)."""
    visits: list[dict[str, Any]] = []
    offers: list[dict[str, Any]] = []
    for seq, visit in enumerate(record.queue_visits):
        # An ended call has no open wait (the tracker closes it), but an old snapshot might: it was abandoned.
        outcome = visit.outcome or QueueOutcome.ABANDONED
        left_at = visit.left_at or record.ended_at
        wait = max(0.0, (left_at - visit.joined_at).total_seconds()) if left_at is not None else 0.0
        answered = outcome is QueueOutcome.ANSWERED
        visits.append(
            {
                "call_id": call_id,
                "seq": seq,
                "queue": visit.queue,
                "started_at": record.started_at,
                "joined_at": visit.joined_at,
                "left_at": left_at,
                "outcome": outcome.value,
                "wait_seconds": round(wait, 2),
                "answered_by": visit.answered_by,
                "talk_seconds": round(record.talk_seconds, 2) if answered else 0.0,
            }
        )
        offers.extend(
            {
                "call_id": call_id,
                "seq": seq,
                "queue": visit.queue,
                "extension": extension,
                "answered": answered and extension == visit.answered_by,
                "started_at": record.started_at,
            }
            for extension in visit.offered
        )
    return visits, offers


# The missed reason of a caller who hung up while waiting in the queue: today's value and the text it was
# stored as when these rows were written (a reason that became a code may have been rewritten since).
_GAVE_UP = frozenset({MissedReason.ABANDONED_IN_QUEUE.value, "caller hung up in queue"})


def legacy_visit(
    *,
    pbx: str,
    linkedid: str,
    caller_number: str | None,
    queue: str,
    rang: Sequence[object],
    answered_by: str | None,
    outcome: str | None,
    missed_reason: str | None,
    started_at: datetime,
    answered_at: datetime | None,
    ended_at: datetime | None,
    talk_seconds: float,
) -> CallRecord:
    """An ended inbound call stored before queue visits existed, with the one visit its row implies.

    The row knows its last queue, who answered and when, and the phones it rang, but not when the caller
    joined the queue: the wait counts from the call's start. Answered calls were answered in the queue; a
    caller who hung up in the queue abandoned it; any other miss left it unanswered (exited: a timeout, or
    the caller hung up later, on a phone the dialplan rang after the queue).
    """
    if outcome == Outcome.ANSWERED.value and answered_by is not None:
        result, left_at = QueueOutcome.ANSWERED, answered_at or ended_at
    elif (missed_reason or "").strip() in _GAVE_UP:
        result, left_at = QueueOutcome.ABANDONED, ended_at
    else:
        result, left_at = QueueOutcome.EXITED, ended_at
    offered = tuple(dict.fromkeys(str(x)[:32] for x in rang if x is not None))
    visit = QueueVisit(
        queue=queue[:64],
        joined_at=started_at,
        left_at=max(left_at, started_at) if left_at is not None else None,
        outcome=result,
        answered_by=answered_by if result is QueueOutcome.ANSWERED else None,
        offered=offered,
    )
    return CallRecord(
        pbx=pbx,
        linkedid=linkedid,
        direction=Direction.INBOUND,
        caller_number=caller_number,
        caller_name=None,
        dialled=None,
        started_at=started_at,
        answered_by=answered_by,
        queue=queue,
        answered_at=answered_at,
        ended_at=ended_at,
        talk_seconds=talk_seconds,
        queue_visits=(visit,),
    )


async def write_visits_in(session: AsyncSession, items: Sequence[tuple[int, CallRecord]]) -> None:
    """Store the queue waits of these ended calls (replacing what an earlier write stored for them)."""
    wanted = [
        (cid, r)
        for cid, r in items
        if r.ended_at is not None and r.direction is Direction.INBOUND and r.queue_visits
    ]
    if not wanted:
        return
    ids = [cid for cid, _ in wanted]
    # Replays and resyncs write an ended call again: delete-then-insert keeps one set of rows per call.
    await session.execute(delete(QueueOfferRow).where(QueueOfferRow.call_id.in_(ids)))
    await session.execute(delete(QueueVisitRow).where(QueueVisitRow.call_id.in_(ids)))
    visits: list[dict[str, Any]] = []
    offers: list[dict[str, Any]] = []
    for cid, record in wanted:
        v, o = visit_rows(cid, record)
        visits.extend(v)
        offers.extend(o)
    conn = await session.connection()
    await conn.execute(insert(QueueVisitRow), visits)
    if offers:
        await conn.execute(insert(QueueOfferRow), offers)


async def visits_in(session: AsyncSession, call_ids: Sequence[int]) -> dict[int, tuple[QueueVisit, ...]]:
    """The stored queue waits of these calls (by call id), offers in the order they were written."""
    if not call_ids:
        return {}
    ids = list(dict.fromkeys(call_ids))
    offered: dict[tuple[int, int], list[str]] = {}
    rows = await session.execute(
        select(QueueOfferRow.call_id, QueueOfferRow.seq, QueueOfferRow.extension)
        .where(QueueOfferRow.call_id.in_(ids))
        .order_by(QueueOfferRow.id)
    )
    for call_id, seq, extension in rows.all():
        offered.setdefault((call_id, seq), []).append(extension)
    out: dict[int, list[QueueVisit]] = {}
    visits = await session.execute(
        select(QueueVisitRow)
        .where(QueueVisitRow.call_id.in_(ids))
        .order_by(QueueVisitRow.call_id, QueueVisitRow.seq)
    )
    for row in visits.scalars():
        out.setdefault(row.call_id, []).append(
            QueueVisit(
                queue=row.queue,
                joined_at=assume_utc(row.joined_at),
                left_at=assume_utc(row.left_at) if row.left_at is not None else None,
                outcome=QueueOutcome(row.outcome),
                answered_by=row.answered_by,
                offered=tuple(offered.get((row.call_id, row.seq), ())),
            )
        )
    return {cid: tuple(v) for cid, v in out.items()}
