"""Call cards: who is on the line, built from the record store."""

from __future__ import annotations

from typing import Protocol

from crmtel.domain import CallRinging, Direction
from crmtel.phones import PhoneKind, normalize
from crmtel.push.messages import Card, OpenDeal, RecentCall
from crmtel.store.db import Database
from crmtel.store.history import CallHistory, CardFacts

RECENT_CALLS = 5


class CardSource(Protocol):
    """Builds the card for the outside party of a call."""

    async def card_for(self, event: CallRinging) -> Card:
        """The card for the call ``event`` rings for."""
        ...


def other_party(event: CallRinging) -> str | None:
    """The outside party's raw number: the dialled number of an outbound call, else the caller."""
    return event.dialled if event.direction is Direction.OUTBOUND else event.caller_number


def card_from_facts(number: str, facts: CardFacts) -> Card:
    """The card for a known or unknown outside number (pure)."""
    recent = tuple(
        RecentCall(
            started_at=c.started_at,
            direction=c.direction,
            outcome=c.outcome,
            answered_by=c.answered_by,
            talk_seconds=c.talk_seconds,
            missed_reason=c.missed_reason,
        )
        for c in facts.recent[:RECENT_CALLS]
    )
    best = facts.lookup.best
    if best is None:
        return Card(kind="new_lead", number=number, recent_calls=recent)
    tied = tuple(m.name for m in facts.lookup.matches[1:] if m.rank == best.rank)
    return Card(
        kind=best.kind.value,
        number=number,
        party_id=best.id,
        name=best.name,
        company=best.company,
        category=best.category.value if best.category else None,
        manager_name=best.manager_name,
        manager_active=best.manager_active,
        turnover=best.turnover,
        turnover_month=best.turnover_month,
        stop_list=best.stop_list,
        via_contact=best.via_contact,
        also=tied,
        recent_calls=recent,
        open_deals=tuple(OpenDeal(d.id, d.title, d.amount, d.stage) for d in facts.deals),
    )


class StoreCards:
    """Cards read from the record store."""

    def __init__(self, db: Database, *, region: str = "RU") -> None:
        self._history = CallHistory(db)
        self._region = region

    async def card_for(self, event: CallRinging) -> Card:
        """The card for the outside party of the call (``hidden``/``internal`` when there is none)."""
        raw = other_party(event)
        phone = normalize(raw, self._region)
        if phone.kind is PhoneKind.EXTENSION:
            return Card(kind="internal", number=phone.value)
        if phone.e164 is None:
            return Card(kind="hidden", number=None)
        facts = await self._history.card_facts(phone.e164, raw)
        return card_from_facts(phone.e164, facts)
