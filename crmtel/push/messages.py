"""The JSON messages the managers' page receives, and the call card they carry."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from crmtel.domain import CallRecord, CallRinging
from crmtel.timestamps import iso_value

RINGING = "call.ringing"
ANSWERED = "call.answered"
RING_STOPPED = "call.ring_stopped"
ENDED = "call.ended"
CARD = "call.card"
RESULT = "call.result"
HELLO = "hello"


@dataclass(frozen=True, slots=True)
class RecentCall:
    """One of the caller's last calls, as the card lists it."""

    started_at: datetime
    direction: str
    outcome: str | None
    answered_by: str | None
    talk_seconds: float
    missed_reason: str | None = None


@dataclass(frozen=True, slots=True)
class OpenDeal:
    """An open deal of the caller's client or lead."""

    id: int
    title: str
    amount: Decimal
    stage: str


@dataclass(frozen=True, slots=True)
class Card:
    """What a manager sees about the other party while the phone rings.

    ``kind`` is ``client``, ``lead``, ``new_lead`` (an outside number nobody knows), ``hidden`` (no usable
    number: anonymous or garbage) or ``unavailable`` (the store could not be read in time).
    """

    kind: str
    number: str | None
    party_id: int | None = None
    name: str | None = None
    company: str | None = None
    category: str | None = None
    manager_name: str | None = None
    manager_active: bool = False
    turnover: Decimal | None = None
    turnover_month: date | None = None
    stop_list: bool = False
    via_contact: str | None = None
    # Other records sharing the best rank for this number: shown, never silently dropped.
    also: tuple[str, ...] = ()
    recent_calls: tuple[RecentCall, ...] = ()
    open_deals: tuple[OpenDeal, ...] = ()


def _iso(value: datetime | date | None) -> str | None:
    return iso_value(value)


def _money(value: Decimal | None) -> str | None:
    return None if value is None else f"{value:.2f}"


def card_json(card: Card | None) -> dict[str, Any] | None:
    """The card as plain JSON data."""
    if card is None:
        return None
    return {
        "kind": card.kind,
        "number": card.number,
        "party_id": card.party_id,
        "name": card.name,
        "company": card.company,
        "category": card.category,
        "manager_name": card.manager_name,
        "manager_active": card.manager_active,
        "turnover": _money(card.turnover),
        "turnover_month": _iso(card.turnover_month),
        "stop_list": card.stop_list,
        "via_contact": card.via_contact,
        "also": list(card.also),
        "recent_calls": [
            {
                "started_at": _iso(c.started_at),
                "direction": c.direction,
                "outcome": c.outcome,
                "answered_by": c.answered_by,
                "talk_seconds": round(c.talk_seconds, 1),
                "missed_reason": c.missed_reason,
            }
            for c in card.recent_calls
        ],
        "open_deals": [
            {"id": d.id, "title": d.title, "amount": _money(d.amount), "stage": d.stage}
            for d in card.open_deals
        ],
    }


def ringing(event: CallRinging, card: Card | None) -> dict[str, Any]:
    """``call.ringing``: ``event.extension`` rings for this call."""
    return {
        "type": RINGING,
        "call_id": event.call_id,
        "extension": event.extension,
        "direction": event.direction.value,
        "caller_number": event.caller_number,
        "caller_name": event.caller_name,
        "dialled": event.dialled,
        "queue": event.queue,
        "originate_id": event.originate_id,
        "at": _iso(event.at),
        "card": card_json(card),
    }


def answered(
    call_id: str,
    extension: str,
    answered_by: str,
    answered_by_name: str | None,
    at: datetime,
    info: CallRinging | None,
    card: Card | None,
) -> dict[str, Any]:
    """``call.answered``: the call was answered, by ``extension`` itself or by someone else."""
    return {
        "type": ANSWERED,
        "call_id": call_id,
        "extension": extension,
        "answered_by": answered_by,
        "answered_by_name": answered_by_name,
        "by_me": extension == answered_by,
        "direction": info.direction.value if info else None,
        "caller_number": info.caller_number if info else None,
        "caller_name": info.caller_name if info else None,
        "at": _iso(at),
        "card": card_json(card),
    }


def ring_stopped(call_id: str, extension: str, reason: str, at: datetime) -> dict[str, Any]:
    """``call.ring_stopped``: ``extension`` stopped ringing and nobody answered there (no answer, busy...)."""
    return {
        "type": RING_STOPPED,
        "call_id": call_id,
        "extension": extension,
        "reason": reason,
        "at": _iso(at),
    }


def ended(call_id: str, extension: str, record: CallRecord, at: datetime) -> dict[str, Any]:
    """``call.ended``: the call is over, with its outcome and talk time."""
    return {
        "type": ENDED,
        "call_id": call_id,
        "extension": extension,
        "direction": record.direction.value,
        "caller_number": record.caller_number,
        "caller_name": record.caller_name,
        "answered_by": record.answered_by,
        "outcome": record.outcome.value if record.outcome else None,
        "missed_reason": record.missed_reason.value if record.missed_reason else None,
        "talk_seconds": round(record.talk_seconds, 1),
        "ring_seconds": round(record.ring_seconds, 1),
        "at": _iso(at),
    }


def card_update(call_id: str, extension: str, card: Card) -> dict[str, Any]:
    """``call.card``: the card of a call whose popup went out before the store answered."""
    return {"type": CARD, "call_id": call_id, "extension": extension, "card": card_json(card)}


def result(call_id: str, code: str | None) -> dict[str, Any]:
    """``call.result``: the result picked (None: cleared) for a call, for every tab of the one who picked it."""
    return {"type": RESULT, "call_id": call_id, "result": code}


def encode(message: dict[str, Any]) -> str:
    """The websocket text frame for a message."""
    return json.dumps(message, ensure_ascii=False, separators=(",", ":"))
