"""The calls ringing or in progress right now, and which extension must hear what about them (pure)."""

from __future__ import annotations

import enum
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
from crmtel.push import messages
from crmtel.push.messages import Card

# A call whose end we never heard of (lost AMI connection, crash) is forgotten after this long.
STALE_AFTER = timedelta(hours=12)


class LegState(enum.StrEnum):
    """Where one extension stands in a call."""

    RINGING = "ringing"
    ANSWERED = "answered"
    LOST = "lost"  # someone else answered
    STOPPED = "stopped"  # stopped ringing, nobody answered here


@dataclass(frozen=True, slots=True)
class Addressed:
    """A message for everyone watching ``extension``."""

    extension: str
    message: dict[str, Any]


@dataclass(slots=True)
class LiveCall:
    """What the page needs to redraw one live call."""

    call_id: str
    info: CallRinging | None
    card: Card | None
    last_at: datetime
    legs: dict[str, LegState] = field(default_factory=dict)
    answered_by: str | None = None
    answered_by_name: str | None = None
    answered_at: datetime | None = None
    ring_msgs: dict[str, dict[str, Any]] = field(default_factory=dict)

    def answered_message(self, extension: str) -> dict[str, Any]:
        """``call.answered`` for ``extension`` (the answerer itself or a loser)."""
        assert self.answered_by is not None
        return messages.answered(
            self.call_id,
            extension,
            self.answered_by,
            self.answered_by_name,
            self.answered_at or self.last_at,
            self.info,
            self.card,
        )


class LiveCalls:
    """A reducer over live call events: keeps the calls in flight and addresses the page messages."""

    def __init__(self) -> None:
        self._calls: dict[str, LiveCall] = {}

    def __len__(self) -> int:
        return len(self._calls)

    def get(self, call_id: str) -> LiveCall | None:
        """The live call with this id."""
        return self._calls.get(call_id)

    def card(self, call_id: str) -> Card | None:
        """The card already built for a live call."""
        call = self._calls.get(call_id)
        return call.card if call else None

    def involves(self, call_id: str, extensions: frozenset[str]) -> bool:
        """Whether the live call rang at (or was answered by) one of ``extensions``."""
        call = self._calls.get(call_id)
        return call is not None and not extensions.isdisjoint(call.legs)

    def apply(
        self, event: CallEvent, *, card: Card | None = None, answered_by_name: str | None = None
    ) -> list[Addressed]:
        """Fold one event in; return the messages it causes, each addressed to one extension."""
        self._prune(event.at)
        match event:
            case CallRinging():
                return self._ringing(event, card)
            case CallAnswered():
                return self._answered(event, card, answered_by_name)
            case CallRingStopped():
                return self._ring_stopped(event, answered_by_name)
            case CallEnded():
                return self._ended(event)
            case CallQueued():
                # Queue waits are the heads' board's business (``crmtel.board``), not a manager's popup.
                return []

    def snapshot(self, extensions: frozenset[str] | None) -> list[Addressed]:
        """What a (re)connecting page must be shown now: its ringing and answered calls (None = everyone's)."""
        out: list[Addressed] = []
        for call in self._calls.values():
            for ext, state in call.legs.items():
                if extensions is not None and ext not in extensions:
                    continue
                if state in (LegState.RINGING, LegState.ANSWERED) and ext in call.ring_msgs:
                    out.append(Addressed(ext, call.ring_msgs[ext]))
                if state is LegState.ANSWERED and call.info is not None:
                    out.append(Addressed(ext, call.answered_message(ext)))
        return out

    def set_card(self, call_id: str, card: Card) -> list[Addressed]:
        """The card arrived after the popup: store it and send it to every phone still on the call."""
        call = self._calls.get(call_id)
        if call is None:
            return []
        call.card = card
        data = messages.card_json(card)
        for msg in call.ring_msgs.values():
            msg["card"] = data
        return [
            Addressed(ext, messages.card_update(call_id, ext, card))
            for ext, state in call.legs.items()
            if state in (LegState.RINGING, LegState.ANSWERED)
        ]

    def _fill_card(self, call: LiveCall, card: Card | None) -> list[Addressed]:
        """A card that came with a later event of a call shown so far without one (``set_card``'s messages)."""
        if card is None or call.card is not None:
            return []
        return self.set_card(call.call_id, card)

    def _prune(self, now: datetime) -> None:
        stale = [cid for cid, c in self._calls.items() if now - c.last_at > STALE_AFTER]
        for cid in stale:
            del self._calls[cid]

    def _ringing(self, event: CallRinging, card: Card | None) -> list[Addressed]:
        call = self._calls.get(event.call_id)
        if call is None:
            call = LiveCall(event.call_id, event, card, event.at)
            self._calls[event.call_id] = call
        untold = call.info is None
        call.info = call.info or event
        # The card read for this phone fills in the popups the call's earlier phones were sent without one.
        filled = self._fill_card(call, card)
        call.last_at = event.at
        if untold and call.answered_by == event.extension:
            # Its answer came before anything rang (a call found on the PBX after a restart): the card now.
            msg = messages.ringing(event, call.card)
            call.ring_msgs[event.extension] = msg
            return [
                *filled,
                Addressed(event.extension, msg),
                Addressed(event.extension, call.answered_message(event.extension)),
            ]
        if call.legs.get(event.extension) in (LegState.ANSWERED, LegState.RINGING):
            return filled
        if call.answered_by is not None and event.direction is not Direction.OUTBOUND:
            # Offered after someone already answered (late event): nothing to ring about.
            return filled
        call.legs[event.extension] = LegState.RINGING
        msg = messages.ringing(event, call.card)
        call.ring_msgs[event.extension] = msg
        return [*filled, Addressed(event.extension, msg)]

    def _answered(self, event: CallAnswered, card: Card | None, name: str | None) -> list[Addressed]:
        call = self._calls.get(event.call_id)
        if call is None:
            call = LiveCall(event.call_id, None, card, event.at)
            self._calls[event.call_id] = call
        filled = self._fill_card(call, card)
        call.last_at = event.at
        if call.legs.get(event.extension) is LegState.ANSWERED:
            return filled
        call.answered_by = event.extension
        call.answered_by_name = name
        call.answered_at = event.at
        call.legs[event.extension] = LegState.ANSWERED
        if call.info is None:
            # Nothing rang first (a manager's own outbound call): no caller to show, so no popup.
            return filled
        out = [*filled, Addressed(event.extension, call.answered_message(event.extension))]
        for ext, state in call.legs.items():
            if state is LegState.RINGING:
                call.legs[ext] = LegState.LOST
                out.append(Addressed(ext, call.answered_message(ext)))
        return out

    def _ring_stopped(self, event: CallRingStopped, name: str | None) -> list[Addressed]:
        call = self._calls.get(event.call_id)
        if call is None or call.legs.get(event.extension) is not LegState.RINGING:
            return []
        call.last_at = event.at
        if event.answered_by and event.answered_by != event.extension:
            # The tracker saw the answer elsewhere before we did: close this card as answered by them.
            call.answered_by = call.answered_by or event.answered_by
            call.answered_by_name = call.answered_by_name or name
            call.answered_at = call.answered_at or event.at
            call.legs[event.extension] = LegState.LOST
            return [Addressed(event.extension, call.answered_message(event.extension))]
        call.legs[event.extension] = LegState.STOPPED
        return [
            Addressed(
                event.extension, messages.ring_stopped(event.call_id, event.extension, event.reason, event.at)
            )
        ]

    def _ended(self, event: CallEnded) -> list[Addressed]:
        call = self._calls.pop(event.call_id, None)
        record = event.record
        involved = dict.fromkeys(
            [
                *(call.legs if call else ()),
                *record.rang,
                *([record.answered_by] if record.answered_by else []),
            ]
        )
        return [Addressed(ext, messages.ended(event.call_id, ext, record, event.at)) for ext in involved]
