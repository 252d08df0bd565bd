"""Turns the tracker's live call events into page messages: card lookup, then fan-out through the hub."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Coroutine
from typing import Any, Protocol

import structlog

from crmtel.domain import CallAnswered, CallEnded, CallEvent, CallRinging, CallRingStopped
from crmtel.errors import StoreUnavailable
from crmtel.push.cards import CardSource, other_party
from crmtel.push.hub import Hub
from crmtel.push.messages import Card
from crmtel.store.changes import StoreChange
from crmtel.store.db import Database
from crmtel.store.managers import ManagerRepository

log = structlog.get_logger(__name__)


class ExtensionNames(Protocol):
    """Who answers on an extension (for "answered by …")."""

    async def name_of(self, extension: str) -> str | None:
        """The name of the manager on ``extension``, if any."""
        ...


class ManagerNames:
    """Managers' names by extension, held in memory: a popup never waits on the store for them.

    The first use loads them all (crmtel.app does it at start); after that a stale list (``ttl`` passed, an
    extension nobody was known on, a committed CRM write such as a manager renamed) is reloaded by a task of
    its own, and the caller waits for it at most ``wait`` before going on with the names it has: a popup is
    not held back by a slow store, a locked one, or a pool taken by other work.
    """

    def __init__(self, db: Database, *, ttl: float = 300.0, wait: float = 0.01) -> None:
        self._repo = ManagerRepository(db)
        self._ttl = ttl
        self._wait = wait
        self._loaded_at: float | None = None
        self._names: dict[str, str] = {}
        # Moves on with every CRM write: a reload that began before one is not taken as fresh.
        self._generation = 0
        self._reload: asyncio.Task[None] | None = None
        db.on_change(self._changed)

    async def __aenter__(self) -> ManagerNames:
        return self

    async def __aexit__(self, *_exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Cancel a reload still running and wait for it."""
        task, self._reload = self._reload, None
        if task is not None:
            task.cancel()
            await asyncio.wait([task])

    def _changed(self, change: StoreChange) -> None:
        if change.everything:  # a manager, a client's manager, an import: any CRM write
            self._generation += 1
            if self._loaded_at is not None:
                self._loaded_at = -float("inf")

    async def load(self) -> None:
        """Read the names now (at start, so no popup ever waits for the first read)."""
        await self._load()

    async def name_of(self, extension: str) -> str | None:
        """The name of the manager on ``extension`` (None when unknown or the store is down)."""
        now = time.monotonic()
        if self._loaded_at is None:
            await self._load()  # nothing known yet: the only read a caller waits for
            return self._names.get(extension)
        stale = now - self._loaded_at > self._ttl
        if stale or (extension not in self._names and now - self._loaded_at > 5.0):
            if self._reload is None:
                self._reload = asyncio.create_task(self._load(), name="push.manager_names")
                self._reload.add_done_callback(self._reloaded)
            await asyncio.wait([self._reload], timeout=self._wait)
        return self._names.get(extension)

    def _reloaded(self, task: asyncio.Task[None]) -> None:
        if self._reload is task:
            self._reload = None

    async def _load(self) -> None:
        generation, started = self._generation, time.monotonic()
        try:
            managers = await self._repo.all()
        except StoreUnavailable as err:
            log.warning("push.manager_names_unavailable", error=str(err))
        else:
            self._names = {ext: m.name for m in managers for ext in m.extensions}
        # A CRM write committed while reading: what was read may predate it, so read again next time.
        self._loaded_at = started if generation == self._generation else -float("inf")


class Notifier:
    """The push side of call tracking: ``publish`` is what the AMI service calls for every live event.

    ``publish`` never waits for the record store: the card of a newly ringing call is built by a task the
    notifier owns, and that call's later events queue behind it so every page sees them in order. When the
    card takes longer than ``card_wait``, the popup goes out at once with the caller ID only and the card
    follows as ``call.card``: who is calling is shown within a blink even when the store is slow. Use it as
    an async context manager (or call ``aclose``) so those tasks are cancelled and awaited on shutdown.
    """

    def __init__(
        self,
        hub: Hub,
        cards: CardSource,
        names: ExtensionNames,
        *,
        card_wait: float = 0.01,
        card_timeout: float = 2.0,
        max_lookups: int = 16,
    ) -> None:
        self._hub = hub
        self._cards = cards
        self._names = names
        self._card_wait = card_wait
        self._card_timeout = card_timeout
        self._lookups = asyncio.Semaphore(max_lookups)
        # Events of calls whose card is being built, in arrival order (the first is the CallRinging).
        self._waiting: dict[str, list[CallEvent]] = {}
        # Calls whose card is being read (for their ringing, or for a page that connected after it).
        self._building: set[str] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        self._closed = False
        hub.cards_wanted = self._cards_wanted

    async def __aenter__(self) -> Notifier:
        return self

    async def __aexit__(self, *_exc: object) -> None:
        await self.aclose()

    async def publish(self, event: CallEvent) -> None:
        """Send the pages watching the event's extensions what changed (in order per call)."""
        if self._closed:
            return
        waiting = self._waiting.get(event.call_id)
        if waiting is not None:
            waiting.append(event)
            return
        ringing = self._card_to_read(event)
        if ringing is not None:
            self._waiting[event.call_id] = [event]
            self._building.add(event.call_id)
            self._spawn(self._with_card(ringing), f"push.card.{event.call_id}")
            return
        # No card is read for a phone nobody here watches: in a cluster every node hears every call, and
        # reading each card on all of them was two thirds of the cluster's card reads, CPU the popups then
        # waited for. A page that connects while the call is live gets its card after it (``_cards_wanted``).
        await self._deliver(event, None)

    def _card_to_read(self, event: CallEvent) -> CallRinging | None:
        """The ringing whose card to read before ``event`` goes out: a phone watched here rings, or answers a
        call that rang only where nobody here watched (a pickup), and the call has no card yet."""
        if not isinstance(event, CallRinging | CallAnswered) or not self._hub.watched(event.extension):
            return None
        # A read already under way sends its card to every phone on the call (``set_card``) when it ends.
        if self._hub.live.card(event.call_id) is not None or event.call_id in self._building:
            return None
        if isinstance(event, CallRinging):
            return event
        call = self._hub.live.get(event.call_id)
        return call.info if call is not None else None

    def _spawn(self, work: Coroutine[Any, Any, None], name: str) -> None:
        task = asyncio.create_task(work, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _cards_wanted(self, call_ids: list[str]) -> None:
        """A page connected to live calls that have no card yet: build each and send it as ``call.card``."""
        if self._closed:
            return
        for call_id in call_ids:
            call = self._hub.live.get(call_id)
            if call is None or call.info is None or call_id in self._waiting or call_id in self._building:
                continue
            self._building.add(call_id)
            self._spawn(self._late_card(call.info), f"push.late_card.{call_id}")

    async def _late_card(self, ringing: CallRinging) -> None:
        try:
            card = await self._lookup(ringing)
            if self._hub.live.card(ringing.call_id) is None:  # not built meanwhile by a new ringing
                self._hub.set_card(ringing.call_id, card)
        finally:
            self._building.discard(ringing.call_id)

    async def idle(self) -> None:
        """Wait until every card being built has been delivered (tests and benchmarks)."""
        while self._tasks:
            await asyncio.wait(list(self._tasks))

    async def aclose(self) -> None:
        """Cancel the card lookups still running and wait for them."""
        self._closed = True
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.wait(tasks)
        self._waiting.clear()

    async def _with_card(self, first: CallRinging) -> None:
        lookup = asyncio.create_task(self._lookup(first), name=f"push.card_lookup.{first.call_id}")
        try:
            done, _ = await asyncio.wait([lookup], timeout=self._card_wait)
            card = lookup.result() if done else None
            queue = self._waiting[first.call_id]
            try:
                while queue:
                    await self._deliver(queue.pop(0), card)
            finally:
                del self._waiting[first.call_id]
            if card is None:
                card = await lookup
                if self._hub.live.card(first.call_id) is None:  # not sent meanwhile by a late page's read
                    self._hub.set_card(first.call_id, card)
        finally:
            self._building.discard(first.call_id)
            lookup.cancel()
            await asyncio.wait([lookup])

    async def _deliver(self, event: CallEvent, card: Card | None) -> None:
        match event:
            case CallRinging():
                self._hub.apply(event, card=card)
            case CallAnswered():
                self._hub.apply(event, card=card, answered_by_name=await self._names.name_of(event.extension))
            case CallRingStopped():
                name = await self._names.name_of(event.answered_by) if event.answered_by else None
                self._hub.apply(event, answered_by_name=name)
            case CallEnded():
                self._hub.apply(event)

    async def _lookup(self, event: CallRinging) -> Card:
        try:
            async with asyncio.timeout(self._card_timeout), self._lookups:
                return await self._cards.card_for(event)
        except (StoreUnavailable, TimeoutError) as err:
            log.warning("push.card_unavailable", call_id=event.call_id, error=repr(err))
        except Exception:
            # A bug in one card must not swallow the call's popups: show it without the CRM data.
            log.exception("push.card_failed", call_id=event.call_id)
        return Card(kind="unavailable", number=other_party(event))
