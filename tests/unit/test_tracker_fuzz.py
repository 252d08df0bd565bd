"""Property tests: random, garbled or reordered events never make the tracker raise or corrupt its state."""

from __future__ import annotations

from datetime import timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from crmtel.ami import events as ev
from crmtel.ami.events import parse_event
from crmtel.ami.protocol import Message
from crmtel.calls.tracker import Effect, new_state, reduce, resync
from crmtel.calls.tracker.model import TrackerState
from crmtel.domain import CallEnded, Outcome
from tests.fixtures.traces import BASE_TIME, SCENARIOS, load_messages, to_events


def _check(state: TrackerState) -> None:
    """Every channel index entry points at a call holding that leg, and the other way round."""
    for uid, linkedid in state.channels.items():
        assert linkedid in state.calls
        assert uid in state.calls[linkedid].legs
    for linkedid, call in state.calls.items():
        assert call.linkedid == linkedid
        for uid in call.legs:
            assert state.channels.get(uid) == linkedid
        assert set(call.ringing) <= set(call.legs)
        assert len(set(call.rang)) == len(call.rang)
    for members in state.bridges.values():
        assert members
        assert all(uid in state.channels for uid in members)


def _drain(state: TrackerState, events: list[ev.AmiEvent]) -> list[Effect]:
    effects: list[Effect] = []
    for event in events:
        state, out = reduce(state, event)
        effects.extend(out)
        _check(state)
    # The PBX then reports no channels at all: every call must close cleanly.
    state, out = resync(state, [], BASE_TIME + timedelta(hours=1))
    effects.extend(out)
    assert not state.calls
    assert not state.channels
    assert not state.bridges
    for effect in effects:
        if isinstance(effect, CallEnded):
            assert effect.record.ended_at is not None
            assert effect.record.outcome in (Outcome.ANSWERED, Outcome.MISSED)
            assert effect.record.ring_seconds >= 0
            assert effect.record.talk_seconds >= 0
    return effects


_TIMES = st.integers(min_value=0, max_value=120).map(lambda s: BASE_TIME + timedelta(seconds=s))
_CHANNELS = st.builds(
    ev.ChannelInfo,
    name=st.sampled_from(
        [
            "PJSIP/101-00000001",
            "PJSIP/102-00000002",
            "PJSIP/trunk-00000003",
            "Local/104@agents-00000000;1",
            "Local/104@agents-00000000;2",
            "SIP/103-0a",
            "IAX2/provider-7",
            "Garbage",
            "PJSIP/-",
        ]
    ),
    uniqueid=st.sampled_from(["1.1", "1.2", "1.3", "2.1", "2.2", "3.1"]),
    linkedid=st.sampled_from(["1.1", "2.1", "3.1", "9.9"]),
    state=st.sampled_from([None, 0, 4, 5, 6, 99]),
    caller_num=st.sampled_from(
        [None, "101", "79161110001", "+7 (916) 111-00-01", "anonymous", "x" * 200, "'; --"]
    ),
    caller_name=st.sampled_from([None, "Анна", "\x00\u202e", ""]),
    exten=st.sampled_from([None, "s", "102", "89161110001", "4951234567", "+", "h"]),
)
_OPT_CHANNELS = st.one_of(st.none(), _CHANNELS)
_TEXT = st.sampled_from(["retail", "wholesale", "", "x" * 300])
_STATUS = st.sampled_from(["ANSWER", "CANCEL", "BUSY", "NOANSWER", "CHANUNAVAIL", "weird"])
_BRIDGES = st.sampled_from(["b1", "b2", "b3"])
_EVENTS = st.one_of(
    st.builds(ev.Newchannel, _TIMES, _CHANNELS),
    st.builds(ev.Newstate, _TIMES, _CHANNELS),
    st.builds(ev.NewCallerid, _TIMES, _CHANNELS),
    st.builds(ev.DialBegin, _TIMES, _OPT_CHANNELS, _CHANNELS, st.sampled_from([None, "102", "+7916@trunk"])),
    st.builds(ev.DialEnd, _TIMES, _OPT_CHANNELS, _CHANNELS, _STATUS),
    st.builds(ev.BridgeEnter, _TIMES, _CHANNELS, _BRIDGES),
    st.builds(ev.BridgeLeave, _TIMES, _CHANNELS, _BRIDGES),
    st.builds(ev.Hangup, _TIMES, _CHANNELS, st.sampled_from([None, 16, 17, 26])),
    st.builds(
        ev.VarSet,
        _TIMES,
        _CHANNELS,
        st.sampled_from(sorted(ev.WANTED_VARIABLES)),
        st.one_of(st.none(), _TEXT),
    ),
    st.builds(ev.QueueCallerJoin, _TIMES, _CHANNELS, _TEXT),
    st.builds(ev.QueueCallerLeave, _TIMES, _CHANNELS, _TEXT),
    st.builds(ev.QueueCallerAbandon, _TIMES, _CHANNELS, _TEXT),
    st.builds(ev.AgentConnect, _TIMES, _CHANNELS, _OPT_CHANNELS, _TEXT, st.none(), st.none()),
    st.builds(
        ev.BlindTransfer,
        _TIMES,
        st.sampled_from(["Success", "Fail"]),
        _OPT_CHANNELS,
        _OPT_CHANNELS,
        st.one_of(st.none(), _BRIDGES),
        st.none(),
        st.sampled_from([None, "102", "s"]),
    ),
    st.builds(
        ev.AttendedTransfer,
        _TIMES,
        st.sampled_from(["Success", "Fail"]),
        _OPT_CHANNELS,
        _OPT_CHANNELS,
        st.one_of(st.none(), _BRIDGES),
        st.one_of(st.none(), _BRIDGES),
        st.sampled_from([None, "Bridge", "Link"]),
        transferee=_OPT_CHANNELS,
        transfer_target=_OPT_CHANNELS,
    ),
    st.builds(ev.Rename, _TIMES, st.sampled_from(["1.1", "2.2", "7.7"]), st.none(), st.just("PJSIP/105-1")),
)


@settings(max_examples=400, deadline=None)
@given(st.lists(_EVENTS, max_size=40))
def test_random_event_sequences_never_break_the_tracker(events: list[ev.AmiEvent]) -> None:
    """Any sequence of events over a few shared channels keeps the state consistent and closes cleanly."""
    _drain(new_state("pbx1", recording_url_template="{nope}/{basename}"), events)


_ALL_TRACE_EVENTS = [event for scenario in SCENARIOS for event in to_events(load_messages(scenario))]


@settings(max_examples=200, deadline=None)
@given(st.lists(st.integers(min_value=0, max_value=len(_ALL_TRACE_EVENTS) - 1), max_size=120))
def test_dropped_duplicated_reordered_real_events_never_break_the_tracker(picks: list[int]) -> None:
    """Real events with arbitrary drops, duplicates and reordering (lost or replayed frames) are handled."""
    _drain(new_state("pbx1"), [_ALL_TRACE_EVENTS[i] for i in picks])


@settings(max_examples=200, deadline=None)
@given(st.lists(st.lists(st.tuples(st.text(max_size=12), st.text(max_size=40)), max_size=12), max_size=30))
def test_garbage_messages_through_parse_and_reduce_never_raise(frames: list[list[tuple[str, str]]]) -> None:
    """Arbitrary header lists (with real event names mixed in) go through parse_event and reduce without raising."""
    names = ["Newchannel", "Hangup", "DialEnd", "BridgeEnter", "VarSet", "QueueCallerJoin"]
    events: list[ev.AmiEvent] = []
    for i, headers in enumerate(frames):
        msg = Message(
            (("Event", names[i % len(names)]), ("Uniqueid", "1.1"), ("Channel", "PJSIP/1-1"), *headers)
        )
        parsed = parse_event(msg, BASE_TIME + timedelta(seconds=i))
        if parsed is not None:
            events.append(parsed)
    _drain(new_state("pbx1"), events)


def test_dial_end_cancel_twice_is_harmless() -> None:
    """Replaying every DialEnd CANCEL of the ringall trace a second time changes neither effects nor record."""
    events = list(to_events(load_messages("queue-ringall-answered")))
    doubled: list[ev.AmiEvent] = []
    for event in events:
        doubled.append(event)
        if isinstance(event, ev.DialEnd) and event.status == "CANCEL":
            doubled.append(event)
    once = _drain(new_state("pbx1"), events)
    twice = _drain(new_state("pbx1"), doubled)
    assert once == twice
