"""What ended calls do to the callback tasks: a missed inbound call opens (or counts on) the number's task,
a later answered call to or from the number closes it, naming itself. Called inside the call service's flush.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncSession

from crmtel.calls.record import party_number
from crmtel.config import CallsSettings
from crmtel.domain import CallRecord, Direction, Outcome
from crmtel.phones import display
from crmtel.store.calls import StoredEnd
from crmtel.store.tasks import (
    AnsweredCall,
    MissedCall,
    close_answered_in,
    manager_ids_by_login_in,
    record_missed_many_in,
)

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Responsible:
    """Who a call's party belongs to (the CRM's answer)."""

    manager_id: int | None
    client_id: int | None
    lead_id: int | None


@dataclass(frozen=True, slots=True)
class EndedCall:
    """A call that ended for the first time, with its row id and its party's owner."""

    record: CallRecord
    row_id: int | None
    owner: Responsible | None


def _missed(call: EndedCall) -> bool:
    return call.record.direction is Direction.INBOUND and call.record.outcome is Outcome.MISSED


def _booked_as(direction: Direction, outcome: Outcome | None) -> str | None:
    """What a call did to callback tasks: a missed inbound call opens one, an answered call closes them."""
    if direction is Direction.INBOUND and outcome is Outcome.MISSED:
        return "missed"
    if outcome is Outcome.ANSWERED and direction in (Direction.INBOUND, Direction.OUTBOUND):
        return "answered"
    return None


def booking_changed(before: StoredEnd, record: CallRecord) -> bool:
    """Whether a stored call's correction (the CDR's truth) changes what it does to callback tasks."""
    now = _booked_as(record.direction, record.outcome)
    return now is not None and now != _booked_as(before.direction, before.outcome)


def corrected_for_booking(before: StoredEnd, record: CallRecord) -> CallRecord:
    """The corrected call as the task rules see it: a "missed" call found answered closes the task it opened
    itself, even when the CDR puts its end a little before the end crmtel had seen (the task's creation)."""
    if record.ended_at is not None and before.ended_at > record.ended_at:
        return replace(record, ended_at=before.ended_at)
    return record


async def book_ended_calls(
    session: AsyncSession,
    calls: Sequence[EndedCall],
    settings: CallsSettings,
    match_digits: int,
    *,
    title: Callable[[str], str],
) -> None:
    """Open, count and close callback tasks for these calls, in the order they ended."""
    run: list[EndedCall] = []
    for call in sorted(calls, key=lambda c: c.record.ended_at or c.record.started_at):
        record = call.record
        if _missed(call):
            run.append(call)
            continue
        number = party_number(record)
        if record.outcome is not Outcome.ANSWERED or number is None or call.row_id is None:
            continue
        if record.direction not in (Direction.INBOUND, Direction.OUTBOUND):
            continue
        if run:
            # Misses that ended before this call must exist before it can close them.
            await _record_missed(session, run, settings, title)
            run = []
        at = record.ended_at or record.started_at
        answered = AnsweredCall(number, call.row_id, at, record.started_at, float(record.talk_seconds or 0))
        closing = await close_answered_in(
            session, answered, match_digits, min_talk_seconds=settings.planned_close_min_talk_seconds
        )
        for task_id in closing:
            log.info("callback task %d closed by call %s", task_id, record.linkedid)
    if run:
        await _record_missed(session, run, settings, title)


async def _record_missed(
    session: AsyncSession, calls: Sequence[EndedCall], settings: CallsSettings, title: Callable[[str], str]
) -> None:
    owners = {settings.queue_owners.get(c.record.queue or "") or settings.default_owner for c in calls}
    logins = await manager_ids_by_login_in(session, sorted(o for o in owners if o))
    todo: list[MissedCall] = []
    for call in calls:
        record = call.record
        phone = party_number(record) or record.caller_number
        if phone is None:
            # A hidden number cannot be called back.
            continue
        owner = call.owner
        manager = owner.manager_id if owner is not None else None
        if manager is None:
            login = settings.queue_owners.get(record.queue or "") or settings.default_owner
            manager = logins.get(login or "")
        at = record.ended_at or datetime.now(UTC)
        # The title is read on the page next to the number: written as people write it, not as E.164.
        who = record.party_name or record.caller_name or display(phone)
        todo.append(
            MissedCall(
                phone=phone,
                call_id=call.row_id,
                manager_id=manager,
                client_id=owner.client_id if owner is not None else None,
                lead_id=owner.lead_id if owner is not None else None,
                title=title(who),
                due_at=at + timedelta(minutes=settings.callback_due_minutes),
                at=at,
            )
        )
    for state in await record_missed_many_in(session, todo):
        log.info("callback task %d: %d missed call(s)", state.id, state.missed_count)
