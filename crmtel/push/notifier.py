"""Turns the tracker's live call events into page messages: card lookup, then fan-out through the hub."""

from __future__ import annotations

import asyncio
import time
from typing import Protocol

import structlog

from crmtel.domain import CallAnswered, CallEnded, CallEvent, CallRinging, CallRingStopped
from crmtel.errors import StoreUnavailable
from crmtel.push.cards import CardSource, other_party
from crmtel.push.hub import Hub
from crmtel.push.messages import Card
from crmtel.store.db import Database
from crmtel.store.managers import ManagerRepository

log = structlog.get_logger(__name__)


class ExtensionNames(Protocol):
    """Who answers on an extension (for "answered by …")."""

    async def name_of(self, extension: str) -> str | None:
        """The name of the manager on ``extension``, if any."""
        ...


class ManagerNames:
    """Managers' names by extension, from the store, cached for a few minutes."""

    def __init__(self, db: Database, *, ttl: float = 300.0) -> None:
        self._repo = ManagerRepository(db)
        self._ttl = ttl
        self._cache: dict[str, tuple[float, str | None]] = {}

    async def name_of(self, extension: str) -> str | None:
        """The name of the manager on ``extension`` (None when unknown or the store is down)."""
        now = time.monotonic()
        hit = self._cache.get(extension)
        if hit is not None and now - hit[0] < self._ttl:
            return hit[1]
        try:
            manager = await self._repo.by_extension(extension)
        except StoreUnavailable as err:
            log.warning("push.manager_name_unavailable", extension=extension, error=str(err))
            return None
        name = manager.name if manager else None
        self._cache[extension] = (now, name)
        return name


class Notifier:
    """The push side of call tracking: ``publish`` is what the AMI service calls for every live event."""

    def __init__(
        self, hub: Hub, cards: CardSource, names: ExtensionNames, *, card_timeout: float = 1.0
    ) -> None:
        self._hub = hub
        self._cards = cards
        self._names = names
        self._card_timeout = card_timeout
        self._pending: dict[str, asyncio.Future[Card]] = {}

    async def publish(self, event: CallEvent) -> None:
        """Send the pages watching the event's extensions what changed; never raises for a bad card lookup."""
        match event:
            case CallRinging():
                card = await self._card(event)
                self._hub.apply(event, card=card)
            case CallAnswered():
                self._hub.apply(event, answered_by_name=await self._names.name_of(event.extension))
            case CallRingStopped():
                name = await self._names.name_of(event.answered_by) if event.answered_by else None
                self._hub.apply(event, answered_by_name=name)
            case CallEnded():
                self._hub.apply(event)

    async def _card(self, event: CallRinging) -> Card:
        known = self._hub.live.card(event.call_id)
        if known is not None:
            return known
        pending = self._pending.get(event.call_id)
        if pending is not None:
            # Ring-all offers the call to several phones at once: one lookup serves them all.
            return await asyncio.shield(pending)
        future: asyncio.Future[Card] = asyncio.get_running_loop().create_future()
        self._pending[event.call_id] = future
        try:
            card = await self._lookup(event)
            future.set_result(card)
            return card
        finally:
            if not future.done():
                future.set_result(Card(kind="unavailable", number=other_party(event)))
            del self._pending[event.call_id]

    async def _lookup(self, event: CallRinging) -> Card:
        try:
            async with asyncio.timeout(self._card_timeout):
                return await self._cards.card_for(event)
        except (StoreUnavailable, TimeoutError) as err:
            log.warning("push.card_unavailable", call_id=event.call_id, error=repr(err))
            return Card(kind="unavailable", number=other_party(event))
