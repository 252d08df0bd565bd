"""Where a CDR puts a call's start, answer and end: spans of instants, not points (pure: no I/O).

Asterisk measures a CDR to the microsecond, but what crmtel reads is cut down to the second: cdr_csv, cdr_pgsql's
timestamp columns and FreePBX's MariaDB table write ``start``/``answer``/``end`` truncated to the second, and
``duration``/``billsec`` are truncated too (``ast_tvdiff_ms(end, start) / 1000``). A CDR time ``15:08:07``
stands for any instant in [07, 08), a duration of 7 for any length in [7, 8). A time a source writes with a
fraction (a float or microsecond column) stands for itself. A time a source derives (FreePBX has no ``end``
column: end = calldate + duration) spans what its parts span.

Whole-second readings laid end to end add their errors up: a call seen starting at 00.04 whose CDR ends at
07 and starts at 00 was put at 07.04, and a resync's guess at 08.37 passed for it. What crmtel saw live is
exact to the millisecond (on the PBX's own clock when AMI sends Timestamps): laid next to the spans it
narrows them to where the call really ended (:func:`end_span`) — the CDR's own end, the start plus the
origin leg's duration, the live answer plus the answered leg's billsec, whichever of them apply, together.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from crmtel.cdr.models import CdrRow
from crmtel.domain import CallRecord

SECOND = timedelta(seconds=1)
# The CDR reads its clock in its own thread after the AMI event crmtel timed live (milliseconds, more under
# load): a live instant this much before a span still belongs to it. After a span only the difference of two
# such lags can put it; a resync's guess just past the span must not pass for the end crmtel saw (it would be
# up to the span's width plus this far from the truth).
EARLY = timedelta(milliseconds=200)
LATE = timedelta(milliseconds=20)
_ZERO = timedelta(0)


@dataclass(frozen=True, slots=True)
class Span:
    """The instants one CDR time may stand for: from ``lo`` (included) up to ``hi`` (``lo == hi``: exact)."""

    lo: datetime
    hi: datetime

    def __and__(self, other: Span) -> Span | None:
        lo, hi = max(self.lo, other.lo), min(self.hi, other.hi)
        return Span(lo, hi) if lo <= hi else None

    def shifted(self, by: timedelta) -> Span:
        """The same span on a clock ``by`` ahead."""
        return Span(self.lo + by, self.hi + by)

    def holds(self, when: datetime, early: timedelta = EARLY, late: timedelta = LATE) -> bool:
        """Whether the live instant ``when`` is in the span, give or take the CDR's lag (``early`` before it,
        ``late`` after)."""
        return self.lo - early <= when <= self.hi + late

    def middle(self) -> datetime:
        """The instant nearest to every one the span allows (never more than half its width off)."""
        return self.lo + (self.hi - self.lo) / 2


@dataclass(frozen=True, slots=True)
class Gap:
    """How long between two instants of one leg, as its whole seconds allow: from ``lo`` up to ``hi``."""

    lo: timedelta
    hi: timedelta

    def after(self, when: datetime) -> Span:
        """The instants this long after ``when``."""
        return Span(when + self.lo, when + self.hi)


@dataclass(frozen=True, slots=True)
class LegSpans:
    """One CDR leg's times as spans, and its two measured lengths (duration: start to end; billsec: answer
    to end)."""

    start: Span
    answer: Span | None
    end: Span
    duration: Gap
    billsec: Gap


@dataclass(frozen=True, slots=True)
class CallSpans:
    """A call's CDR times as spans on the PBX's clock.

    ``lived`` (start to end) and ``talked`` (answer to end) are there when one leg measured both ends: the leg
    that began the call, or the one that answered it, is among those that ended it.
    """

    start: Span
    answer: Span | None
    end: Span
    lived: Gap | None = None
    talked: Gap | None = None


def time_span(value: datetime) -> Span:
    """A CDR time as the instants it stands for: a whole second for a truncated one, else itself."""
    return Span(value, value) if value.microsecond else Span(value, value + SECOND)


def seconds_gap(value: float) -> Gap:
    """A CDR length (``duration``, ``billsec``) as the lengths it stands for: truncated to whole seconds."""
    lo = timedelta(seconds=value)
    return Gap(lo, lo) if value != int(value) else Gap(lo, lo + SECOND)


@dataclass(frozen=True, slots=True)
class Placed:
    """Where a leg's times go in a call record: the middle of each one's span."""

    start: datetime
    answer: datetime | None
    end: datetime

    @property
    def answer_or_start(self) -> datetime:
        """The answer, or the start of a leg never answered."""
        return self.start if self.answer is None else self.answer


def placed(row: CdrRow) -> Placed:
    """A leg's start, answer and end as a record built from the CDR alone has them: each the instant nearest
    to every one its span allows (half a second off at most for a whole second), never a truncated reading
    that is up to a second early (two seconds for FreePBX's end)."""
    spans = leg_spans(row)
    return Placed(
        spans.start.middle(), None if spans.answer is None else spans.answer.middle(), spans.end.middle()
    )


def leg_spans(row: CdrRow) -> LegSpans:
    """One leg's spans: what its source wrote, narrowed by its own measured lengths.

    A derived end (start + duration) or answer (end - billsec) spans what its parts allow.
    """
    start = time_span(row.start)
    duration, billsec = seconds_gap(row.duration), seconds_gap(row.billsec)
    from_start = Span(start.lo + duration.lo, start.hi + duration.hi)
    end = from_start if "end" in row.derived else (time_span(row.end) & from_start) or time_span(row.end)
    answer: Span | None = None
    if row.answer is not None:
        from_end = Span(end.lo - billsec.hi, end.hi - billsec.lo)
        if "answer" in row.derived:
            answer = from_end
        else:
            answer = (time_span(row.answer) & from_end) or time_span(row.answer)
    return LegSpans(start, answer, end, duration, billsec)


def call_spans(legs: Sequence[CdrRow], cdr: CallRecord) -> CallSpans:
    """The spans of the call ``cdr`` was built from ``legs`` (see :func:`crmtel.cdr.calls.call_from_legs`).

    The call starts with its first leg and ends with its last; it began with its origin's first leg (the
    channel whose Uniqueid is the Linkedid); its answer is the answered leg's (the one whose answer span
    holds ``cdr``'s). Legs hung up together end milliseconds apart: a leg whose end reads the same as the
    call's last one measured the call's end.
    """
    if not legs:
        return record_spans(cdr)
    spans = [(leg, leg_spans(leg)) for leg in legs]
    end = Span(max(s.end.lo for _, s in spans), max(s.end.hi for _, s in spans))
    start = Span(min(s.start.lo for _, s in spans), min(s.start.hi for _, s in spans))
    last = max(leg.end for leg in legs)
    origin = min(
        (item for item in spans if item[0].uniqueid and item[0].uniqueid == item[0].linkedid),
        key=lambda item: item[0].start,
        default=None,
    )
    lived = origin[1].duration if origin is not None and origin[0].end == last else None
    answer: Span | None = None
    talked: Gap | None = None
    if cdr.answered_at is not None:
        answered = [
            item
            for item in spans
            if item[0].disposition == "ANSWERED"
            and item[1].answer is not None
            and item[1].answer.holds(cdr.answered_at, _ZERO, _ZERO)
        ]
        if answered:
            leg, leg_span = max(answered, key=lambda item: item[0].end)
            answer = leg_span.answer
            talked = leg_span.billsec if leg.end == last else None
        else:
            answer = time_span(cdr.answered_at)
    return CallSpans(start, answer, end, lived, talked)


def record_spans(cdr: CallRecord) -> CallSpans:
    """The spans of a CDR call known only as its record (its legs not at hand): each time as written."""
    start, end = time_span(cdr.started_at), time_span(cdr.ended_at or cdr.started_at)
    answer = None if cdr.answered_at is None else time_span(cdr.answered_at)
    lived = Gap(end.lo - start.hi, end.hi - start.lo)
    talked = None if answer is None else Gap(end.lo - answer.hi, end.hi - answer.lo)
    return CallSpans(start, answer, end, lived, talked)


def clock_offset(seen: CallRecord, spans: CallSpans) -> timedelta:
    """How far ``seen``'s clock is ahead of the PBX's: none when its start is where the CDR's is (AMI
    Timestamps), else the two starts laid on each other (crmtel timed the call by its own clock)."""
    if spans.start.holds(seen.started_at):
        return _ZERO
    return seen.started_at - spans.start.lo


@dataclass(frozen=True, slots=True)
class Ending:
    """Where a call ended by its CDR, on a live record's clock."""

    # The CDR's own reading of the end: on the PBX's clock (AMI Timestamps), else laid on the live start.
    own: Span
    # ``own`` narrowed by the live start plus the call's duration and the live answer plus its billsec.
    span: Span

    def saw(self, when: datetime) -> bool:
        """Whether ``when`` can be the end crmtel saw: in the CDR's own reading (the Hangup comes before the
        CDR reads its clock, never after) and in the narrowed span, give or take the two readings' lags."""
        return self.own.holds(when) and self.span.holds(when)


def end_span(seen: CallRecord, spans: CallSpans) -> Ending:
    """Where the call ended, on ``seen``'s clock: the CDR's end, narrowed by the live start plus the call's
    duration and, from below, the live answer plus its billsec (when the CDR's answer is the one crmtel saw).

    Evidence that contradicts the rest (an answer crmtel timed elsewhere, an Asterisk with ``initiatedseconds``
    rounding billsec) is left out rather than trusted: the CDR's own end stands.
    """
    same_clock = spans.start.holds(seen.started_at)
    if same_clock:
        own, answer = spans.end, spans.answer
    else:
        # crmtel timed the call by its own clock: the CDR's end and answer as readings after its start.
        start = seen.started_at
        own = Span(start + (spans.end.lo - spans.start.hi), start + (spans.end.hi - spans.start.lo))
        answer = None
        if spans.answer is not None:
            answer = Span(
                start + (spans.answer.lo - spans.start.hi), start + (spans.answer.hi - spans.start.lo)
            )
    window = own
    if spans.lived is not None:
        window = (window & spans.lived.after(seen.started_at)) or window
    if (
        spans.talked is not None
        and answer is not None
        and seen.answered_at is not None
        and answer.holds(seen.answered_at)
    ):
        # A lower bound only: the CDR's answer is the caller's channel going up, which the answer crmtel saw (the
        # phone's) can precede by a few hundred milliseconds — the Hangup is at least billsec after it, but may
        # be that much more than billsec + 1 after it.
        window = (window & Span(seen.answered_at + spans.talked.lo, window.hi)) or window
    return Ending(own, window)
