"""Queue visits of ended inbound calls, one row per wait plus one per member offered (for queue reports)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import delete, insert
from sqlalchemy.ext.asyncio import AsyncSession

from crmtel.domain import CallRecord, Direction, QueueOutcome
from crmtel.store.models import QueueOfferRow, QueueVisitRow


def _rows(call_id: int, record: CallRecord) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
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
        v, o = _rows(cid, record)
        visits.extend(v)
        offers.extend(o)
    conn = await session.connection()
    await conn.execute(insert(QueueVisitRow), visits)
    if offers:
        await conn.execute(insert(QueueOfferRow), offers)
