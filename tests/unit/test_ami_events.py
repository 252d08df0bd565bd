"""parse_event: real Asterisk 22 messages become typed events; bad or uninteresting input becomes None."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from crmtel.ami import events as ev
from crmtel.ami.events import parse_event
from crmtel.ami.protocol import Message
from tests.fixtures.traces import SCENARIOS, load_messages

AT = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)


def _msg(*headers: tuple[str, str]) -> Message:
    return Message(tuple(headers))


def _first(scenario: str, event: str) -> Message:
    for item in load_messages(scenario):
        if item.message.get("Event") == event:
            return item.message
    raise AssertionError(f"no {event} in {scenario}")


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_every_real_message_parses_to_its_kind(scenario: str) -> None:
    """Each handled event kind in the traces parses (one typed event per message), VarSet only when wanted."""
    seen: Counter[str] = Counter()
    wanted_varsets = 0
    for item in load_messages(scenario):
        name = item.message.get("Event")
        parsed = parse_event(item.message, AT)
        if parsed is not None:
            assert parsed.at == AT
            seen[type(parsed).__name__] += 1
        if name == "VarSet" and item.message.get("Variable") in ev.WANTED_VARIABLES:
            wanted_varsets += 1
    raw = Counter(item.message.get("Event") for item in load_messages(scenario))
    for kind in ("Newchannel", "Hangup", "DialBegin", "DialEnd", "BridgeEnter", "Cdr", "FullyBooted"):
        assert seen[kind] == raw[kind], kind
    assert seen["VarSet"] == wanted_varsets
    assert seen["DeviceStateChange"] == 0


def test_newchannel_fields_and_unknown_become_none() -> None:
    """A real Newchannel: channel fields are typed, ``<unknown>`` connected line is None, Cyrillic kept."""
    event = parse_event(_first("outbound-answered", "Newchannel"), AT)
    assert isinstance(event, ev.Newchannel)
    ch = event.channel
    assert (ch.name, ch.uniqueid, ch.linkedid) == ("PJSIP/101-0000001d", "1795462136.31", "1795462136.31")
    assert (ch.state, ch.caller_num, ch.caller_name) == (4, "101", "Анна Смирнова")
    assert (ch.connected_num, ch.connected_name) == (None, None)
    assert (ch.context, ch.exten) == ("from-phones", "89161110001")


def test_dial_end_carries_dest_and_status() -> None:
    """DialEnd has the calling channel, the Dest channel snapshot and the upper-cased status."""
    event = parse_event(_first("direct-answered", "DialEnd"), AT)
    assert isinstance(event, ev.DialEnd)
    assert event.channel is not None
    assert event.channel.name == "PJSIP/trunk-0000000e"
    assert event.dest.name == "PJSIP/101-0000000f"
    assert event.dest.uniqueid == "1795462037.15"
    assert event.status == "ANSWER"


def test_queue_and_agent_events() -> None:
    """Queue caller and agent events carry the queue, and AgentConnect its member channel."""
    join = parse_event(_first("queue-abandoned", "QueueCallerJoin"), AT)
    assert isinstance(join, ev.QueueCallerJoin)
    assert (join.queue, join.position) == ("retail", 1)
    abandon = parse_event(_first("queue-abandoned", "QueueCallerAbandon"), AT)
    assert isinstance(abandon, ev.QueueCallerAbandon)
    connect = parse_event(_first("wholesale-local-members", "AgentConnect"), AT)
    assert isinstance(connect, ev.AgentConnect)
    assert connect.dest is not None
    assert connect.dest.name == "Local/104@agents-00000000;1"
    assert (connect.interface, connect.member_name, connect.ring_time) == (
        "Local/104@agents",
        "Gleb Kozlov",
        1,
    )


def test_local_bridge_has_both_halves() -> None:
    """LocalBridge gives the ;1 and ;2 halves."""
    event = parse_event(_first("wholesale-local-members", "LocalBridge"), AT)
    assert isinstance(event, ev.LocalBridge)
    assert event.local_one.name.endswith(";1")
    assert event.local_two.name.endswith(";2")


def test_cdr_is_parsed_for_cross_checks() -> None:
    """A Cdr event yields its disposition and durations."""
    event = parse_event(_first("direct-answered", "Cdr"), AT)
    assert isinstance(event, ev.Cdr)
    assert event.disposition == "ANSWERED"
    assert event.billable_seconds == 4


def test_wanted_varset_only() -> None:
    """MIXMONITOR_FILENAME is kept (name upper-cased); DIALSTATUS and other variables are dropped."""
    chan = [("Channel", "PJSIP/1-1"), ("Uniqueid", "1.1"), ("Linkedid", "1.1")]
    kept = parse_event(
        _msg(("Event", "VarSet"), *chan, ("Variable", "mixmonitor_filename"), ("Value", "/x.wav")), AT
    )
    assert isinstance(kept, ev.VarSet)
    assert (kept.variable, kept.value) == ("MIXMONITOR_FILENAME", "/x.wav")
    dropped = parse_event(
        _msg(("Event", "VarSet"), *chan, ("Variable", "DIALSTATUS"), ("Value", "ANSWER")), AT
    )
    assert dropped is None


def test_headers_are_case_insensitive_and_first_repeat_wins() -> None:
    """Header names match in any case and the first of repeated headers is the one used."""
    msg = _msg(
        ("event", "HANGUP"),
        ("CHANNEL", "PJSIP/102-00000001"),
        ("uniqueid", "9.1"),
        ("Uniqueid", "9.2"),
        ("LinkedID", "9.0"),
        ("cause", "26"),
    )
    event = parse_event(msg, AT)
    assert isinstance(event, ev.Hangup)
    assert (event.channel.uniqueid, event.channel.linkedid, event.cause) == ("9.1", "9.0", 26)


def test_linkedid_defaults_to_uniqueid() -> None:
    """A channel without Linkedid is its own call."""
    event = parse_event(_msg(("Event", "Newchannel"), ("Channel", "SIP/101-1"), ("Uniqueid", "5.5")), AT)
    assert isinstance(event, ev.Newchannel)
    assert event.channel.linkedid == "5.5"


@pytest.mark.parametrize(
    "headers",
    [
        (("Response", "Success"), ("Message", "Authentication accepted")),
        (("Event", "RTCPSent"), ("Channel", "PJSIP/1-1"), ("Uniqueid", "1")),
        (("Event", "Newchannel"), ("Channel", "PJSIP/1-1")),
        (("Event", "Newchannel"), ("Uniqueid", "1.1")),
        (("Event", "Newchannel"), ("Channel", "<unknown>"), ("Uniqueid", "1.1")),
        (("Event", "DialEnd"), ("Channel", "PJSIP/1-1"), ("Uniqueid", "1.1"), ("DialStatus", "ANSWER")),
        (("Event", "DialEnd"), ("DestChannel", "PJSIP/1-1"), ("DestUniqueid", "1.1")),
        (("Event", "BridgeEnter"), ("Channel", "PJSIP/1-1"), ("Uniqueid", "1.1")),
        (("Event", "QueueCallerJoin"), ("Channel", "PJSIP/1-1"), ("Uniqueid", "1.1")),
        (("Event", "BlindTransfer"), ("TransfererChannel", "PJSIP/1-1")),
        (("Event", "Rename"), ("Channel", "PJSIP/1-1")),
        (),
    ],
)
def test_missing_required_headers_give_none(headers: tuple[tuple[str, str], ...]) -> None:
    """Messages lacking what their kind needs (or not events at all) are skipped, not raised on."""
    assert parse_event(Message(headers), AT) is None


def test_garbage_numbers_become_none() -> None:
    """Non-numeric or absurd integers (cause, state) become None instead of raising."""
    msg = _msg(
        ("Event", "Hangup"),
        ("Channel", "PJSIP/1-1"),
        ("Uniqueid", "1.1"),
        ("ChannelState", "up"),
        ("Cause", "9" * 40),
    )
    event = parse_event(msg, AT)
    assert isinstance(event, ev.Hangup)
    assert (event.cause, event.channel.state) == (None, None)


def test_core_show_channel_duration() -> None:
    """CoreShowChannel's HH:MM:SS duration becomes seconds; a malformed one becomes None."""
    base = [
        ("Event", "CoreShowChannel"),
        ("Channel", "PJSIP/102-1"),
        ("Uniqueid", "2.2"),
        ("Linkedid", "2.1"),
    ]
    event = parse_event(
        _msg(*base, ("BridgeId", "b1"), ("Application", "Dial"), ("Duration", "01:02:05")), AT
    )
    assert isinstance(event, ev.CoreShowChannel)
    assert (event.duration_seconds, event.bridge_id, event.application) == (3725, "b1", "Dial")
    bad = parse_event(_msg(*base, ("Duration", "1:xx:05")), AT)
    assert isinstance(bad, ev.CoreShowChannel)
    assert bad.duration_seconds is None
    done = parse_event(
        _msg(("Event", "CoreShowChannelsComplete"), ("ListItems", "3"), ("ActionID", "r1")), AT
    )
    assert done == ev.CoreShowChannelsComplete(AT, "r1", 3)


def test_transfer_events() -> None:
    """BlindTransfer and AttendedTransfer expose their channel snapshots by prefix."""
    blind = _msg(
        ("Event", "BlindTransfer"),
        ("Result", "Success"),
        ("TransfererChannel", "PJSIP/101-2"),
        ("TransfererUniqueid", "1.2"),
        ("TransfererLinkedid", "1.1"),
        ("TransfereeChannel", "PJSIP/trunk-1"),
        ("TransfereeUniqueid", "1.1"),
        ("TransfereeLinkedid", "1.1"),
        ("BridgeUniqueid", "b1"),
        ("IsExternal", "Yes"),
        ("Context", "from-phones"),
        ("Extension", "102"),
    )
    event = parse_event(blind, AT)
    assert isinstance(event, ev.BlindTransfer)
    assert event.transferee is not None
    assert (event.transferee.name, event.extension, event.is_external) == ("PJSIP/trunk-1", "102", True)
    attended = _msg(
        ("Event", "AttendedTransfer"),
        ("Result", "Success"),
        ("OrigTransfererChannel", "PJSIP/101-2"),
        ("OrigTransfererUniqueid", "1.2"),
        ("OrigBridgeUniqueid", "b1"),
        ("SecondTransfererChannel", "PJSIP/101-3"),
        ("SecondTransfererUniqueid", "2.1"),
        ("SecondBridgeUniqueid", "b2"),
        ("DestType", "Bridge"),
        ("DestBridgeUniqueid", "b1"),
        ("TransferTargetChannel", "PJSIP/102-4"),
        ("TransferTargetUniqueid", "2.2"),
    )
    event2 = parse_event(attended, AT)
    assert isinstance(event2, ev.AttendedTransfer)
    assert event2.transfer_target is not None
    assert event2.transfer_target.name == "PJSIP/102-4"
    assert (event2.orig_bridge_id, event2.second_bridge_id, event2.dest_type) == ("b1", "b2", "Bridge")
    assert event2.transferee is None


_NAMES = st.sampled_from(
    [
        "Event",
        "Channel",
        "Uniqueid",
        "Linkedid",
        "DestChannel",
        "DestUniqueid",
        "DialStatus",
        "Queue",
        "Variable",
        "Value",
        "Cause",
        "ChannelState",
        "BridgeUniqueid",
        "Result",
        "Duration",
        "Newname",
        "LocalOneChannel",
    ]
)
_EVENTS = st.sampled_from(sorted(["Newchannel", "Hangup", "DialBegin", "DialEnd", "VarSet", "Rename", "Cdr"]))


@settings(max_examples=300, deadline=None)
@given(
    event=st.one_of(_EVENTS, st.text(max_size=20)),
    headers=st.lists(st.tuples(st.one_of(_NAMES, st.text(max_size=30)), st.text(max_size=60)), max_size=25),
)
def test_parse_event_never_raises(event: str, headers: list[tuple[str, str]]) -> None:
    """Arbitrary header names and values (any Unicode, any length) never make parse_event raise."""
    result = parse_event(Message((("Event", event), *headers)), AT)
    assert result is None or result.at == AT
