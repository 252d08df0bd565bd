"""Surviving gaps: snapshot -> restore mid-call resumes exactly; resync closes vanished calls and adopts new ones."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from crmtel.ami import events as ev
from crmtel.calls.tracker import CallStarted, Effect, new_state, reduce, restore, resync, snapshot
from crmtel.calls.tracker.model import TrackerState
from crmtel.domain import CallEnded, CallRecord, CallRingStopped, Direction, MissedReason, Outcome
from tests.fixtures.traces import BASE_TIME, SCENARIOS, ended, load_messages, run, to_events

TEMPLATE = "/rec/{pbx}/{linkedid}/{basename}"


def _fresh() -> TrackerState:
    return new_state("pbx1", recording_url_template=TEMPLATE)


def _records(effects: list[Effect]) -> dict[str, CallRecord]:
    return {e.record.linkedid: e.record for e in ended(effects)}


def _restart(state: TrackerState) -> TrackerState:
    """What a restarted crmtel has: a fresh tracker plus every live call's JSON snapshot from the database."""
    fresh = _fresh()
    for linkedid in state.calls:
        data = snapshot(state, linkedid)
        assert data is not None
        fresh = restore(fresh, json.loads(json.dumps(data)))
    return fresh


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_restore_at_every_point_gives_the_uninterrupted_record(scenario: str) -> None:
    """Cutting the stream anywhere, saving live calls as JSON and restoring them yields the same final record."""
    events = list(to_events(load_messages(scenario)))
    _, whole = run(_fresh(), events)
    expected = _records(whole)
    for cut in range(len(events) + 1):
        state, before = run(_fresh(), events[:cut])
        _, after = run(_restart(state), events[cut:])
        assert _records(before + after) == expected, f"cut at event {cut}"


def test_snapshot_of_unknown_call_is_none() -> None:
    """Asking for a call the tracker does not hold gives None."""
    assert snapshot(_fresh(), "nope") is None


@pytest.mark.parametrize(
    "data",
    [
        {},
        {"v": 99, "linkedid": "1.1", "started_at": "2026-01-01T00:00:00+00:00"},
        {"v": 1, "linkedid": "1.1"},
        {"v": 1, "linkedid": "1.1", "started_at": "yesterday"},
        {"v": 1, "linkedid": "1.1", "started_at": "2026-01-01T00:00:00+00:00", "legs": [{"name": "x"}]},
        {"v": 1, "linkedid": "1.1", "started_at": "2026-01-01T00:00:00+00:00", "direction": "sideways"},
        {"v": 1, "linkedid": 5, "started_at": "2026-01-01T00:00:00+00:00"},
    ],
)
def test_malformed_snapshot_raises_value_error(data: dict[str, object]) -> None:
    """A corrupt live_state is reported as ValueError (the caller logs it), never anything else."""
    with pytest.raises(ValueError, match=r"."):
        restore(_fresh(), data)


def _prefix_until(scenario: str, predicate: str) -> TrackerState:
    """The state after the scenario's events up to (and including) the first one of type ``predicate``."""
    state = _fresh()
    events = list(to_events(load_messages(scenario)))
    for event in events:
        state, _ = run(state, [event])
        if type(event).__name__ == predicate:
            break
    return state


def test_resync_closes_a_talking_call_that_vanished() -> None:
    """Mid-talk, an empty channel list means the call ended while we were away: answered, owner kept."""
    state = _prefix_until("direct-answered", "BridgeEnter")
    (call,) = state.calls.values()
    at = BASE_TIME + timedelta(seconds=30)
    state, effects = resync(state, [], at)
    (done,) = ended(list(effects))
    assert done.record.outcome is Outcome.ANSWERED
    assert done.record.answered_by == "101"
    assert done.record.ended_at == at
    assert call.answered_at is not None
    assert done.record.talk_seconds == pytest.approx((at - call.answered_at).total_seconds(), abs=0.01)
    assert not state.calls
    assert not state.channels
    assert not state.bridges


def test_resync_closes_a_ringing_call_as_caller_gave_up() -> None:
    """A call last seen ringing 101 that vanished is missed: the caller hung up while the phone rang."""
    state = _prefix_until("direct-caller-gives-up", "DialState")
    state, effects = resync(state, [], BASE_TIME + timedelta(seconds=10))
    stopped = [e for e in effects if isinstance(e, CallRingStopped)]
    assert [s.extension for s in stopped] == ["101"]
    (done,) = ended(list(effects))
    assert done.record.outcome is Outcome.MISSED
    assert done.record.missed_reason is MissedReason.CALLER_HUNG_UP_RINGING


def test_resync_closes_a_queued_call_as_abandoned() -> None:
    """A call last seen waiting in a queue that vanished counts as abandoned in the queue."""
    state = _prefix_until("queue-abandoned", "QueueCallerJoin")
    state, effects = resync(state, [], BASE_TIME + timedelta(seconds=10))
    (done,) = ended(list(effects))
    assert done.record.missed_reason is MissedReason.ABANDONED_IN_QUEUE
    assert done.record.queue == "retail"


def _listing(state: TrackerState, at_seconds: float) -> list[ev.CoreShowChannel]:
    """A CoreShowChannels answer listing every channel the state knows (as if nothing had changed)."""
    out = []
    for call in state.calls.values():
        for leg in call.legs.values():
            info = ev.ChannelInfo(name=leg.name, uniqueid=leg.uniqueid, linkedid=call.linkedid, state=6)
            out.append(ev.CoreShowChannel(BASE_TIME + timedelta(seconds=at_seconds), info, leg.bridge))
    return out


def test_resync_with_everything_still_there_changes_nothing() -> None:
    """When every known channel is still listed, resync emits nothing and keeps the calls."""
    state = _prefix_until("direct-answered", "BridgeEnter")
    new, effects = resync(state, _listing(state, 3.0), BASE_TIME + timedelta(seconds=3))
    assert effects == ()
    assert new.calls == state.calls


def test_resync_drops_only_the_legs_that_are_gone() -> None:
    """A queue call whose losing leg vanished keeps going; the leg's ringing is stopped."""
    state = _prefix_until("queue-ringall-answered", "DialState")
    listing = [c for c in _listing(state, 2.0) if "103" not in c.channel.name]
    state, effects = resync(state, listing, BASE_TIME + timedelta(seconds=2))
    assert [e.extension for e in effects if isinstance(e, CallRingStopped)] == ["103"]
    assert not ended(list(effects))
    assert len(state.calls) == 1


def test_resync_adopts_a_call_in_progress() -> None:
    """Channels we never saw are adopted as a call (answered if a manager's phone is bridged) and end normally."""
    lid = "1795480000.1"
    at = BASE_TIME + timedelta(seconds=100)
    trunk = ev.ChannelInfo(
        "PJSIP/trunk-00000099", lid, lid, 6, "79031112233", "Maria", None, None, "from-trunk", "4951234567"
    )
    phone = ev.ChannelInfo("PJSIP/102-0000009a", "1795480000.2", lid, 6, "102", "Boris Orlov")
    listing = [
        ev.CoreShowChannel(at, phone, "BR", "Dial", "", 40),
        ev.CoreShowChannel(at, trunk, "BR", "Queue", "retail,t", 55),
    ]
    state, effects = resync(_fresh(), listing, at)
    started = [e for e in effects if isinstance(e, CallStarted)]
    assert len(started) == 1
    record = started[0].record
    assert record.direction is Direction.INBOUND
    assert record.caller_number == "+79031112233"
    assert record.answered_by == "102"
    assert record.started_at == at - timedelta(seconds=55)
    end = at + timedelta(seconds=5)
    state, after = run(state, [ev.Hangup(end, phone, 16), ev.Hangup(end, trunk, 16)])
    (done,) = ended(after)
    assert done.record.outcome is Outcome.ANSWERED
    assert done.record.ended_at == end
    assert not state.calls


def test_resync_after_restore_closes_calls_that_ended_during_downtime() -> None:
    """Restart mid-call, then the PBX lists no channels: the restored call is closed with what was known."""
    state = _restart(_prefix_until("wholesale-local-members", "AgentConnect"))
    state, effects = resync(state, [], BASE_TIME + timedelta(seconds=60))
    (done,) = ended(list(effects))
    assert isinstance(done, CallEnded)
    assert done.record.answered_by == "104"
    assert done.record.queue == "wholesale"
    assert done.record.recording_url is not None
    assert done.record.recording_url.startswith("/rec/pbx1/1795462106.23/in-4951234567")


def _real_snapshot() -> dict[str, object]:
    state = _prefix_until("wholesale-local-members", "AgentConnect")
    (linkedid,) = state.calls
    data = snapshot(state, linkedid)
    assert data is not None
    return data


_REAL_SNAPSHOT = _real_snapshot()
_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4),
    max_leaves=12,
)


@settings(max_examples=200, deadline=None)
@given(key=st.sampled_from(sorted(_REAL_SNAPSHOT)), value=_JSON)
def test_corrupted_snapshot_field_restores_or_raises_value_error(key: str, value: object) -> None:
    """One field of a real snapshot replaced by arbitrary JSON: restore raises ValueError or the call goes on."""
    data = {**_REAL_SNAPSHOT, key: value}
    try:
        state = restore(_fresh(), data)
    except ValueError:
        return
    events = list(to_events(load_messages("wholesale-local-members")))
    state, _ = run(state, events)
    state, _ = resync(state, [], BASE_TIME + timedelta(hours=1))
    assert not state.calls


def test_resync_closes_a_restored_call_without_channels() -> None:
    """A restored call that lists no channels at all is closed by the next resync, not kept forever."""
    state = restore(_fresh(), {**_REAL_SNAPSHOT, "legs": []})
    state, effects = resync(state, [], BASE_TIME + timedelta(hours=1))
    assert len(ended(list(effects))) == 1
    assert not state.calls


def _talking_then_lost(lost_after: float) -> tuple[TrackerState, datetime]:
    """The answered call of ``direct-answered`` (its recorder's FullyBooted seen), then the connection lost."""
    state = _prefix_until("direct-answered", "BridgeEnter")
    lost_at = BASE_TIME + timedelta(seconds=lost_after)
    state, effects = reduce(state, ev.Disconnected(lost_at))
    assert effects == ()
    assert len(state.calls) == 1
    return state, lost_at


def test_calls_of_a_pbx_that_restarted_end_when_the_connection_was_lost() -> None:
    """kill -9 of Asterisk mid-talk: the next login's Uptime says it booted after the loss, so the call ended
    at the loss (not at the re-login 40 s later), and its talk time stops there too."""
    state, lost_at = _talking_then_lost(12.0)
    (call,) = state.calls.values()
    relogin = BASE_TIME + timedelta(seconds=52)
    state, _ = reduce(state, ev.FullyBooted(relogin, uptime=3))
    state, effects = resync(state, [], relogin)
    (done,) = ended(list(effects))
    assert done.record.ended_at == lost_at
    assert call.answered_at is not None
    assert done.record.talk_seconds == pytest.approx((lost_at - call.answered_at).total_seconds(), abs=0.01)
    assert done.record.answered_by == "101"
    assert (state.lost_at, state.restarted) == (None, False)


def test_calls_gone_after_a_reconnect_to_the_same_pbx_end_at_the_resync() -> None:
    """A network cut, the PBX up all along (Uptime grew with the clock): a call gone from the listing ended
    somewhere in the gap and keeps the resync's time, as before."""
    state, _ = _talking_then_lost(12.0)
    assert state.booted_at is not None
    relogin = BASE_TIME + timedelta(seconds=52)
    uptime = int((relogin - state.booted_at).total_seconds())
    state, _ = reduce(state, ev.FullyBooted(relogin, uptime=uptime))
    assert not state.restarted
    state, effects = resync(state, [], relogin)
    (done,) = ended(list(effects))
    assert done.record.ended_at == relogin


def test_a_pbx_that_does_not_say_its_uptime_is_never_taken_for_restarted() -> None:
    """No Uptime (an AMI user without the system class): the resync's time, as before."""
    state, _ = _talking_then_lost(12.0)
    relogin = BASE_TIME + timedelta(seconds=52)
    state, _ = reduce(state, ev.FullyBooted(relogin))
    state, effects = resync(state, [], relogin)
    (done,) = ended(list(effects))
    assert done.record.ended_at == relogin


def test_a_restart_first_seen_without_an_earlier_uptime_is_judged_against_the_loss() -> None:
    """crmtel never heard the PBX's boot time before the loss: a start after the loss is a restart."""
    state = replace(_prefix_until("direct-answered", "BridgeEnter"), booted_at=None)
    lost_at = BASE_TIME + timedelta(seconds=12)
    state, _ = reduce(state, ev.Disconnected(lost_at))
    relogin = BASE_TIME + timedelta(seconds=20)
    state, _ = reduce(state, ev.FullyBooted(relogin, uptime=5))
    assert state.restarted
    state, effects = resync(state, [], relogin)
    assert [e.record.ended_at for e in ended(list(effects))] == [lost_at]


def test_a_second_drop_after_a_restart_keeps_the_first_loss() -> None:
    """Restarted PBX, connection lost again before the listing: the calls still died at the first loss."""
    state, lost_at = _talking_then_lost(12.0)
    state, _ = reduce(state, ev.FullyBooted(BASE_TIME + timedelta(seconds=30), uptime=2))
    state, _ = reduce(state, ev.Disconnected(BASE_TIME + timedelta(seconds=31)))
    state, effects = resync(state, [], BASE_TIME + timedelta(seconds=40))
    assert [e.record.ended_at for e in ended(list(effects))] == [lost_at]
