"""The tracker's live state is bounded whatever a PBX or a forged stream sends (issue 13)."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

from crmtel.ami import events as ev
from crmtel.calls.tracker import new_state, reduce
from crmtel.domain import CallEnded
from tests.fixtures.traces import BASE_TIME


def _trunk(uid: str, lid: str) -> ev.ChannelInfo:
    return ev.ChannelInfo(name=f"PJSIP/trunk-{uid}", uniqueid=uid, linkedid=lid, caller_num="79161110001")


def test_calls_that_never_end_are_capped_and_the_oldest_is_ended_with_its_record() -> None:
    """10,000 calls that never hang up keep at most max_live_calls; each dropped one yields its record."""
    state = replace(new_state("pbx1"), max_live_calls=100)
    ended: list[str] = []
    for i in range(10_000):
        at = BASE_TIME + timedelta(milliseconds=i)
        state, effects = reduce(state, ev.Newchannel(at, _trunk(f"{i}.1", f"{i}.1")))
        ended.extend(e.record.linkedid for e in effects if isinstance(e, CallEnded))
        assert len(state.calls) <= 100
    assert len(ended) == 9_900
    assert ended[:3] == ["0.1", "1.1", "2.1"]  # oldest first
    assert len(state.channels) <= 100


def test_a_call_with_endless_channels_keeps_at_most_max_legs() -> None:
    """Channels beyond max_legs in one Linkedid are not followed; the channel index stays as small."""
    state = replace(new_state("pbx1"), max_legs=10)
    for i in range(1000):
        state, _ = reduce(state, ev.Newchannel(BASE_TIME, _trunk(f"1.{i}", "1.0")))
    (call,) = state.calls.values()
    assert len(call.legs) == 10
    assert len(state.channels) == 10
