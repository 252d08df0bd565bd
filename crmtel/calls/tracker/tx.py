"""One reduce step: the copy-on-write working state, and the effects it emits."""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime
from typing import TypeAlias

from crmtel.calls.tracker.model import FINISHED_KEEP, Call, TrackerState, build_record, signature
from crmtel.domain import (
    CallAnswered,
    CallDiscarded,
    CallEnded,
    CallQueued,
    CallRecord,
    CallRinging,
    CallRingStopped,
    call_id,
)


@dataclass(frozen=True, slots=True)
class CallStarted:
    """A call the tracker did not know appeared; ``record`` is its first live snapshot."""

    call_id: str
    record: CallRecord
    at: datetime


@dataclass(frozen=True, slots=True)
class CallUpdated:
    """Something record-worthy changed in a live call (rang, answered, queue, recording, route…)."""

    call_id: str
    record: CallRecord
    at: datetime


Effect: TypeAlias = (
    CallStarted
    | CallUpdated
    | CallRinging
    | CallRingStopped
    | CallAnswered
    | CallEnded
    | CallQueued
    | CallDiscarded
)


class Tx:
    """One reduce step: copy-on-write views of the state's maps plus the effects emitted so far."""

    __slots__ = (
        "at",
        "before",
        "bridges",
        "calls",
        "channels",
        "effects",
        "ended",
        "finished",
        "started",
        "state",
    )

    def __init__(self, state: TrackerState, at: datetime) -> None:
        self.state = state
        self.at = at
        self.calls: dict[str, Call] | None = None
        self.channels: dict[str, str] | None = None
        self.bridges: dict[str, tuple[str, ...]] | None = None
        self.finished: dict[str, None] | None = None
        self.effects: list[Effect] = []
        # Linkedid -> the call as it was before this step (for CallUpdated), and calls born/ended here.
        self.before: dict[str, Call] = {}
        self.started: set[str] = set()
        self.ended: set[str] = set()

    # -- reading ---------------------------------------------------------------------------------
    def call(self, linkedid: str) -> Call | None:
        return (self.calls if self.calls is not None else self.state.calls).get(linkedid)

    def linkedid_of(self, uniqueid: str) -> str | None:
        return (self.channels if self.channels is not None else self.state.channels).get(uniqueid)

    def bridge_members(self, bridge_id: str) -> tuple[str, ...]:
        return (self.bridges if self.bridges is not None else self.state.bridges).get(bridge_id, ())

    # -- writing ---------------------------------------------------------------------------------
    def put(self, call: Call) -> None:
        if self.calls is None:
            self.calls = dict(self.state.calls)
        old = self.calls.get(call.linkedid)
        if old is not None and call.linkedid not in self.before:
            self.before[call.linkedid] = old
        self.calls[call.linkedid] = call

    def drop(self, linkedid: str) -> None:
        if self.calls is None:
            self.calls = dict(self.state.calls)
        self.calls.pop(linkedid, None)

    def index(self, uniqueid: str, linkedid: str | None) -> None:
        if self.channels is None:
            self.channels = dict(self.state.channels)
        if linkedid is None:
            self.channels.pop(uniqueid, None)
        else:
            self.channels[uniqueid] = linkedid

    def set_bridge(self, bridge_id: str, members: tuple[str, ...]) -> None:
        if self.bridges is None:
            self.bridges = dict(self.state.bridges)
        if members:
            self.bridges[bridge_id] = members
        else:
            self.bridges.pop(bridge_id, None)

    def was_finished(self, linkedid: str) -> bool:
        return linkedid in (self.finished if self.finished is not None else self.state.finished)

    def remember_finished(self, linkedid: str) -> None:
        if self.finished is None:
            self.finished = dict(self.state.finished)
        self.finished[linkedid] = None
        while len(self.finished) > FINISHED_KEEP:
            del self.finished[next(iter(self.finished))]

    def emit(self, effect: Effect) -> None:
        self.effects.append(effect)

    def finish(self) -> tuple[TrackerState, tuple[Effect, ...]]:
        calls = self.calls if self.calls is not None else self.state.calls
        # A new call is announced before anything else that happened to it in the same step.
        started: list[Effect] = [
            CallStarted(self.cid(linkedid), build_record(self.state, calls[linkedid]), self.at)
            for linkedid in sorted(self.started)
            if linkedid in calls
        ]
        self.effects[:0] = started
        for linkedid, old in self.before.items():
            call = calls.get(linkedid)
            if call is None or linkedid in self.started or signature(call) == signature(old):
                continue
            self.effects.append(CallUpdated(self.cid(linkedid), build_record(self.state, call), self.at))
        if self.calls is None and self.channels is None and self.bridges is None and self.finished is None:
            return self.state, tuple(self.effects)
        state = replace(
            self.state,
            calls=calls,
            channels=self.channels if self.channels is not None else self.state.channels,
            bridges=self.bridges if self.bridges is not None else self.state.bridges,
            finished=self.finished if self.finished is not None else self.state.finished,
        )
        return state, tuple(self.effects)

    def cid(self, linkedid: str) -> str:
        return call_id(self.state.pbx, linkedid)
