"""``live_now``: at any point of every recorded call, what it says of the live calls is what a page following
the live events from the start would show (the cards ringing and in progress, with the PBX's answer time)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from crmtel.calls.tracker import live_now, new_state, reduce
from crmtel.domain import CallAnswered, CallEnded, CallQueued, CallRinging, CallRingStopped
from crmtel.push.live import Addressed, LiveCalls
from tests.fixtures.traces import (
    LIVE_SCENARIOS,
    LIVE_TRACES_DIR,
    SCENARIOS,
    TRACES_DIR,
    load_messages,
    to_events,
)

LIVE_EVENTS = (CallRinging, CallRingStopped, CallAnswered, CallEnded, CallQueued)


def _shown(items: list[Addressed], transferred: set[str]) -> set[tuple[Any, ...]]:
    """What a page draws from a snapshot: the calls, the phones ringing for calls nobody took yet, and the
    phone talking on each answered call with the PBX's answer time (a phone a transfer left is not compared,
    nor the answer time of a transferred call: the tracker keeps the first answer only, the page the taking)."""
    talking = {
        (m["call_id"], item.extension, None if m["call_id"] in transferred else m["at"])
        for item in items
        if (m := item.message)["type"] == "call.answered" and m["by_me"]
    }
    taken = {call for call, _, _ in talking}
    ringing = {
        (m["call_id"], item.extension, m["direction"], m["caller_number"])
        for item in items
        if (m := item.message)["type"] == "call.ringing" and m["call_id"] not in taken
    }
    calls = {item.message["call_id"] for item in items}
    return (
        {("call", c) for c in calls} | {("talking", *t) for t in talking} | {("ringing", *r) for r in ringing}
    )


TRACES = [pytest.param(TRACES_DIR, s, id=s) for s in SCENARIOS] + [
    pytest.param(LIVE_TRACES_DIR, s, id=f"live-{s}") for s in LIVE_SCENARIOS
]


@pytest.mark.parametrize(("folder", "scenario"), TRACES)
def test_live_now_rebuilds_what_the_live_events_built_at_every_step(folder: Path, scenario: str) -> None:
    """After each AMI event of the trace, a fresh LiveCalls fed only ``live_now`` shows what the one fed every
    live event since the start shows."""
    state = new_state("pbx1")
    followed = LiveCalls()
    steps = 0
    for event in to_events(load_messages(scenario, folder)):
        state, effects = reduce(state, event)
        for effect in effects:
            if isinstance(effect, LIVE_EVENTS):
                followed.apply(effect)
        rebuilt = LiveCalls()
        for again in live_now(state, event.at):
            rebuilt.apply(again)
        transferred = {f"pbx1:{c.linkedid}" for c in state.calls.values() if c.transferred_from}
        assert _shown(rebuilt.snapshot(None), transferred) == _shown(followed.snapshot(None), transferred), (
            event
        )
        steps += 1
    assert steps > 0
