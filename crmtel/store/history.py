"""Read-only views of recorded calls: a manager's call history and the facts a call card shows."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, String, cast, false, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from crmtel.domain import LookupResult, PartyKind
from crmtel.store.db import Database
from crmtel.store.deals import DealSummary, open_deals_in
from crmtel.store.models import CallRow
from crmtel.store.parties import lookup_in


@dataclass(frozen=True, slots=True)
class CallView:
    """A recorded call as the managers' app shows it."""

    id: int
    pbx: str
    linkedid: str
    direction: str
    caller_number: str | None
    caller_name: str | None
    dialled: str | None
    started_at: datetime
    answered_at: datetime | None
    ended_at: datetime | None
    rang: tuple[str, ...]
    answered_by: str | None
    queue: str | None
    outcome: str | None
    missed_reason: str | None
    ring_seconds: float
    talk_seconds: float
    recording_file: str | None
    party_kind: str | None
    party_id: int | None
    party_name: str | None
    manager_id: int | None
    answered_on: str | None = None
    transferred_to: str | None = None
    result: str | None = None

    @property
    def call_id(self) -> str:
        """The public id shared with the live messages: ``pbx:linkedid``."""
        return f"{self.pbx}:{self.linkedid}"

    @property
    def other_number(self) -> str | None:
        """The outside party's number: the caller of an inbound call, the dialled number of an outbound one."""
        return self.dialled if self.direction == "outbound" else self.caller_number


@dataclass(frozen=True, slots=True)
class CardFacts:
    """Everything the store knows about a caller, read in one transaction."""

    lookup: LookupResult
    recent: tuple[CallView, ...]
    deals: tuple[DealSummary, ...]


def visible_to(call: CallView, extensions: frozenset[str] | None, owner_id: int | None = None) -> bool:
    """Whether a manager watching ``extensions`` (None: a head, everyone) may see this call: one their phones
    rang for or answered, or one they own (their own outbound call, answered or not; a missed call booked to them)."""
    if extensions is None:
        return True
    if owner_id is not None and call.manager_id == owner_id:
        return True
    return call.answered_by in extensions or not extensions.isdisjoint(call.rang)


def _view(row: CallRow) -> CallView:
    return CallView(
        id=row.id,
        pbx=row.pbx,
        linkedid=row.linkedid,
        direction=row.direction,
        caller_number=row.caller_number,
        caller_name=row.caller_name,
        dialled=row.dialled,
        started_at=row.started_at,
        answered_at=row.answered_at,
        ended_at=row.ended_at,
        rang=tuple(str(x) for x in (row.rang or ())),
        answered_by=row.answered_by,
        queue=row.queue,
        outcome=row.outcome,
        missed_reason=row.missed_reason,
        ring_seconds=float(row.ring_seconds or 0),
        talk_seconds=float(row.talk_seconds or 0),
        recording_file=row.recording_file,
        party_kind=row.party_kind,
        party_id=row.party_id,
        party_name=row.party_name,
        manager_id=row.manager_id,
        answered_on=row.answered_on,
        transferred_to=row.transferred_to,
        result=row.result,
    )


def _like_escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def _scope(extensions: frozenset[str] | None, owner_id: int | None = None) -> ColumnElement[bool] | None:
    # ``rang`` is a JSON list of strings; matching its text form with the quotes works on SQLite and PostgreSQL.
    if extensions is None:
        return None
    owned = [CallRow.manager_id == owner_id] if owner_id is not None else []
    if not extensions:
        return or_(*owned) if owned else false()
    rang_text = cast(CallRow.rang, String)
    return or_(
        *owned,
        CallRow.answered_by.in_(sorted(extensions)),
        *(rang_text.like(f'%"{_like_escape(e)}"%', escape="\\") for e in sorted(extensions)),
    )


def number_variants(numbers: Iterable[str | None]) -> list[str]:
    """The spellings a number may have been stored with: as given, E.164, and E.164 without the ``+``."""
    out: dict[str, None] = {}
    for n in numbers:
        if not n:
            continue
        out[n] = None
        if n.startswith("+"):
            out[n[1:]] = None
    return list(out)


async def recent_calls_in(
    session: AsyncSession, numbers: list[str], party: tuple[PartyKind, int] | None, limit: int = 5
) -> list[CallView]:
    """The last calls with a number (either way) or with a CRM record, newest first."""
    conds: list[ColumnElement[bool]] = []
    if numbers:
        conds += [CallRow.caller_number.in_(numbers), CallRow.dialled.in_(numbers)]
    if party is not None:
        conds.append((CallRow.party_kind == party[0].value) & (CallRow.party_id == party[1]))
    if not conds:
        return []
    rows = (
        (
            await session.execute(
                select(CallRow)
                .where(or_(*conds), CallRow.ended_at.is_not(None))
                .order_by(CallRow.started_at.desc(), CallRow.id.desc())
                .limit(limit)
            )
        )
        .scalars()
        .all()
    )
    return [_view(r) for r in rows]


@dataclass(frozen=True, slots=True)
class CallFilter:
    """What the call list narrows to (heads' drill-down from the report, or a manager's own search)."""

    manager_id: int | None = None
    manager_extensions: tuple[str, ...] = ()
    since: datetime | None = None
    until: datetime | None = None
    direction: str | None = None
    outcome: str | None = None
    digits: str | None = None
    recording: bool = False


def _filtered(stmt: Any, f: CallFilter) -> Any:
    if f.manager_id is not None:
        # Whose call, as the report counts it: the manager it was booked to, or the one whose phone answered.
        stmt = stmt.where(
            or_(
                CallRow.manager_id == f.manager_id,
                CallRow.manager_id.is_(None) & CallRow.answered_by.in_(f.manager_extensions or ("",)),
            )
        )
    if f.since is not None:
        stmt = stmt.where(CallRow.started_at >= f.since)
    if f.until is not None:
        stmt = stmt.where(CallRow.started_at < f.until)
    if f.direction:
        stmt = stmt.where(CallRow.direction == f.direction)
    if f.outcome:
        stmt = stmt.where(CallRow.outcome == f.outcome)
    if f.digits:
        pattern = f"%{_like_escape(f.digits)}%"
        stmt = stmt.where(
            or_(CallRow.caller_number.like(pattern, escape="\\"), CallRow.dialled.like(pattern, escape="\\"))
        )
    if f.recording:
        stmt = stmt.where(CallRow.recording_file.is_not(None), CallRow.recording_file != "")
    return stmt


class CallHistory:
    """Recorded calls, always filtered by who is asking."""

    def __init__(self, db: Database) -> None:
        self._db = db

    async def list(
        self,
        extensions: frozenset[str] | None,
        *,
        limit: int = 50,
        before_id: int | None = None,
        only: CallFilter | None = None,
        owner_id: int | None = None,
    ) -> list[CallView]:
        """The newest calls visible to a manager watching ``extensions`` (None: everyone) and owning the calls
        booked to ``owner_id``, narrowed by ``only``."""
        stmt: Any = select(CallRow)
        scope = _scope(extensions, owner_id)
        if scope is not None:
            stmt = stmt.where(scope)
        if only is not None:
            stmt = _filtered(stmt, only)
        if before_id is not None:
            stmt = stmt.where(CallRow.id < before_id)
        stmt = stmt.order_by(CallRow.id.desc()).limit(limit)
        async with self._db.session() as session:
            rows = (await session.execute(stmt)).scalars().all()
        # The SQL text match can only over-select (never miss); the exact check keeps it honest.
        return [v for v in map(_view, rows) if visible_to(v, extensions, owner_id)]

    async def get(self, call_id: str) -> CallView | None:
        """The call with this public id (``pbx:linkedid``)."""
        pbx, sep, linkedid = call_id.rpartition(":")
        if not sep or not pbx or not linkedid:
            return None
        async with self._db.session() as session:
            row = (
                await session.execute(select(CallRow).where(CallRow.pbx == pbx, CallRow.linkedid == linkedid))
            ).scalar_one_or_none()
            return _view(row) if row else None

    async def get_by_id(self, row_id: int) -> CallView | None:
        """The call with this row id."""
        async with self._db.session() as session:
            row = await session.get(CallRow, row_id)
            return _view(row) if row else None

    async def card_facts(self, e164: str | None, raw: str | None) -> CardFacts:
        """Who the number belongs to, its last 5 calls, and the open deals of its best match."""
        async with self._db.session() as session:
            lookup = await lookup_in(session, e164) if e164 else LookupResult(e164=None)
            best = lookup.best
            recent = await recent_calls_in(
                session,
                number_variants([e164, raw]),
                (best.kind, best.id) if best else None,
            )
            deals: list[DealSummary] = []
            if best is not None:
                deals = await open_deals_in(
                    session,
                    client_id=best.id if best.kind is PartyKind.CLIENT else None,
                    lead_id=best.id if best.kind is PartyKind.LEAD else None,
                )
            return CardFacts(lookup, tuple(recent), tuple(deals))
