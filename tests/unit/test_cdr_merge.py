"""What a call crmtel saw takes from its CDR: the real end and answer, never its live details; agreement is no change."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from crmtel.cdr.merge import closed_at, corrected
from crmtel.domain import CallRecord, Direction, MissedReason, Outcome, QueueOutcome, QueueVisit

T0 = datetime(2026, 11, 23, 19, 27, 17, 400_000, tzinfo=UTC)
# Where a call seen as ``_live`` ends by its ``_cdr`` (see the test of a call closed late).
CDR_END = datetime(2026, 11, 23, 19, 27, 22, 500_000, tzinfo=UTC)


def _live(**changes: object) -> CallRecord:
    base = CallRecord(
        pbx="pbx1",
        linkedid="1795462037.14",
        direction=Direction.INBOUND,
        caller_number="+79161110001",
        caller_name="Ivan Petrov",
        dialled="4951234567",
        started_at=T0,
        rang=("101",),
        answered_by="101",
        outcome=Outcome.ANSWERED,
        answered_at=T0 + timedelta(seconds=1.5),
        # 22.9: in the second its ``_cdr``'s end (22) stands for.
        ended_at=T0 + timedelta(seconds=5.5),
        ring_seconds=1.5,
        talk_seconds=4.0,
        route_kind="extension",
        route_target="101",
        route_reason="personal manager",
        party_name="ООО Ромашка",
    )
    return replace(base, **changes)  # type: ignore[arg-type]


def _cdr(**changes: object) -> CallRecord:
    # The same call as cdr_csv has it: whole seconds, no route, no party.
    start = T0.replace(microsecond=0)
    base = _live(
        started_at=start,
        answered_at=start + timedelta(seconds=2),
        ended_at=start + timedelta(seconds=5),
        ring_seconds=2.0,
        talk_seconds=3.0,
        route_kind=None,
        route_target=None,
        route_reason=None,
        party_name=None,
        extra={"party_number": "+79161110001"},
    )
    return replace(base, **changes)  # type: ignore[arg-type]


def test_a_call_whose_live_times_agree_with_the_cdr_is_left_alone() -> None:
    """Within the CDR's one-second resolution nothing changes (a second backfill is a no-op)."""
    assert corrected(_live(), _cdr()) is None


def test_a_call_closed_late_gets_the_cdr_end_on_its_own_clock_and_keeps_the_route() -> None:
    """Closed 60 s late by a resync: end and talk come from the CDR's duration laid on the live start."""
    seen = _live(ended_at=T0 + timedelta(seconds=65), talk_seconds=63.5)
    better = corrected(seen, _cdr())
    assert better is not None
    # The CDR's end (22, standing for [22, 23)); the live start and answer plus what the CDR's readings allow
    # (more than 4 and 2 s) narrow nothing: the call ends in its middle.
    assert better.ended_at == CDR_END
    assert better.talk_seconds == 3.6
    assert better.ring_seconds == 1.5
    assert (better.route_kind, better.route_reason, better.party_name) == (
        "extension",
        "personal manager",
        "ООО Ромашка",
    )
    assert better.extra["party_number"] == "+79161110001"
    assert corrected(better, _cdr()) is None


def test_an_answer_crmtel_did_not_see_comes_from_the_cdr() -> None:
    """Ringing when crmtel went away, answered meanwhile: answered_by, outcome and talk time from the CDR."""
    seen = _live(
        answered_by=None,
        answered_at=None,
        outcome=Outcome.MISSED,
        missed_reason=MissedReason.CALLER_HUNG_UP_RINGING,
        ended_at=T0 + timedelta(seconds=40),
        ring_seconds=40.0,
        talk_seconds=0.0,
    )
    better = corrected(seen, _cdr(rang=("101", "102")))
    assert better is not None
    assert (better.answered_by, better.outcome, better.missed_reason) == ("101", Outcome.ANSWERED, None)
    assert better.rang == ("101", "102")
    assert better.talk_seconds == 3.0


def test_a_call_still_live_in_the_store_is_always_closed() -> None:
    """A row without an end takes the CDR's even if every duration matches."""
    better = corrected(_live(ended_at=None), _cdr())
    assert better is not None
    assert better.ended_at is not None


def test_closing_without_cdr_uses_what_was_known() -> None:
    """No CDR for a stale live row: closed at the check's time, answered if it was answered."""
    at = T0 + timedelta(minutes=10)
    closed = closed_at(_live(ended_at=None), at)
    assert (closed.ended_at, closed.outcome) == (at, Outcome.ANSWERED)
    missed = closed_at(_live(ended_at=None, answered_by=None, answered_at=None, outcome=None), at)
    assert (missed.outcome, missed.missed_reason, missed.talk_seconds) == (
        Outcome.MISSED,
        MissedReason.NO_ANSWER,
        0.0,
    )


def test_offers_follow_the_cdr_when_crmtel_saw_only_the_later_ones() -> None:
    """Adopted half-way it saw 102, 103 ring in the queue; the CDR knows 103 was offered first, directly."""
    seen = _live(rang=("102", "103"), ended_at=T0 + timedelta(seconds=60))
    better = corrected(seen, _cdr(rang=("103", "102", "104")))
    assert better is not None
    assert better.rang == ("103", "102", "104")
    # A call followed from its start keeps its own order.
    assert _rang_of(_live(rang=("102", "103")), _cdr(rang=("103", "102"))) == ("102", "103")


def _rang_of(seen: CallRecord, cdr: CallRecord) -> tuple[str, ...]:
    better = corrected(replace(seen, ended_at=T0 + timedelta(seconds=60)), cdr)
    assert better is not None
    return better.rang


def _wait(start: datetime, joined: float, left: float, outcome: QueueOutcome, by: str | None) -> QueueVisit:
    return QueueVisit(
        queue="retail",
        joined_at=start + timedelta(seconds=joined),
        left_at=start + timedelta(seconds=left),
        outcome=outcome,
        answered_by=by,
        offered=("102", "103"),
    )


def test_a_queue_wait_closed_by_a_late_resync_takes_the_cdrs_end() -> None:
    """Closed 599 s late as "abandoned" when crmtel noticed: the CDR's answer by 103 after 2 s wait instead."""
    seen = _live(
        answered_by=None,
        answered_at=None,
        outcome=Outcome.MISSED,
        missed_reason=MissedReason.ABANDONED_IN_QUEUE,
        ended_at=T0 + timedelta(seconds=600),
        queue_visits=(_wait(T0, 0.2, 600.0, QueueOutcome.ABANDONED, None),),
    )
    cdr = _cdr(
        answered_by="103",
        queue_visits=(_wait(T0.replace(microsecond=0), 0.0, 2.0, QueueOutcome.ANSWERED, "103"),),
    )
    better = corrected(seen, cdr)
    assert better is not None
    (visit,) = better.queue_visits
    assert (visit.outcome, visit.answered_by, visit.joined_at) == (
        QueueOutcome.ANSWERED,
        "103",
        T0 + timedelta(seconds=0.2),
    )
    assert visit.wait_seconds == pytest.approx(1.8, abs=0.01)


def test_a_queue_wait_seen_to_its_end_is_kept_and_agreement_changes_nothing() -> None:
    """A wait crmtel saw end keeps its live times; with the rest agreeing, the CDR changes nothing."""
    seen = _live(answered_by="103", queue_visits=(_wait(T0, 0.2, 1.5, QueueOutcome.ANSWERED, "103"),))
    cdr = _cdr(
        answered_by="103",
        queue_visits=(_wait(T0.replace(microsecond=0), 0.0, 2.0, QueueOutcome.ANSWERED, "103"),),
    )
    assert corrected(seen, cdr) is None
    late = corrected(replace(seen, ended_at=T0 + timedelta(seconds=30)), cdr)
    assert late is not None
    assert late.queue_visits == seen.queue_visits


def test_a_call_without_waits_read_back_takes_the_cdrs_on_its_own_clock() -> None:
    """No waits known for the call (picked up after the queue): the CDR's, laid on the call's own start."""
    cdr = _cdr(queue_visits=(_wait(T0.replace(microsecond=0), 0.0, 2.0, QueueOutcome.ANSWERED, "101"),))
    better = corrected(_live(ended_at=T0 + timedelta(seconds=30)), cdr)
    assert better is not None
    assert [(v.joined_at, v.left_at) for v in better.queue_visits] == [(T0, T0 + timedelta(seconds=2))]


def test_a_call_answered_on_a_mobile_while_crmtel_was_away_keeps_the_number_it_was_answered_on() -> None:
    """A forwarded call crmtel saw only ring: the CDR's answer on the mobile brings ``answered_on`` with it."""
    seen = _live(
        answered_by=None,
        answered_at=None,
        outcome=Outcome.MISSED,
        missed_reason=MissedReason.NO_ANSWER,
        ended_at=T0 + timedelta(seconds=40),
        ring_seconds=40.0,
        talk_seconds=0.0,
    )
    better = corrected(seen, _cdr(answered_by="127", answered_on="+79997770127"))
    assert better is not None
    assert (better.outcome, better.answered_by, better.answered_on) == (
        Outcome.ANSWERED,
        "127",
        "+79997770127",
    )
    # Read back from the store (no extras), the same record is no change: a second pass writes nothing.
    assert corrected(replace(better, extra={}), _cdr(answered_by="127", answered_on="+79997770127")) is None


def _transferred_cdr() -> CallRecord:
    return _cdr(answered_by="126", extra={"party_number": "+79161110001", "transferred_from": "125"})


def test_a_transfer_after_crmtel_lost_the_call_gives_it_to_the_phone_that_took_over() -> None:
    """crmtel saw 125 answer, then lost the link (a resync closed the call late); the CDR saw the attended
    transfer to 126: 126 answered it, 125 is ``transferred_from``, the first answer stays as crmtel saw it."""
    seen = _live(
        answered_by="125", rang=("125", "126"), ended_at=T0 + timedelta(seconds=40), talk_seconds=38.5
    )
    better = corrected(seen, replace(_transferred_cdr(), rang=("125", "126")))
    assert better is not None
    assert (better.answered_by, better.extra.get("transferred_from")) == ("126", "125")
    assert better.answered_at == seen.answered_at
    assert better.ended_at == CDR_END
    assert corrected(replace(better, extra={}), replace(_transferred_cdr(), rang=("125", "126"))) is None


def test_a_call_crmtel_followed_to_its_end_keeps_its_own_answerer() -> None:
    """The CDR's transfer only wins past where crmtel's view ended: a call seen to its true end keeps its answerer."""
    seen = _live(answered_by="125", rang=("125", "126"))
    better = corrected(seen, replace(_transferred_cdr(), rang=("125", "126")))
    assert better is None or better.answered_by == "125"


def test_a_transfer_from_a_phone_crmtel_never_saw_answer_is_not_taken() -> None:
    """The CDR's taker wins only over the answerer it took the call from (or the one crmtel saw hand it over)."""
    seen = _live(answered_by="124", rang=("124",), ended_at=T0 + timedelta(seconds=40), talk_seconds=38.5)
    better = corrected(seen, _transferred_cdr())
    assert better is not None
    assert better.answered_by == "124"
