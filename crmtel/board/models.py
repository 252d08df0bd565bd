"""The live board's state (pure): a reducer over the live call events, and the message the page draws.

Waiting callers come from ``CallQueued`` (join, then answered/abandoned/exited), who is on a call from
``CallAnswered`` until ``CallEnded``; the day's counts are set from the record store (``TodayCounts``).
The page gets the whole board each time (a few dozen rows at most) and ticks the durations itself from
the ``since`` instants, so a missed message never leaves a wrong figure on the wall.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from crmtel.domain import (
    CallAnswered,
    CallEnded,
    CallEvent,
    CallQueued,
    CallRinging,
    CallRingStopped,
    Direction,
)
from crmtel.phones import to_e164
from crmtel.timestamps import iso_instant

BOARD_STATE = "board.state"
# A call whose end we never heard of (lost AMI connection) leaves the board after this long.
STALE_AFTER = timedelta(hours=12)
_MAX_CALLS = 10_000


@dataclass(frozen=True, slots=True)
class TodayCounts:
    """Today's calls so far (reports' definitions): answered (in and out), missed inbound, and called back."""

    answered: int = 0
    missed: int = 0
    called_back: int = 0


@dataclass(slots=True)
class _Call:
    last_at: datetime
    caller_number: str | None = None
    caller_name: str | None = None
    queue: str | None = None
    waiting_since: datetime | None = None
    extension: str | None = None
    talking_since: datetime | None = None


@dataclass(slots=True)
class BoardState:
    """Live calls as the board sees them; ``apply`` says whether the board changed."""

    queues: set[str] = field(default_factory=set)
    # The queues the configuration routes to: always on the board, even on a quiet day.
    configured: frozenset[str] = frozenset()
    # Where a dialled number without its country code is read (``8 916 …`` is Russian in RU).
    region: str = "RU"
    counts: TodayCounts = field(default_factory=TodayCounts)
    _calls: dict[str, _Call] = field(default_factory=dict)
    _names: dict[str, str] = field(default_factory=dict)

    def apply(self, event: CallEvent, name: str | None = None) -> bool:
        """Fold one event in (``name``: the manager on an answering extension); True if the board changed."""
        changed = self._prune(event.at)
        call = self._calls.get(event.call_id)
        match event:
            case CallQueued():
                call = self._call(event.call_id, event.at)
                call.caller_number = event.caller_number or call.caller_number
                call.caller_name = event.caller_name or call.caller_name
                call.queue = event.queue
                self.queues.add(event.queue)
                call.waiting_since = event.joined_at if event.outcome is None else None
                return True
            case CallRinging() if event.direction is Direction.OUTBOUND:
                # The caller of a call we place is our own manager: the other party is the number dialled.
                call = self._call(event.call_id, event.at)
                call.caller_number = (
                    call.caller_number or to_e164(event.dialled, self.region) or event.dialled
                )
                return changed
            case CallRinging():
                call = self._call(event.call_id, event.at)
                call.caller_number = call.caller_number or event.caller_number
                call.caller_name = call.caller_name or event.caller_name
                return changed
            case CallAnswered():
                call = self._call(event.call_id, event.at)
                if name:
                    self._names[event.extension] = name
                call.waiting_since = None
                call.extension = event.extension
                call.talking_since = call.talking_since or event.at
                return True
            case CallRingStopped():
                return changed
            case CallEnded():
                self._calls.pop(event.call_id, None)
                return changed or call is not None

    def set_counts(self, counts: TodayCounts, queues: set[str]) -> bool:
        """Today's counts from the store (and the queues that had calls today); True if anything changed."""
        changed = counts != self.counts or not queues <= self.queues
        self.counts = counts
        self.queues |= queues
        return changed

    def new_day(self) -> None:
        """Midnight: yesterday's quiet queues leave the board (the live calls stay)."""
        self.queues = {c.queue for c in self._calls.values() if c.queue is not None} | self.configured
        self.counts = TodayCounts()

    def message(self, now: datetime) -> dict[str, Any]:
        """The ``board.state`` message: per queue its waiting callers (longest first), the calls in progress."""
        waiting: dict[str, list[dict[str, Any]]] = {q: [] for q in self.queues | self.configured}
        talking: list[dict[str, Any]] = []
        for call_id, call in self._calls.items():
            caller = {"call_id": call_id, "number": call.caller_number, "name": call.caller_name}
            if call.waiting_since is not None and call.queue is not None:
                waiting.setdefault(call.queue, []).append(
                    {**caller, "since": iso_instant(call.waiting_since)}
                )
            elif call.talking_since is not None and call.extension is not None:
                talking.append(
                    {
                        **caller,
                        "extension": call.extension,
                        "manager": self._names.get(call.extension),
                        "queue": call.queue,
                        "since": iso_instant(call.talking_since),
                    }
                )
        queues = []
        for queue in sorted(waiting):
            callers = sorted(waiting[queue], key=lambda c: str(c["since"]))
            queues.append(
                {
                    "queue": queue,
                    "waiting": len(callers),
                    "longest_since": callers[0]["since"] if callers else None,
                    "callers": callers,
                }
            )
        talking.sort(key=lambda c: str(c["since"]))
        return {
            "type": BOARD_STATE,
            "at": iso_instant(now),
            "queues": queues,
            "talking": talking,
            "today": {
                "answered": self.counts.answered,
                "missed": self.counts.missed,
                "called_back": self.counts.called_back,
            },
        }

    def _call(self, call_id: str, at: datetime) -> _Call:
        call = self._calls.get(call_id)
        if call is None:
            if len(self._calls) >= _MAX_CALLS:
                # Bounded memory even if ends are never heard: the oldest call goes first.
                del self._calls[next(iter(self._calls))]
            call = self._calls[call_id] = _Call(last_at=at)
        call.last_at = at
        return call

    def _prune(self, now: datetime) -> bool:
        stale = [cid for cid, c in self._calls.items() if now - c.last_at > STALE_AFTER]
        for cid in stale:
            del self._calls[cid]
        return bool(stale)
