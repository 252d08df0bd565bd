"""Call records: exactly one row per ``(pbx, linkedid)``, written with upsert so replays never duplicate."""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import delete, or_, select, tuple_, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from crmtel.calls.record import COLUMNS, from_row, to_row
from crmtel.domain import CallRecord, Direction, Outcome
from crmtel.store.call_callbacks import (
    delete_calls_in,
    keys_before_write,
    lock_calls_in,
    number_key,
    refresh_calls_in,
    refresh_in,
)
from crmtel.store.db import Database
from crmtel.store.models import CallNoteRow, CallRow, DealRow, QueueOfferRow, QueueVisitRow, TaskRow
from crmtel.store.queue_visits import visits_in, write_visits_in

CallKey = tuple[str, str]
LiveState = dict[str, object]
# Columns an upsert rewrites; ``id`` and the foreign keys pointing at the row stay put.
_UPSERT_COLUMNS = (
    "direction",
    "caller_number",
    "caller_name",
    "dialled",
    "rang",
    "answered_by",
    "answered_on",
    "transferred_to",
    "queue",
    "outcome",
    "missed_reason",
    "started_at",
    "answered_at",
    "ended_at",
    "ring_seconds",
    "talk_seconds",
    "recording_file",
    "recording_url",
    "route_kind",
    "route_target",
    "route_reason",
    "party_kind",
    "party_id",
    "party_name",
    "manager_id",
    "originate_id",
    "live_state",
    "number_key",
    "callback_at",
)


@dataclass(frozen=True, slots=True)
class StoredCall:
    """A call as stored: its row id, its record and (while live) the tracker's state for it."""

    id: int
    record: CallRecord
    live_state: LiveState | None


def row_values(record: CallRecord, live_state: LiveState | None) -> dict[str, Any]:
    """The column values of a record (for inserts and upserts): the record's field table, and its live state."""
    return {**to_row(record), "live_state": live_state}


def to_record(row: CallRow) -> CallRecord:
    """The domain record of a row (without its queue waits, which ``by_keys`` adds)."""
    return from_row({name: getattr(row, name) for name in COLUMNS})


async def discard_live_in(session: AsyncSession, keys: Sequence[CallKey]) -> None:
    """Remove the live rows of calls that turned out never to be calls (a failed Originate)."""
    if keys:
        await delete_calls_in(
            session, tuple_(CallRow.pbx, CallRow.linkedid).in_(list(keys)), CallRow.ended_at.is_(None)
        )


async def upsert_in(
    session: AsyncSession, items: Sequence[tuple[CallRecord, LiveState | None]]
) -> dict[CallKey, int]:
    """Insert or update rows by ``(pbx, linkedid)`` in one statement; returns their ids."""
    latest: dict[CallKey, dict[str, Any]] = {}
    records: dict[CallKey, CallRecord] = {}
    for record, live in items:
        # One statement may touch a row only once (PostgreSQL insists): the last version wins.
        latest[(record.pbx, record.linkedid)] = row_values(record, live)
        records[(record.pbx, record.linkedid)] = record
    if not latest:
        return {}
    # The stored callbacks of the numbers these calls had and have are recomputed after the write.
    await lock_calls_in(session)
    digits, touched = await keys_before_write(session, list(latest))
    for values in latest.values():
        key = None
        if digits is not None:
            key = number_key(
                values["direction"], values["outcome"], values["caller_number"], values["dialled"], digits
            )
            if key is not None and values["outcome"] == Outcome.ANSWERED.value:
                # Only answered calls are callbacks: a number's thousands of missed calls (a switchboard) are
                # not recomputed on each of its missed calls (61 ms a write at 10,000 of them, PostgreSQL).
                touched.add(key)
        # A missed call's own callback is recomputed with the others of its key (none without a key).
        values["number_key"], values["callback_at"] = key, None
    conn = await session.connection()
    stmt = _upsert_statement(conn.dialect.name)
    # Core executemany (not the ORM bulk path): one compiled statement whatever the batch size.
    result = await conn.execute(stmt, list(latest.values()))
    ids = {(pbx, linkedid): cid for cid, pbx, linkedid in result.all()}
    kept = [key for key in latest if key not in ids]
    if kept:
        # Rows the upsert left alone (already ended) return nothing; their ids are read back.
        rows = await session.execute(
            select(CallRow.id, CallRow.pbx, CallRow.linkedid).where(
                tuple_(CallRow.pbx, CallRow.linkedid).in_(kept)
            )
        )
        ids.update({(pbx, linkedid): cid for cid, pbx, linkedid in rows.all()})
    await refresh_in(session, touched)
    await refresh_calls_in(session, list(latest))
    await write_visits_in(session, [(ids[key], r) for key, r in records.items() if key in ids])
    return ids


@functools.cache
def _upsert_statement(dialect: str) -> Any:
    """INSERT … ON CONFLICT (pbx, linkedid) DO UPDATE … RETURNING, built once per dialect."""
    module: Any = postgresql if dialect == "postgresql" else sqlite
    insert = module.insert(CallRow)
    return insert.on_conflict_do_update(
        index_elements=[CallRow.pbx, CallRow.linkedid],
        set_={name: getattr(insert.excluded, name) for name in _UPSERT_COLUMNS},
        # A call stored as ended never goes back to live: a replay or a resync that sees its events again
        # (Linkedids are unique on a PBX) may refresh the ended record, not reopen it.
        where=or_(CallRow.ended_at.is_(None), insert.excluded.ended_at.is_not(None)),
    ).returning(CallRow.id, CallRow.pbx, CallRow.linkedid, sort_by_parameter_order=True)


async def ended_keys_in(session: AsyncSession, keys: Sequence[CallKey]) -> set[CallKey]:
    """Which of these calls are already stored as ended."""
    if not keys:
        return set()
    rows = await session.execute(
        select(CallRow.pbx, CallRow.linkedid).where(
            tuple_(CallRow.pbx, CallRow.linkedid).in_(list(keys)), CallRow.ended_at.is_not(None)
        )
    )
    return {(pbx, linkedid) for pbx, linkedid in rows.all()}


@dataclass(frozen=True, slots=True)
class StoredEnd:
    """How an ended call was stored: what its callback tasks were booked by."""

    direction: Direction
    outcome: Outcome | None
    ended_at: datetime


async def stored_ends_in(session: AsyncSession, keys: Sequence[CallKey]) -> dict[CallKey, StoredEnd]:
    """The stored direction, outcome and end of those of these calls already stored as ended."""
    if not keys:
        return {}
    rows = await session.execute(
        select(CallRow.pbx, CallRow.linkedid, CallRow.direction, CallRow.outcome, CallRow.ended_at).where(
            tuple_(CallRow.pbx, CallRow.linkedid).in_(list(keys)), CallRow.ended_at.is_not(None)
        )
    )
    return {
        (pbx, linkedid): StoredEnd(
            Direction(direction),
            Outcome(outcome) if outcome else None,
            ended if ended.tzinfo is not None else ended.replace(tzinfo=UTC),
        )
        for pbx, linkedid, direction, outcome, ended in rows.all()
        if ended is not None
    }


async def merge_in(session: AsyncSession, pbx: str, old: str, new: str) -> None:
    """Fold the row of linkedid ``old`` into ``new`` (after a transfer merged the calls)."""
    ids = dict(
        (
            await session.execute(
                select(CallRow.linkedid, CallRow.id).where(
                    CallRow.pbx == pbx, CallRow.linkedid.in_([old, new])
                )
            )
        ).all()
    )
    old_id, new_id = ids.get(old), ids.get(new)
    if old_id is None:
        return
    if new_id is None:
        await session.execute(update(CallRow).where(CallRow.id == old_id).values(linkedid=new))
        return
    for visits in (QueueOfferRow, QueueVisitRow):
        await session.execute(delete(visits).where(visits.call_id == old_id))
    for table in (TaskRow, DealRow, CallNoteRow):
        await session.execute(update(table).where(table.call_id == old_id).values(call_id=new_id))
    await delete_calls_in(session, CallRow.id == old_id)


class CallRepository:
    """Stored calls: upsert, restore of live calls, listing."""

    def __init__(self, db: Database) -> None:
        self._db = db

    async def upsert(self, record: CallRecord, live_state: LiveState | None) -> int:
        """Store a call (one row per ``(pbx, linkedid)``); ``live_state`` None once it ended."""
        async with self._db.session() as session:
            ids = await upsert_in(session, [(record, live_state)])
        return ids[(record.pbx, record.linkedid)]

    async def upsert_many(self, items: Sequence[tuple[CallRecord, LiveState | None]]) -> dict[CallKey, int]:
        """Store several calls in one transaction."""
        async with self._db.session() as session:
            return await upsert_in(session, items)

    async def merge(self, pbx: str, old_linkedid: str, new_linkedid: str) -> None:
        """Merge the row of ``old_linkedid`` into the one of ``new_linkedid``."""
        async with self._db.session() as session:
            await merge_in(session, pbx, old_linkedid, new_linkedid)

    async def get(self, pbx: str, linkedid: str) -> StoredCall | None:
        """One call by its key."""
        async with self._db.session() as session:
            row = (
                await session.execute(select(CallRow).where(CallRow.pbx == pbx, CallRow.linkedid == linkedid))
            ).scalar_one_or_none()
            return None if row is None else StoredCall(row.id, to_record(row), row.live_state)

    async def by_keys(self, keys: Sequence[CallKey]) -> dict[CallKey, StoredCall]:
        """The stored calls among ``keys`` (a missing key is a call never stored)."""
        out: dict[CallKey, StoredCall] = {}
        wanted = list(dict.fromkeys(keys))
        async with self._db.session() as session:
            for i in range(0, len(wanted), 500):
                rows = (
                    await session.execute(
                        select(CallRow).where(tuple_(CallRow.pbx, CallRow.linkedid).in_(wanted[i : i + 500]))
                    )
                ).scalars()
                found = list(rows)
                # With its queue waits: a record compared and written back (the CDR backfill) keeps them.
                waits = await visits_in(session, [r.id for r in found])
                out.update(
                    {
                        (r.pbx, r.linkedid): StoredCall(
                            r.id, replace(to_record(r), queue_visits=waits.get(r.id, ())), r.live_state
                        )
                        for r in found
                    }
                )
        return out

    async def live(self, pbx: str) -> list[StoredCall]:
        """Calls of ``pbx`` that were still going on when last written (to resume after a restart)."""
        async with self._db.session() as session:
            rows = (
                await session.execute(
                    select(CallRow)
                    .where(CallRow.pbx == pbx, CallRow.live_state.is_not(None), CallRow.ended_at.is_(None))
                    .order_by(CallRow.id)
                )
            ).scalars()
            return [StoredCall(r.id, to_record(r), r.live_state) for r in rows]

    async def between(self, start: datetime | None = None, end: datetime | None = None) -> list[StoredCall]:
        """Calls that started in ``[start, end)``, oldest first."""
        stmt = select(CallRow).order_by(CallRow.started_at, CallRow.id)
        if start is not None:
            stmt = stmt.where(CallRow.started_at >= start)
        if end is not None:
            stmt = stmt.where(CallRow.started_at < end)
        async with self._db.session() as session:
            rows = (await session.execute(stmt)).scalars()
            return [StoredCall(r.id, to_record(r), r.live_state) for r in rows]

    async def by_originate(self, originate_id: str) -> list[StoredCall]:
        """The calls a click-to-call attempt produced (one, or none when it failed)."""
        async with self._db.session() as session:
            rows = (
                await session.execute(
                    select(CallRow).where(CallRow.originate_id == originate_id).order_by(CallRow.id)
                )
            ).scalars()
            return [StoredCall(r.id, to_record(r), r.live_state) for r in rows]

    async def last_pbx_of(self, extension: str) -> str | None:
        """The PBX on which this extension last placed or answered a call."""
        stmt = (
            select(CallRow.pbx)
            .where(or_(CallRow.answered_by == extension, CallRow.caller_number == extension))
            .order_by(CallRow.started_at.desc())
            .limit(1)
        )
        async with self._db.session() as session:
            return (await session.execute(stmt)).scalar_one_or_none()

    async def count(self) -> Mapping[CallKey, int]:
        """How many rows each key has (always 1; for tests that prove it)."""
        async with self._db.session() as session:
            rows = await session.execute(select(CallRow.pbx, CallRow.linkedid))
            counts: dict[CallKey, int] = {}
            for pbx, linkedid in rows.all():
                counts[(pbx, linkedid)] = counts.get((pbx, linkedid), 0) + 1
            return counts
