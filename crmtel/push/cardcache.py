"""The ringing card from memory: a bounded cache of cards kept fresh by crmtel's own writes.

A card is read from the store once (a miss, exactly as without the cache) and then served from memory until a
committed write changes what it shows: a call of its number or of its party (its last calls), or any CRM write
(a client, lead, contact, phone, deal, manager, note, a merge), which forgets every card. In a cluster the
other nodes' writes arrive through ``crmtel.cluster.cards``; while that channel is down the cache is not used.
A card read while a write that touches it committed is served but not kept, so a stale read never lands
in the cache. ``max_age`` bounds what writes made outside crmtel (SQL by hand) can leave stale.
"""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict, deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

import structlog

from crmtel.domain import CallRinging
from crmtel.errors import StoreUnavailable
from crmtel.phones import PhoneKind, normalize
from crmtel.push.cards import CardSource, other_party
from crmtel.push.messages import Card
from crmtel.store.changes import StoreChange
from crmtel.store.db import Database

log = structlog.get_logger(__name__)

# (E.164 number, the raw number as the PBX gave it): the card's last calls match either.
CardKey = tuple[str, str | None]
_K = TypeVar("_K")


@dataclass(frozen=True, slots=True)
class _Entry:
    card: Card
    party: tuple[str, int] | None
    stored_at: float


class CardCache:
    """An LRU of cards by number, at most ``size`` of them, each at most ``max_age`` seconds old."""

    def __init__(
        self, size: int = 10_000, *, max_age: float = 300.0, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.size = size
        self.max_age = max_age
        self._clock = clock
        self._entries: OrderedDict[CardKey, _Entry] = OrderedDict()
        # Which cards a stored number or a party appears on, so a call's write forgets only those.
        self._by_number: dict[str, set[CardKey]] = {}
        self._by_party: dict[tuple[str, int], set[CardKey]] = {}
        # Moves on with every change: a card read before it may be stale and is not kept.
        self.generation = 0
        # The last changes, so a card read across one that did not touch it is still kept.
        self._recent: deque[StoreChange] = deque(maxlen=256)
        # False while changes made elsewhere may be missed (the cluster channel is down): nothing is served.
        self.trusted = True
        self.hits = 0
        self.misses = 0

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, key: CardKey) -> Card | None:
        """The card kept for ``key``, if fresh (and the cache trusted)."""
        entry = self._entries.get(key)
        if entry is None or not self.trusted or self._clock() - entry.stored_at > self.max_age:
            if entry is not None:
                self._drop(key)
            self.misses += 1
            return None
        self._entries.move_to_end(key)
        self.hits += 1
        return entry.card

    def put(self, key: CardKey, card: Card, generation: int) -> bool:
        """Keep ``card``, read when the generation was ``generation``; refused if a change came since."""
        party = (card.kind, card.party_id) if card.party_id is not None else None
        if not self.trusted or self._changed_since(generation, key, party):
            return False
        self._drop(key)
        self._entries[key] = _Entry(card, party, self._clock())
        for number in _spellings(key):
            self._by_number.setdefault(number, set()).add(key)
        if party is not None:
            self._by_party.setdefault(party, set()).add(key)
        while len(self._entries) > self.size:
            self._drop(next(iter(self._entries)))
        return True

    def _changed_since(self, generation: int, key: CardKey, party: tuple[str, int] | None) -> bool:
        missed = self.generation - generation
        if missed == 0:
            return False
        if missed > len(self._recent):
            return True  # older than the changes remembered: may be stale
        spellings = _spellings(key)
        for change in list(self._recent)[-missed:]:
            if change.everything or not spellings.isdisjoint(change.numbers) or party in change.parties:
                return True
        return False

    def _drop(self, key: CardKey) -> None:
        entry = self._entries.pop(key, None)
        if entry is None:
            return
        for number in _spellings(key):
            _unindex(self._by_number, number, key)
        if entry.party is not None:
            _unindex(self._by_party, entry.party, key)

    def forget(self, change: StoreChange) -> None:
        """Drop the cards ``change`` may have changed (every card when it says so)."""
        if not change:
            return
        self.generation += 1
        self._recent.append(change)
        if change.everything:
            self._entries.clear()
            self._by_number.clear()
            self._by_party.clear()
            return
        gone: set[CardKey] = set()
        for number in change.numbers:
            gone |= self._by_number.get(number, set())
        for party in change.parties:
            gone |= self._by_party.get(party, set())
        for key in gone:
            self._drop(key)

    def distrust(self) -> None:
        """Changes may be missed from now on: forget everything and keep nothing until ``trust``."""
        self.trusted = False
        self.forget(StoreChange(everything=True))

    def trust(self) -> None:
        """Changes are seen again (whatever came before was forgotten by ``distrust``)."""
        self.forget(StoreChange(everything=True))
        self.trusted = True


def _spellings(key: CardKey) -> set[str]:
    # The spellings a card's last calls are matched by (crmtel.store.history.number_variants).
    e164, raw = key
    found = {e164, e164.removeprefix("+")}
    if raw:
        found.add(raw)
    return found


def _unindex(index: dict[_K, set[CardKey]], name: _K, key: CardKey) -> None:
    keys = index.get(name)
    if keys is not None:
        keys.discard(key)
        if not keys:
            del index[name]


class CachedCards:
    """A CardSource in front of another: a hit is served from memory, a miss reads ``source`` and keeps it."""

    def __init__(self, source: CardSource, cache: CardCache, *, region: str = "RU") -> None:
        self._source = source
        self.cache = cache
        self._region = region

    async def card_for(self, event: CallRinging) -> Card:
        """The card for the outside party of the call, from memory when it is there."""
        raw = other_party(event)
        phone = normalize(raw, self._region)
        if phone.kind is PhoneKind.EXTENSION or phone.e164 is None:
            return await self._source.card_for(event)  # no store read behind these
        key = (phone.e164, raw)
        card = self.cache.get(key)
        if card is not None:
            return card
        generation = self.cache.generation
        card = await self._source.card_for(event)
        if card.kind != "unavailable":
            self.cache.put(key, card, generation)
        return card


class EpochLedger:
    """Which card epochs this process was told about, to find the ones committed but never announced.

    A cluster node numbers its card changes (``Database.number_changes``) and announces each with its epoch;
    the epochs in the store are consecutive, so one no announcement brought within ``grace`` seconds is a
    change this node missed (a node killed between its commit and its publish, a CLI command): ``missed``
    says so once, and the caller forgets every card.
    """

    def __init__(self, grace: float = 2.0, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.grace = grace
        self._clock = clock
        self._base: int | None = None  # every epoch up to this one is accounted for
        self._seen: set[int] = set()
        self._missing_since: dict[int, float] = {}
        self.gaps = 0

    def note(self, epoch: int) -> None:
        """An announced change (this node's own or another's) moved the epoch to ``epoch``."""
        if self._base is None or epoch > self._base:
            self._seen.add(epoch)

    def missed(self, current: int) -> bool:
        """The store's epoch is ``current``: whether a change in it went unannounced for over ``grace``."""
        if self._base is None or current < self._base:  # first read, or the counter started again
            self._base = current
            self._seen = {e for e in self._seen if e > current}
            self._missing_since.clear()
            return False
        now = self._clock()
        while self._base < current and self._base + 1 in self._seen:
            self._base += 1
            self._seen.discard(self._base)
            self._missing_since.pop(self._base, None)
        if self._base == current:
            return False
        unannounced = [e for e in range(self._base + 1, current + 1) if e not in self._seen]
        if len(unannounced) > _MAX_GAP:
            overdue = True
        else:
            for e in unannounced:
                self._missing_since.setdefault(e, now)
            overdue = any(now - self._missing_since[e] >= self.grace for e in unannounced)
        if not overdue:
            return False
        self.gaps += 1
        self._base = current
        self._seen = {e for e in self._seen if e > current}
        self._missing_since.clear()
        return True


# Epochs behind at once beyond which the ledger stops waiting for their announcements.
_MAX_GAP = 10_000


async def follow_card_epoch(
    db: Database, interval: float = 1.0, *, since: int | None = None, ledger: EpochLedger | None = None
) -> None:
    """Until cancelled: read the store's card epoch every ``interval`` s and, when it moved by a change this
    process was not told about, tell its listeners that every card may have changed (``Database.told``).

    Without a ``ledger`` any move counts (from ``since``, else from the first read): only other processes
    (the CLI) move it. A cluster node passes its ledger of announced epochs: a move none announced within
    the ledger's grace counts.
    """
    last = since
    if ledger is not None and since is not None:
        ledger.missed(since)
    while True:
        try:
            epoch = await db.card_epoch()
        except StoreUnavailable as err:
            log.warning("cards.epoch_unreadable", error=str(err))
        else:
            if ledger is not None:
                if ledger.missed(epoch):
                    log.info("cards.unannounced_change", epoch=epoch)
                    db.committed(StoreChange(everything=True))
            elif last is not None and epoch != last:
                db.committed(StoreChange(everything=True))
            last = epoch
        await asyncio.sleep(interval)
