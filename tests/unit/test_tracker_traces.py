"""The tracker on the real Asterisk 22 traces: one correct record per scenario, also when interleaved."""

from __future__ import annotations

from typing import Any

import pytest

from crmtel.ami.events import Cdr, Newchannel
from crmtel.calls.tracker import CallStarted, new_state
from crmtel.domain import CallAnswered, CallEnded, CallRecord, CallRinging, CallRingStopped
from tests.fixtures.traces import (
    SCENARIOS,
    ended,
    expected_caller,
    load_expected,
    load_messages,
    merge_by_time,
    run,
    shift_linkedids,
    to_events,
)

TEMPLATE = "https://pbx.example/rec/{pbx}/{basename}?call={linkedid}"


def _assert_matches(record: CallRecord, expected: dict[str, Any], linkedid_suffix: str = "") -> None:
    assert record.linkedid == expected["linkedid"] + linkedid_suffix
    assert record.direction.value == expected["direction"]
    assert record.caller_number == expected_caller(expected["caller_number"])
    name = expected["caller_name"]
    assert record.caller_name == (None if name == "<unknown>" else name)
    assert record.dialled == expected["dialled"]
    assert record.answered_by == expected["answered_by"]
    assert record.outcome is not None
    assert record.outcome.value == expected["outcome"]
    reason = record.missed_reason.value if record.missed_reason is not None else None
    assert reason == expected.get("missed_reason")
    assert list(record.rang) == expected["rang"]
    assert record.queue == expected.get("queue")
    assert record.ring_seconds == pytest.approx(expected["ring_seconds"], abs=1.0)
    assert record.talk_seconds == pytest.approx(expected["talk_seconds"], abs=1.0)
    assert record.recording_file == expected["recording_file"]
    assert record.ended_at is not None
    if expected.get("caller_hidden"):
        assert record.extra.get("caller_hidden") == "true"


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_each_trace_yields_exactly_its_expected_record(scenario: str) -> None:
    """Every recorded scenario ends in one CallEnded whose record matches expected.json."""
    state, effects = run(
        new_state("pbx1", recording_url_template=TEMPLATE), to_events(load_messages(scenario))
    )
    records = ended(effects)
    assert len(records) == 1
    _assert_matches(records[0].record, load_expected(scenario))
    assert records[0].call_id == f"pbx1:{records[0].record.linkedid}"
    assert not state.calls
    assert not state.channels
    assert not state.bridges


def test_nine_scenarios_are_present() -> None:
    """The shared trace folder holds the nine scenarios the tests rely on."""
    assert len(SCENARIOS) == 9


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_every_call_starts_once_and_ringing_is_balanced(scenario: str) -> None:
    """One CallStarted per call; every CallRinging is closed by an answer or a CallRingStopped."""
    _, effects = run(new_state("pbx1"), to_events(load_messages(scenario)))
    assert sum(isinstance(e, CallStarted) for e in effects) == 1
    rings = [e for e in effects if isinstance(e, CallRinging)]
    closes = [e for e in effects if isinstance(e, CallRingStopped | CallAnswered)]
    expected = load_expected(scenario)
    if expected["direction"] == "inbound":
        assert len(rings) >= len(expected["rang"])
        assert {r.extension for r in rings} == set(expected["rang"])
        assert len(closes) == len(rings)
    assert isinstance(effects[-1], CallEnded)


def test_losing_queue_legs_are_answered_elsewhere_not_missed() -> None:
    """Ringall: the loser's DialEnd CANCEL (sent twice) and Hangup 26 stop its ringing once, naming the winner."""
    _, effects = run(new_state("pbx1"), to_events(load_messages("queue-ringall-answered")))
    stopped = [e for e in effects if isinstance(e, CallRingStopped)]
    assert [(s.extension, s.reason, s.answered_by) for s in stopped] == [("102", "answered_elsewhere", "103")]


def test_recording_url_comes_from_the_template() -> None:
    """The recording URL fills {pbx}, {basename} and {linkedid} from the MixMonitor file."""
    _, effects = run(
        new_state("pbx7", recording_url_template=TEMPLATE), to_events(load_messages("direct-answered"))
    )
    record = ended(effects)[0].record
    assert record.recording_url == (
        "https://pbx.example/rec/pbx7/in-4951234567-1795462037.14.wav?call=1795462037.14"
    )


def test_route_variables_keep_the_crm_decision() -> None:
    """The route set by the CRM (extension 103) survives the dialplan's fallback to the retail queue."""
    _, effects = run(new_state("pbx1"), to_events(load_messages("direct-noanswer-then-queue")))
    record = ended(effects)[0].record
    assert (record.route_kind, record.route_target) == ("extension", "103")


def test_outbound_party_number_is_e164() -> None:
    """An outbound call dialled as 89161110001 is matched to the CRM as +79161110001."""
    _, effects = run(new_state("pbx1"), to_events(load_messages("outbound-answered")))
    record = ended(effects)[0].record
    assert record.extra["party_number"] == "+79161110001"
    assert record.dialled == "89161110001"


@pytest.mark.parametrize(
    ("first", "second"),
    [
        ("direct-answered", "queue-ringall-answered"),
        ("queue-abandoned", "wholesale-local-members"),
        ("direct-busy-then-queue", "outbound-answered"),
        ("direct-caller-gives-up", "direct-noanswer-then-queue"),
    ],
)
def test_interleaved_calls_each_get_their_record(first: str, second: str) -> None:
    """Two calls at once (merged by time, the second with shifted ids) both yield their own records."""
    a = load_messages(first)
    b = shift_linkedids(load_messages(second), ".9", 0.5)
    state, effects = run(new_state("pbx1"), to_events(merge_by_time(a, b)))
    records = {e.record.linkedid: e.record for e in ended(effects)}
    assert len(records) == 2
    _assert_matches(records[load_expected(first)["linkedid"]], load_expected(first))
    exp2 = load_expected(second)
    _assert_matches(records[exp2["linkedid"] + ".9"], exp2, ".9")
    assert not state.calls


def test_same_trace_twice_at_once_gives_two_records() -> None:
    """The same scenario played twice concurrently (distinct ids) gives two identical-outcome records."""
    a = load_messages("queue-abandoned")
    b = shift_linkedids(a, ".5", 0.0)
    _, effects = run(new_state("pbx1"), to_events(merge_by_time(a, b)))
    records = ended(effects)
    assert len(records) == 2
    assert {r.record.missed_reason for r in records} == {load_expected("queue-abandoned")["missed_reason"]}


def test_late_events_of_a_finished_call_do_not_revive_it() -> None:
    """Events for a call's channels after its last Hangup (replays, late VarSets) start no phantom call."""
    events = list(to_events(load_messages("direct-answered")))
    state, effects = run(new_state("pbx1"), events)
    assert len(ended(effects)) == 1
    late = [e for e in events if not isinstance(e, Newchannel)]
    state, again = run(state, late)
    assert again == []
    assert not state.calls
    assert not state.channels


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_talk_time_agrees_with_asterisk_cdr(scenario: str) -> None:
    """Talk seconds match the longest BillableSeconds of Asterisk's own Cdr events for the call (±1 s)."""
    events = list(to_events(load_messages(scenario)))
    _, effects = run(new_state("pbx1"), events)
    billable = [e.billable_seconds or 0 for e in events if isinstance(e, Cdr)]
    assert billable
    assert ended(effects)[0].record.talk_seconds == pytest.approx(max(billable), abs=1.0)


def test_call_whose_start_was_lost_is_adopted_with_what_is_known() -> None:
    """Missing the first events (Newchannel, DialBegin) still yields one record: inbound, caller, owner."""
    events = list(to_events(load_messages("direct-answered")))
    first_dial = next(i for i, e in enumerate(events) if type(e).__name__ == "DialBegin")
    state, effects = run(new_state("pbx1"), events[first_dial + 1 :])
    (done,) = ended(effects)
    record = done.record
    assert record.direction.value == "inbound"
    assert record.caller_number == "+79161110001"
    assert record.answered_by == "101"
    assert record.outcome is not None
    assert record.outcome.value == "answered"
    assert not state.calls


def test_a_call_dialled_on_the_desk_phone_rings_and_is_answered_on_the_placing_phone() -> None:
    """outbound-answered (101 dials 8 916 … from the desk phone): the placing phone gets CallRinging (outbound,
    with the number dialled) when it dials out, then CallAnswered when the far end picks up — the page's card and
    timer — and the record's ring and talk times agree with those instants."""
    _, effects = run(new_state("pbx1"), to_events(load_messages("outbound-answered")))
    rings = [e for e in effects if isinstance(e, CallRinging)]
    answers = [e for e in effects if isinstance(e, CallAnswered)]
    assert [(r.extension, r.direction.value, r.dialled, r.originate_id) for r in rings] == [
        ("101", "outbound", "89161110001", None)
    ]
    assert [a.extension for a in answers] == ["101"]
    record = ended(effects)[0].record
    assert record.answered_at == answers[0].at
    assert (answers[0].at - rings[0].at).total_seconds() == pytest.approx(record.ring_seconds, abs=0.5)
    assert effects.index(rings[0]) < effects.index(answers[0])
