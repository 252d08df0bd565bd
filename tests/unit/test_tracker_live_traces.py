"""The tracker on calls cut from the live tier's recordings of Asterisk 22.10.1 (``crmtel/fakepbx/data/live``).

Forwarded to the manager's mobile through the trunk and answered there, an attended transfer through the
``*2`` feature (whose consultation is a ``Local/`` channel), and a desk phone's unanswered outbound call.
"""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

import pytest

from crmtel.ami.client import event_time
from crmtel.ami.events import parse_event
from crmtel.ami.protocol import Message
from crmtel.calls.tracker import new_state, restore, snapshot
from crmtel.domain import CallAnswered, CallDiscarded, CallEnded, CallRecord, CallRinging, CallRingStopped
from tests.fixtures.traces import (
    BASE_TIME,
    LIVE_SCENARIOS,
    LIVE_TRACES_DIR,
    TimedMessage,
    ended,
    load_expected,
    load_messages,
    run,
    to_events,
)


def _record(messages: list[TimedMessage]) -> tuple[CallRecord, list[Any]]:
    state, effects = run(new_state("pbx1"), to_events(messages))
    records = ended(effects)
    assert len(records) == 1
    assert not state.calls
    assert not state.channels
    return records[0].record, effects


def test_the_live_traces_are_present() -> None:
    """The live-tier calls the tests below rely on ship with the package."""
    assert {"attended-transfer", "forwarded-to-mobile", "outbound-unanswered"} <= set(LIVE_SCENARIOS)
    assert {"click-mobile-answered", "followme-confirmed", "followme-unconfirmed"} <= set(LIVE_SCENARIOS)
    assert "blind-transfer-outside" in LIVE_SCENARIOS


@pytest.mark.parametrize("scenario", LIVE_SCENARIOS)
def test_each_live_trace_yields_its_expected_record(scenario: str) -> None:
    """Who answered (or nobody), the outcome, the phones offered it, the times and the recording, as recorded."""
    expected = load_expected(scenario, LIVE_TRACES_DIR)
    record, _ = _record(load_messages(scenario, LIVE_TRACES_DIR))
    assert record.linkedid == expected["linkedid"]
    assert record.direction.value == expected["direction"]
    assert (record.caller_number, record.caller_name) == (expected["caller_number"], expected["caller_name"])
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
    assert record.answered_on == expected.get("answered_on")
    assert record.extra.get("transferred_from") == expected.get("transferred_from")
    assert record.transferred_to == expected.get("transferred_to")


def test_forwarded_to_the_mobile_is_answered_by_the_forwarding_extension() -> None:
    """127's phone forwards (302) to 89997770127 through the trunk, who answers: answered by 127 on that number,
    its card stops ringing as "forwarded" and then shows the answer; not missed."""
    record, effects = _record(load_messages("forwarded-to-mobile", LIVE_TRACES_DIR))
    assert (record.answered_by, record.outcome, record.missed_reason) == ("127", "answered", None)
    assert record.answered_on == "+79997770127"
    stops = [e for e in effects if isinstance(e, CallRingStopped)]
    assert [(e.extension, e.reason) for e in stops] == [("127", "forwarded")]
    assert [e.extension for e in effects if isinstance(e, CallAnswered)] == ["127"]


def test_follow_me_without_a_forward_is_answered_by_the_phone_that_rang_last() -> None:
    """A dialplan follow-me (no ``Forward`` header: the desk phone rang, then the trunk dialled the mobile) is the
    manager's whose phone rang last."""
    messages = [
        TimedMessage(m.t, Message(tuple(h for h in m.message.headers if h[0] != "Forward")))
        for m in load_messages("forwarded-to-mobile", LIVE_TRACES_DIR)
    ]
    record, _ = _record(messages)
    assert (record.answered_by, record.answered_on) == ("127", "+79997770127")


def test_attended_transfer_through_a_local_consultation_ends_with_the_taker() -> None:
    """125 consults 126 through ``Local/126@…`` and hangs up: 126 took over, 125 is kept as transferred_from,
    the call is answered once (the talk time runs from 125's answer)."""
    record, effects = _record(load_messages("attended-transfer", LIVE_TRACES_DIR))
    assert (record.answered_by, record.extra["transferred_from"]) == ("126", "125")
    assert [e.extension for e in effects if isinstance(e, CallAnswered)] == ["125", "126"]
    assert sum(isinstance(e, CallEnded) for e in effects) == 1
    assert record.talk_seconds == pytest.approx(9.0, abs=1.0)


@pytest.mark.parametrize("scenario", LIVE_SCENARIOS)
def test_a_restart_anywhere_in_a_live_call_gives_the_same_record(scenario: str) -> None:
    """Cut the stream at every event, save the live calls as JSON snapshots and restore them in a fresh tracker:
    the forward (who forwarded, to which number), the transfer and the answer survive the restart."""
    events = list(to_events(load_messages(scenario, LIVE_TRACES_DIR)))
    _, whole = run(new_state("pbx1"), events)
    expected = [e.record for e in ended(whole)]
    for cut in range(len(events) + 1):
        state, before = run(new_state("pbx1"), events[:cut])
        fresh = new_state("pbx1")
        for linkedid in state.calls:
            data = snapshot(state, linkedid)
            assert data is not None
            fresh = restore(fresh, json.loads(json.dumps(data)))
        _, after = run(fresh, events[cut:])
        assert [e.record for e in ended(before + after)] == expected, f"cut at event {cut}"


def test_via_mobile_the_manager_places_the_call_and_the_card_rings_their_extension() -> None:
    """anna's click "via my mobile": the mobile's trunk leg is hers (not the client), the card rings 151 once the
    client is dialled, the call is answered by 151 when the client answers (talk from there), on her mobile."""
    record, effects = _record(load_messages("click-mobile-answered", LIVE_TRACES_DIR))
    assert (record.direction.value, record.caller_number, record.dialled) == (
        "outbound",
        "151",
        "89991110051",
    )
    assert (record.answered_by, record.answered_on) == ("151", "+79160000051")
    cards = [e for e in effects if isinstance(e, CallRinging)]
    assert [(e.extension, e.dialled, e.originate_id is not None) for e in cards] == [
        ("151", "89991110051", True)
    ]
    assert [e.extension for e in effects if isinstance(e, CallAnswered)] == ["151"]


def test_via_mobile_without_1_leaves_no_call() -> None:
    """boris's mobile voicemail answered and never pressed 1: the client was never dialled, so no call is recorded
    (the click-to-call audit log says "unconfirmed"), nobody answered, no card rang."""
    state, effects = run(
        new_state("pbx1"), to_events(load_messages("click-mobile-unconfirmed", LIVE_TRACES_DIR))
    )
    assert not state.calls
    assert ended(effects) == []
    assert [
        type(e).__name__ for e in effects if isinstance(e, CallDiscarded | CallAnswered | CallRinging)
    ] == ["CallDiscarded"]


def test_followme_answer_counts_only_once_1_is_pressed() -> None:
    """gleb's mobile answered the follow-me but never pressed 1: not gleb's answer, the caller went on to the
    queue; vera's pressed 1: hers, answered when she pressed it."""
    _, effects = _record(load_messages("followme-unconfirmed", LIVE_TRACES_DIR))
    assert [e for e in effects if isinstance(e, CallAnswered)] == []
    record, effects = _record(load_messages("followme-confirmed", LIVE_TRACES_DIR))
    assert [e.extension for e in effects if isinstance(e, CallAnswered)] == ["153"]
    assert record.answered_on == "+79160000053"


def test_followme_without_the_confirmation_marker_would_be_the_managers() -> None:
    """The tracker needs the dialplan's CRMTEL_FOLLOWME_TO: without it the unconfirmed mobile's answer (Dial
    CONTINUE) still is no answer — and the confirmed one (DialEnd ANSWER after the 1) is the manager's."""
    for scenario, answered in (("followme-unconfirmed", None), ("followme-confirmed", "153")):
        messages = [
            m for m in load_messages(scenario, LIVE_TRACES_DIR)
            if dict(m.message.headers).get("Variable") not in ("CRMTEL_FOLLOWME_TO", "CRMTEL_MOBILE_CONFIRMED")
        ]  # fmt: skip
        record, _ = _record(messages)
        assert record.answered_by == answered


def _mobile_side_late(messages: list[TimedMessage], moved: str, before: int) -> list[TimedMessage]:
    """The recording with the mobile's side of the call delivered just before message ``before`` instead: the
    BridgeEnters of its own bridge (its trunk leg and the ``;2`` half, once 1 was pressed) for ``"bridge"``, the
    DialEnd ANSWER of its trunk leg for ``"dial_end"``."""
    mobile = next(
        dict(m.message.headers)["DestChannel"]
        for m in messages
        if dict(m.message.headers).get("DialString") == "89160000051@trunk"
    )
    bridge = next(
        dict(m.message.headers)["BridgeUniqueid"]
        for m in messages
        if dict(m.message.headers).get("Event") == "BridgeEnter"
        and dict(m.message.headers)["Channel"] == mobile
    )

    def picked(headers: dict[str, str]) -> bool:
        if moved == "bridge":
            return headers.get("Event") == "BridgeEnter" and headers.get("BridgeUniqueid") == bridge
        return headers.get("Event") == "DialEnd" and headers.get("DestChannel") == mobile

    late = [m for m in messages if picked(dict(m.message.headers))]
    rest = [m for m in messages if m not in late]
    cut = rest.index(messages[before])
    return [*rest[:cut], *late, *rest[cut:]]


def test_via_mobile_talk_time_counts_from_the_client_whenever_the_mobiles_side_is_reported() -> None:
    """Once 1 is pressed the ``;2`` half bridges the mobile's trunk leg in its own thread while the answered
    ``;1`` half already dials the client (0.7 ms apart in the recording): under load the mobile bridge's
    BridgeEnter comes after the client's DialBegin. The mobile in a bridge (or its DialEnd ANSWER, however late)
    is not the client answering: for every such order the call is answered (talk time counted) at the client's
    DialEnd ANSWER, on the PBX's clock."""
    messages = load_messages("click-mobile-answered", LIVE_TRACES_DIR)
    headers = [dict(m.message.headers) for m in messages]
    client = next(h["DestChannel"] for h in headers if h.get("DialString") == "89991110051@trunk")
    client_up = next(
        float(h["Timestamp"])
        for h in headers
        if h.get("Event") == "DialEnd" and h.get("DestChannel") == client and h.get("DialStatus") == "ANSWER"
    )
    client_dialled = next(i for i, h in enumerate(headers) if h.get("DialString") == "89991110051@trunk")
    first_leave = next(i for i, h in enumerate(headers) if h.get("Event") == "BridgeLeave")
    for moved in ("bridge", "dial_end"):
        for before in range(client_dialled, first_leave + 1):
            events = [
                e
                for m in _mobile_side_late(messages, moved, before)
                if (e := parse_event(m.message, event_time(m.message, BASE_TIME + timedelta(seconds=m.t))))
                is not None
            ]
            _, effects = run(new_state("pbx1"), events)
            [done] = ended(effects)
            record, where = done.record, (moved, before, headers[before].get("Event"))
            assert (record.answered_by, record.answered_on) == ("151", "+79160000051"), where
            assert record.answered_at is not None
            assert record.answered_at.timestamp() == pytest.approx(client_up, abs=0.001), where
            assert [e.extension for e in effects if isinstance(e, CallAnswered)] == ["151"], where
