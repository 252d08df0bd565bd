"""What a call seen by crmtel takes from its CDR (pure).

A call followed live keeps what only crmtel saw: who rang first, the route, the party, notes. The CDR
knows better when the call ended (crmtel was away: a resync closed it when it noticed, too late), whether
and when someone answered while crmtel was away (on a phone, or on a mobile the call was forwarded to: the
number it was answered on comes too), who took the call over in a transfer crmtel did not see (the tracker's
transfer rule, applied by the CDR path), and phones rung meanwhile. CDR times are whole seconds, each
standing for a span of instants (:mod:`crmtel.cdr.spans`): the end crmtel stored stays when it lies in the
span where the CDR and the live start and answer put the call's end (crmtel saw it), else the call ends in
the middle of that span, on the call's own clock (a record is never a mix of two clocks). A second backfill
finds the end in the span and changes nothing.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta

from crmtel.cdr.spans import CallSpans, Span, clock_offset, end_span, record_spans
from crmtel.domain import CallRecord, MissedReason, Outcome, QueueOutcome, QueueVisit

# Ring and talk times: CDR times are whole seconds (truncated); live times have milliseconds.
TOLERANCE = 1.5


def _offset(record: CallRecord, when: datetime | None) -> float | None:
    return None if when is None else (when - record.started_at).total_seconds()


def _seconds(start: datetime, end: datetime) -> float:
    return max(0.0, round((end - start).total_seconds(), 3))


def corrected(
    seen: CallRecord, cdr: CallRecord, spans: CallSpans | None = None, tolerance: float = TOLERANCE
) -> CallRecord | None:
    """``seen`` with what ``cdr`` knows better, or None when they already agree.

    ``spans`` are the CDR's times as its legs wrote them (:func:`crmtel.cdr.spans.call_spans`); without them,
    ``cdr``'s own times are read as whole seconds.
    """
    if cdr.ended_at is None:
        return None
    spans = spans or record_spans(cdr)
    start = seen.started_at
    ending = end_span(seen, spans)
    window = ending.span
    seen_to_end = seen.ended_at is not None and ending.saw(seen.ended_at)
    ended_at = seen.ended_at if seen.ended_at is not None and seen_to_end else window.middle()
    answered_by, answered_at = seen.answered_by, seen.answered_at
    answered_on = seen.answered_on
    outcome, reason = seen.outcome, seen.missed_reason
    # A record read back from the store has no extras; the CDR's give the party number for lookups.
    extra = {**cdr.extra, **seen.extra}
    if answered_by is None and cdr.answered_by is not None and cdr.answered_at is not None:
        # Answered while crmtel was away (on a phone, or on a mobile the call was forwarded to).
        answered_by = cdr.answered_by
        answered_at = _answer(seen, cdr, cdr.answered_at, spans, window)
        answered_on = cdr.answered_on
        outcome, reason = Outcome.ANSWERED, None
        _take_transfer(extra, cdr)
    elif answered_by is not None and _taken_over(seen, cdr, seen_to_end):
        # Transferred while crmtel was away: the tracker's transfer rule, applied by the CDR, which saw the
        # call go on to the phone that took over. The first answer stays where crmtel saw it.
        answered_by = cdr.answered_by
        answered_on = cdr.answered_on
        _take_transfer(extra, cdr)
    elif answered_by is not None and answered_on is None and cdr.answered_by == answered_by:
        answered_on = cdr.answered_on
    elif answered_by is None:
        outcome = Outcome.MISSED
        reason = seen.missed_reason or cdr.missed_reason
    if answered_at is not None and answered_at > ended_at:
        answered_at = ended_at
    rang = _rang(seen.rang, cdr.rang)
    queue_visits = _visits(seen, cdr, ended_at, tolerance)
    ring_end = answered_at if answered_at is not None else ended_at
    better = replace(
        seen,
        ended_at=ended_at,
        answered_by=answered_by,
        answered_at=answered_at,
        answered_on=answered_on,
        outcome=outcome,
        missed_reason=reason,
        rang=rang,
        ring_seconds=_seconds(start, ring_end),
        talk_seconds=_seconds(answered_at, ended_at) if answered_at is not None else 0.0,
        caller_name=seen.caller_name or cdr.caller_name,
        recording_file=seen.recording_file or cdr.recording_file,
        recording_url=seen.recording_url or cdr.recording_url,
        queue=seen.queue or cdr.queue,
        queue_visits=queue_visits,
        extra=extra,
        # Sent on through the trunk after crmtel's view ended: the CDR saw it.
        transferred_to=seen.transferred_to or (None if seen_to_end else cdr.transferred_to),
    )
    if not seen_to_end or _differs(seen, better, tolerance):
        return better
    return None


def _answer(seen: CallRecord, cdr: CallRecord, answered: datetime, spans: CallSpans, end: Span) -> datetime:
    """An answer crmtel did not see (``answered`` by the CDR), on the call's clock: in the CDR's span for it,
    narrowed by the end's span less the answered leg's billsec."""
    if spans.answer is None:
        return seen.started_at + (answered - cdr.started_at)
    window = spans.answer.shifted(clock_offset(seen, spans))
    if spans.talked is not None:
        window = (window & Span(end.lo - spans.talked.hi, end.hi - spans.talked.lo)) or window
    return window.middle()


def _taken_over(seen: CallRecord, cdr: CallRecord, seen_to_end: bool) -> bool:
    """Whether the CDR saw the call taken over (a transfer) from the manager crmtel last saw answer it.

    Only past where crmtel's view ended (``seen_to_end`` False: it never saw the end — still live, closed
    by a resync when it noticed, late, or at a dropped AMI link, early — so the CDR saw more of it): a call
    crmtel followed to its end keeps its own answerer. The CDR's
    transfer must start from a phone crmtel saw answer (the last one, or the one it saw hand over), and end
    on another phone than those.
    """
    taker = cdr.answered_by
    source = cdr.extra.get("transferred_from")
    if taker is None or source is None or taker == seen.answered_by:
        return False
    known = {seen.answered_by, seen.extra.get("transferred_from")} - {None}
    if source not in known or taker in known:
        return False
    return not seen_to_end


def _take_transfer(extra: dict[str, str], cdr: CallRecord) -> None:
    source = cdr.extra.get("transferred_from")
    if source is not None:
        extra["transferred_from"] = source


def _rang(seen: tuple[str, ...], cdr: tuple[str, ...]) -> tuple[str, ...]:
    """Who was offered the call, first offer first.

    A call followed from its start knows every offer (the CDR then names no phone it lacks): its order
    stands. A call crmtel picked up half-way (a restart, a reconnect) saw only the later offers: the CDR's
    order, which covers the whole call, goes first.
    """
    if set(cdr) <= set(seen):
        return seen
    return cdr + tuple(ext for ext in seen if ext not in cdr)


def _shifted(visit: QueueVisit, by: timedelta, end: datetime) -> QueueVisit:
    left = None if visit.left_at is None else min(visit.left_at + by, end)
    return replace(visit, joined_at=min(visit.joined_at + by, end), left_at=left)


def _visits(
    seen: CallRecord, cdr: CallRecord, ended_at: datetime, tolerance: float
) -> tuple[QueueVisit, ...]:
    """The caller's queue waits: as seen live, except a wait crmtel did not see end.

    A wait still open, or closed after the call's true end (a resync closed it when crmtel noticed: "abandoned"
    after 599 s), takes how and when the CDR says it ended (laid on the call's own start, as the end is) and
    the phones it offered meanwhile. A call with no waits seen (crmtel picked it up after the queue, or it
    was read back from the store without them) takes the CDR's.
    """
    by = seen.started_at - cdr.started_at
    if not seen.queue_visits:
        return tuple(_shifted(v, by, ended_at) for v in cdr.queue_visits)
    late = ended_at + timedelta(seconds=tolerance)
    out: list[QueueVisit] = []
    for i, visit in enumerate(seen.queue_visits):
        if visit.outcome is not None and visit.left_at is not None and visit.left_at <= late:
            out.append(visit)
            continue
        # The CDR's wait in the same queue at the same place, else its last wait in that queue.
        same = [v for v in cdr.queue_visits if v.queue == visit.queue]
        truth = (
            cdr.queue_visits[i]
            if i < len(cdr.queue_visits) and cdr.queue_visits[i].queue == visit.queue
            else None
        )
        truth = truth or (same[-1] if same else None)
        if truth is None or truth.outcome is None:
            out.append(
                replace(
                    visit,
                    left_at=min(visit.left_at or ended_at, ended_at),
                    outcome=visit.outcome or QueueOutcome.ABANDONED,
                )
            )
            continue
        moved = _shifted(truth, by, ended_at)
        offered = visit.offered + tuple(ext for ext in truth.offered if ext not in visit.offered)
        out.append(
            replace(
                visit,
                left_at=moved.left_at,
                outcome=truth.outcome,
                answered_by=truth.answered_by,
                offered=offered,
            )
        )
    return tuple(out)


def closed_at(seen: CallRecord, at: datetime) -> CallRecord:
    """A call still stored as live whose channels are gone and of which no CDR is known: closed at ``at``."""
    end = max(at, seen.started_at)
    answered = seen.answered_at is not None and seen.answered_by is not None
    return replace(
        seen,
        ended_at=end,
        outcome=Outcome.ANSWERED if answered else Outcome.MISSED,
        missed_reason=None if answered else (seen.missed_reason or MissedReason.NO_ANSWER),
        ring_seconds=_seconds(seen.started_at, seen.answered_at if seen.answered_at is not None else end),
        talk_seconds=_seconds(seen.answered_at, end) if seen.answered_at is not None else 0.0,
        # A wait still open ended with the call, as the tracker ends it when the caller's channel goes.
        queue_visits=tuple(
            v if v.outcome is not None else replace(v, left_at=end, outcome=QueueOutcome.ABANDONED)
            for v in seen.queue_visits
        ),
    )


def _differs(old: CallRecord, new: CallRecord, tolerance: float) -> bool:
    if (old.outcome, old.answered_by, old.answered_on, old.transferred_to, old.rang) != (
        new.outcome,
        new.answered_by,
        new.answered_on,
        new.transferred_to,
        new.rang,
    ):
        return True
    if (old.recording_file, old.caller_name) != (new.recording_file, new.caller_name):
        return True
    if _wait_facts(old) != _wait_facts(new):
        return True
    pairs = [
        (old.ring_seconds, new.ring_seconds),
        (old.talk_seconds, new.talk_seconds),
        (_offset(old, old.ended_at), _offset(new, new.ended_at)),
    ]
    return any(a is None or b is None or abs(a - b) > tolerance for a, b in pairs)


def _wait_facts(record: CallRecord) -> list[tuple[object, ...]]:
    return [
        (
            v.queue,
            v.outcome,
            v.answered_by,
            v.offered,
            None if v.wait_seconds is None else round(v.wait_seconds),
        )
        for v in record.queue_visits
    ]
