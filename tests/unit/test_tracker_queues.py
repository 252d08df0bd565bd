"""Queue waits the tracker records from the real traces: join, members offered, answered/abandoned, wait."""

from __future__ import annotations

from datetime import timedelta

import pytest

from crmtel.ami import events as ev
from crmtel.ami.events import AmiEvent, QueueCallerJoin
from crmtel.calls.tracker import new_state, restore, resync, snapshot
from crmtel.calls.tracker.model import TrackerState
from crmtel.domain import CallQueued, QueueOutcome, QueueVisit
from tests.fixtures.traces import BASE_TIME, ended, load_messages, run, to_events

# scenario -> (queue, outcome, answered by, offered in the queue, wait seconds from Asterisk's HoldTime)
EXPECTED: dict[str, tuple[str, QueueOutcome, str | None, tuple[str, ...], int]] = {
    "queue-ringall-answered": ("retail", QueueOutcome.ANSWERED, "103", ("102", "103"), 2),
    "queue-abandoned": ("retail", QueueOutcome.ABANDONED, None, ("102", "103"), 6),
    "wholesale-local-members": ("wholesale", QueueOutcome.ANSWERED, "104", ("104",), 1),
    "direct-noanswer-then-queue": ("retail", QueueOutcome.ANSWERED, "102", ("102", "103"), 2),
    "direct-busy-then-queue": ("retail", QueueOutcome.ANSWERED, "102", ("102", "103"), 2),
    "anonymous-caller": ("retail", QueueOutcome.ANSWERED, "102", ("102", "103"), 1),
}


def _visits(scenario: str) -> tuple[QueueVisit, ...]:
    _, effects = run(new_state("pbx1"), to_events(load_messages(scenario)))
    (call,) = ended(effects)
    return call.record.queue_visits


@pytest.mark.parametrize("scenario", sorted(EXPECTED))
def test_each_queue_trace_records_one_wait_with_its_offers_and_outcome(scenario: str) -> None:
    """Join → answer/abandon gives the queue, who answered, the real phones offered and Asterisk's hold time."""
    queue, outcome, answered_by, offered, hold = EXPECTED[scenario]
    (visit,) = _visits(scenario)
    assert (visit.queue, visit.outcome, visit.answered_by, visit.offered) == (
        queue,
        outcome,
        answered_by,
        offered,
    )
    assert visit.wait_seconds is not None
    assert abs(visit.wait_seconds - hold) <= 1


@pytest.mark.parametrize("scenario", ["direct-answered", "direct-caller-gives-up", "outbound-answered"])
def test_calls_that_never_joined_a_queue_have_no_wait(scenario: str) -> None:
    """Only QueueCallerJoin starts a wait: a personal manager's ring or an outbound call is none."""
    assert _visits(scenario) == ()


def test_personal_manager_rung_before_the_queue_is_not_a_queue_offer() -> None:
    """direct-busy-then-queue rang 101 directly first: the retail wait offers only its own members."""
    (visit,) = _visits("direct-busy-then-queue")
    assert "101" not in visit.offered


def test_queue_waits_are_announced_live_as_waiting_then_their_outcome() -> None:
    """The board hears CallQueued(waiting) at the join and CallQueued(answered) at the answer, in order."""
    _, effects = run(new_state("pbx1"), to_events(load_messages("queue-ringall-answered")))
    queued = [e for e in effects if isinstance(e, CallQueued)]
    assert [(e.queue, e.outcome) for e in queued] == [("retail", None), ("retail", QueueOutcome.ANSWERED)]
    assert queued[0].joined_at == queued[1].joined_at < queued[1].at


def _waiting() -> tuple[TrackerState, list[AmiEvent]]:
    """The queue-abandoned call just after it joined the queue, and the events still to come."""
    events = list(to_events(load_messages("queue-abandoned")))
    half = next(i for i, e in enumerate(events) if isinstance(e, QueueCallerJoin)) + 2
    state, _ = run(new_state("pbx1"), events[:half])
    return state, events[half:]


def test_a_waiting_caller_survives_a_restart_through_the_snapshot() -> None:
    """A call snapshotted while waiting in the queue restores with its open wait and ends with its outcome."""
    state, rest = _waiting()
    (linkedid,) = state.calls
    saved = snapshot(state, linkedid)
    assert saved is not None
    resumed = restore(new_state("pbx1"), saved)
    assert resumed.calls[linkedid].queue_visits == state.calls[linkedid].queue_visits
    _, effects = run(resumed, rest)
    (call,) = ended(effects)
    (visit,) = call.record.queue_visits
    assert visit.outcome is QueueOutcome.ABANDONED


def test_malformed_queue_visits_in_a_snapshot_are_refused() -> None:
    """A damaged live_state is a ValueError (logged and skipped by the service), never a crash."""
    state, _ = _waiting()
    saved = snapshot(state, next(iter(state.calls)))
    assert saved is not None
    for bad in ("nope", [1], [{"queue": "retail"}], [{"queue": "q", "joined_at": "x"}]):
        with pytest.raises(ValueError, match=r"queue visit|queue_visits|snapshot|isoformat"):
            restore(new_state("pbx1"), {**saved, "queue_visits": bad})


def test_a_caller_found_waiting_by_a_resync_gets_a_queue_wait() -> None:
    """After a reconnect, a channel listed in Queue(retail) with nobody answering is waiting since its start."""
    at = BASE_TIME + timedelta(minutes=5)
    lid = "1795490000.1"
    trunk = ev.ChannelInfo("PJSIP/trunk-000000aa", lid, lid, 6, "+79031112233", None, context="from-trunk")
    state, effects = resync(
        new_state("pbx1"), [ev.CoreShowChannel(at, trunk, None, "Queue", "retail,t", 25)], at
    )
    (visit,) = state.calls[lid].queue_visits
    assert (visit.queue, visit.outcome, visit.joined_at) == ("retail", None, at - timedelta(seconds=25))
    assert [e.queue for e in effects if isinstance(e, CallQueued)] == ["retail"]
