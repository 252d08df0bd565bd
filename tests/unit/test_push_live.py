"""The live-call reducer: who is told what, for ring-all, answers elsewhere, no answer and the end."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from crmtel.domain import (
    CallAnswered,
    CallEnded,
    CallRecord,
    CallRinging,
    CallRingStopped,
    Direction,
    Outcome,
    StopReason,
)
from crmtel.push.live import Addressed, LiveCalls
from crmtel.push.messages import Card

T0 = datetime(2026, 11, 24, 10, 0, tzinfo=UTC)
CID = "pbx1:1795462077.20"


def ring(ext: str, *, call_id: str = CID, at: datetime = T0, name: str | None = "<unknown>") -> CallRinging:
    return CallRinging(
        call_id=call_id,
        pbx="pbx1",
        linkedid=call_id.split(":")[1],
        extension=ext,
        direction=Direction.INBOUND,
        caller_number="79031234567",
        caller_name=name,
        dialled="4951234567",
        queue="retail",
        at=at,
    )


def end(*, rang: tuple[str, ...], answered_by: str | None, call_id: str = CID) -> CallEnded:
    record = CallRecord(
        pbx="pbx1",
        linkedid=call_id.split(":")[1],
        direction=Direction.INBOUND,
        caller_number="79031234567",
        caller_name=None,
        dialled="4951234567",
        started_at=T0,
        rang=rang,
        answered_by=answered_by,
        outcome=Outcome.ANSWERED if answered_by else Outcome.MISSED,
        talk_seconds=3.0,
    )
    return CallEnded(call_id=call_id, record=record, at=T0 + timedelta(seconds=5))


def kinds(items: list[Addressed]) -> list[tuple[str, str]]:
    return [(i.extension, i.message["type"]) for i in items]


def test_ring_all_rings_every_extension_once_with_the_card() -> None:
    """Each ringing extension gets one call.ringing carrying the card; a repeated offer is not re-sent."""
    live = LiveCalls()
    card = Card(kind="client", number="+79031234567", name="OOO Romashka")
    first = live.apply(ring("102"), card=card)
    second = live.apply(ring("103"))
    again = live.apply(ring("102"))
    assert kinds(first + second) == [("102", "call.ringing"), ("103", "call.ringing")]
    assert again == []
    assert second[0].message["card"]["name"] == "OOO Romashka"


def test_answer_closes_the_other_cards_as_answered_by_the_winner() -> None:
    """When 103 answers, 103 hears it answered by itself and the still-ringing 102 hears 'answered by 103'."""
    live = LiveCalls()
    live.apply(ring("102"))
    live.apply(ring("103"))
    out = live.apply(CallAnswered(call_id=CID, extension="103", at=T0), answered_by_name="Vera Lebedeva")
    assert kinds(out) == [("103", "call.answered"), ("102", "call.answered")]
    by_ext = {i.extension: i.message for i in out}
    assert by_ext["103"]["by_me"] is True
    assert by_ext["102"]["by_me"] is False
    assert by_ext["102"]["answered_by"] == "103"
    assert by_ext["102"]["answered_by_name"] == "Vera Lebedeva"
    # The tracker's own ring-stopped for the loser (sent twice in real traces) adds nothing.
    stop = CallRingStopped(
        call_id=CID, extension="102", reason=StopReason.ANSWERED_ELSEWHERE, answered_by="103", at=T0
    )
    assert live.apply(stop) == []
    assert live.apply(stop) == []


def test_ring_stopped_with_answered_by_before_the_answer_event_closes_as_answered_elsewhere() -> None:
    """A loser's ring-stop naming the winner, arriving before CallAnswered, already says 'answered by 103'."""
    live = LiveCalls()
    live.apply(ring("102"))
    live.apply(ring("103"))
    stop = CallRingStopped(
        call_id=CID, extension="102", reason=StopReason.ANSWERED_ELSEWHERE, answered_by="103", at=T0
    )
    out = live.apply(stop, answered_by_name="Vera")
    assert kinds(out) == [("102", "call.answered")]
    assert out[0].message["answered_by"] == "103"
    answered = live.apply(CallAnswered(call_id=CID, extension="103", at=T0))
    assert kinds(answered) == [("103", "call.answered")]


def test_no_answer_stops_ringing_and_the_phone_may_ring_again_later() -> None:
    """A personal manager's no-answer sends call.ring_stopped; the queue ringing them again re-opens the card."""
    live = LiveCalls()
    live.apply(ring("103"))
    out = live.apply(
        CallRingStopped(call_id=CID, extension="103", reason=StopReason.NO_ANSWER, answered_by=None, at=T0)
    )
    assert kinds(out) == [("103", "call.ring_stopped")]
    assert out[0].message["reason"] == "no_answer"
    assert kinds(live.apply(ring("103"))) == [("103", "call.ringing")]


def test_end_reaches_everyone_involved_and_forgets_the_call() -> None:
    """call.ended goes to every extension that rang or answered, with outcome and talk time, then the call is gone."""
    live = LiveCalls()
    live.apply(ring("102"))
    live.apply(ring("103"))
    live.apply(CallAnswered(call_id=CID, extension="103", at=T0))
    out = live.apply(end(rang=("102", "103"), answered_by="103"))
    assert sorted(kinds(out)) == [("102", "call.ended"), ("103", "call.ended")]
    assert out[0].message["outcome"] == "answered"
    assert out[0].message["talk_seconds"] == 3.0
    assert len(live) == 0
    assert live.snapshot(None) == []


def test_snapshot_shows_ringing_and_answered_calls_only_for_the_asked_extensions() -> None:
    """A reconnecting page sees its ringing calls and its call in progress, not other people's calls."""
    live = LiveCalls()
    live.apply(ring("102"))
    live.apply(ring("103"))
    live.apply(ring("101", call_id="pbx1:2.2"))
    live.apply(CallAnswered(call_id=CID, extension="103", at=T0))
    assert kinds(live.snapshot(frozenset({"103"}))) == [("103", "call.ringing"), ("103", "call.answered")]
    assert kinds(live.snapshot(frozenset({"102"}))) == []
    assert kinds(live.snapshot(frozenset({"101"}))) == [("101", "call.ringing")]
    assert len(live.snapshot(None)) == 3


def test_events_for_unknown_calls_are_harmless() -> None:
    """A ring-stop for a call never seen yields nothing; an answer with no ringing first (outbound) pops nothing."""
    live = LiveCalls()
    stop = CallRingStopped(call_id="x:1", extension="101", reason=StopReason.BUSY, answered_by=None, at=T0)
    assert live.apply(stop) == []
    assert live.apply(CallAnswered(call_id="x:1", extension="101", at=T0)) == []
    assert live.snapshot(None) == []
    assert live.involves("x:1", frozenset({"101"}))
    assert kinds(live.apply(end(rang=(), answered_by="101", call_id="x:1"))) == [("101", "call.ended")]


def test_calls_never_ended_are_forgotten_after_a_long_time() -> None:
    """A call whose end was never heard of does not stay in the snapshot forever."""
    live = LiveCalls()
    live.apply(ring("102", call_id="pbx1:old", at=T0))
    live.apply(ring("103", at=T0 + timedelta(hours=13)))
    assert [i.message["call_id"] for i in live.snapshot(None)] == [CID]


def test_hostile_caller_name_is_carried_as_plain_data() -> None:
    """A caller name with markup is passed through unchanged as a JSON string (the page renders it as text)."""
    live = LiveCalls()
    out = live.apply(ring("102", name="<img src=x onerror=alert(1)>"))
    assert out[0].message["caller_name"] == "<img src=x onerror=alert(1)>"


def test_a_call_answered_before_it_rang_here_gets_its_card_and_keeps_the_pbx_answer_time() -> None:
    """A call crmtel found on the PBX after a restart is answered before it is told as ringing: the ringing
    that follows brings the card in progress, timed from the answer, and a repeat tells nothing new."""
    live = LiveCalls()
    answered_at = T0 + timedelta(seconds=4)
    assert live.apply(CallAnswered(CID, "101", answered_at)) == []
    shown = live.apply(ring("101", at=T0 + timedelta(seconds=9)))
    assert kinds(shown) == [("101", "call.ringing"), ("101", "call.answered")]
    assert shown[1].message["by_me"] is True
    assert shown[1].message["at"] == answered_at.isoformat().replace("+00:00", "Z")
    assert live.apply(ring("101", at=T0 + timedelta(seconds=9))) == []
    assert live.apply(CallAnswered(CID, "101", answered_at)) == []
    assert kinds(live.snapshot(frozenset({"101"}))) == [("101", "call.ringing"), ("101", "call.answered")]
