"""The board's pure reducer over the live events of real traces: waiting, talking, done, and its bounds."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from crmtel.board.models import STALE_AFTER, BoardState, TodayCounts
from crmtel.calls.tracker import new_state
from crmtel.domain import (
    CallAnswered,
    CallEnded,
    CallEvent,
    CallQueued,
    CallRinging,
    CallRingStopped,
    StopReason,
)
from tests.fixtures.traces import load_messages, run, to_events


def _events(scenario: str) -> list[CallEvent]:
    _, effects = run(new_state("pbx1"), to_events(load_messages(scenario)))
    return [
        e
        for e in effects
        if isinstance(e, CallQueued | CallRinging | CallRingStopped | CallAnswered | CallEnded)
    ]


def _shape(board: BoardState, now: datetime) -> tuple[dict[str, int], list[str]]:
    msg = board.message(now)
    return {q["queue"]: q["waiting"] for q in msg["queues"]}, [c["extension"] for c in msg["talking"]]


def test_a_queue_call_waits_then_talks_then_leaves_the_board() -> None:
    """queue-ringall-answered: 1 waiting in retail, then 103 talking, then nothing (retail stays listed)."""
    board = BoardState()
    seen = []
    for event in _events("queue-ringall-answered"):
        if board.apply(event, "Vera"):
            seen.append(_shape(board, event.at))
    assert seen[0] == ({"retail": 1}, [])
    assert ({"retail": 0}, ["103"]) in seen
    assert seen[-1] == ({"retail": 0}, [])


def test_an_abandoned_caller_stops_waiting_and_never_talks() -> None:
    """queue-abandoned: waiting, then gone; nobody was ever on the call."""
    board = BoardState()
    shapes = [_shape(board, e.at) for e in _events("queue-abandoned") if board.apply(e)]
    assert shapes[0] == ({"retail": 1}, [])
    assert all(talking == [] for _, talking in shapes)
    assert shapes[-1] == ({"retail": 0}, [])


def test_direct_calls_show_who_talks_with_the_manager_name_and_since() -> None:
    """direct-answered: 101 on the call since the answer, named as the directory says."""
    board = BoardState()
    events = _events("direct-answered")
    answered = next(e for e in events if isinstance(e, CallAnswered))
    for event in events[: events.index(answered) + 1]:
        board.apply(event, "Анна Смирнова" if isinstance(event, CallAnswered) else None)
    (talking,) = board.message(answered.at)["talking"]
    assert (talking["extension"], talking["manager"]) == ("101", "Анна Смирнова")
    assert talking["since"].endswith("Z")
    assert talking["number"] == "+79161110001"


def test_counts_and_a_new_day() -> None:
    """Counts come from the store; a new day resets them and forgets yesterday's quiet queues."""
    board = BoardState()
    assert board.set_counts(TodayCounts(5, 2, 1), {"retail", "wholesale"})
    assert not board.set_counts(TodayCounts(5, 2, 1), {"retail"})
    assert board.message(datetime.now(UTC))["today"] == {"answered": 5, "missed": 2, "called_back": 1}
    board.new_day()
    msg = board.message(datetime.now(UTC))
    assert msg["today"] == {"answered": 0, "missed": 0, "called_back": 0}
    assert msg["queues"] == []


def test_calls_whose_end_was_never_heard_are_forgotten() -> None:
    """A waiting caller with no news for longer than STALE_AFTER leaves the board at the next event."""
    board = BoardState()
    events = _events("queue-abandoned")
    board.apply(events[0])
    later = events[0].at + STALE_AFTER + timedelta(minutes=1)
    other = CallRingStopped("pbx1:other", "101", StopReason.NO_ANSWER, None, later)
    assert board.apply(other)
    assert _shape(board, later) == ({"retail": 0}, [])


def test_configured_queues_are_always_on_the_board() -> None:
    """The queues routing sends calls to show with zero waiting on a quiet day, and after midnight too."""
    board = BoardState(configured=frozenset({"retail", "wholesale"}))
    now = datetime.now(UTC)
    assert _shape(board, now) == ({"retail": 0, "wholesale": 0}, [])
    board.new_day()
    assert _shape(board, now) == ({"retail": 0, "wholesale": 0}, [])


def test_an_outbound_call_shows_the_number_dialled_not_the_manager_as_the_caller() -> None:
    """outbound-answered: Anna (101) dials 8 916 111-00-01; the board's other party is that number, not «Анна
    Смирнова» (the caller of a call we place is our own manager)."""
    board = BoardState()
    events = _events("outbound-answered")
    answered = next(e for e in events if isinstance(e, CallAnswered))
    for event in events[: events.index(answered) + 1]:
        board.apply(event, "Анна Смирнова" if isinstance(event, CallAnswered) else None)
    (talking,) = board.message(answered.at)["talking"]
    assert (talking["extension"], talking["manager"]) == ("101", "Анна Смирнова")
    assert (talking["number"], talking["name"]) == ("+79161110001", None)
