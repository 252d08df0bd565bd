"""Pending call writes: taken out as one batch, and committed or put back whatever ends the write.

Tracking marks calls dirty as events arrive; a flush takes everything pending as a :class:`Batch` and
writes it in one transaction. ``Outbox.taken`` puts the batch back in ``finally`` unless the write went
through — a database error, a lost connection and a cancellation (SIGTERM, a lost cluster lease) all
leave the work pending for the next write, behind anything newer about the same calls. Putting back a
batch whose commit did happen after all (a cancellation racing the commit) is harmless: rows are upserted
by ``(pbx, linkedid)`` and leads and callback tasks are made only for calls not yet stored as ended.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Collection
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

from crmtel.domain import CallEvent, CallRecord
from crmtel.store.calls import CallKey

# (pbx, linkedid folded away, linkedid it was folded into)
Merge = tuple[str, str, str]


@dataclass(slots=True)
class Batch:
    """One write's worth of pending work."""

    dirty: dict[CallKey, CallRecord] = field(default_factory=dict)
    ended: dict[CallKey, CallRecord] = field(default_factory=dict)
    merges: list[Merge] = field(default_factory=list)
    discarded: set[CallKey] = field(default_factory=set)
    # Live events for the connectors' outbox (``CallTap``), with their PBX, in the order they happened.
    tapped: list[tuple[str, CallEvent]] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.dirty or self.ended or self.merges or self.discarded or self.tapped)

    @property
    def pbxes(self) -> set[str]:
        """Every PBX this batch writes calls of."""
        return (
            {key[0] for key in self.dirty}
            | {key[0] for key in self.ended}
            | {merge[0] for merge in self.merges}
            | {key[0] for key in self.discarded}
            | {pbx for pbx, _ in self.tapped}
        )

    def only(self, pbxes: Collection[str]) -> Batch:
        """The part of this batch that belongs to ``pbxes``."""
        return Batch(
            {k: v for k, v in self.dirty.items() if k[0] in pbxes},
            {k: v for k, v in self.ended.items() if k[0] in pbxes},
            [m for m in self.merges if m[0] in pbxes],
            {k for k in self.discarded if k[0] in pbxes},
            [t for t in self.tapped if t[0] in pbxes],
        )


class Outbox:
    """The calls changed since the last committed write (one per call service)."""

    def __init__(self) -> None:
        self._pending = Batch()
        self.restored = 0

    # -- what tracking adds ------------------------------------------------------------------------
    def changed(self, key: CallKey, record: CallRecord) -> None:
        """A newer version of a call (it replaces any pending one)."""
        self._pending.dirty[key] = record

    def ended(self, key: CallKey, record: CallRecord) -> None:
        """A call's final version (its leads and callback task are made when it is written)."""
        self._pending.dirty[key] = record
        self._pending.ended[key] = record

    def merged(self, pbx: str, old: str, new: str) -> None:
        """Call ``old`` was folded into ``new`` (a transfer joined them): its row goes into ``new``'s."""
        self._pending.merges.append((pbx, old, new))
        self._pending.dirty.pop((pbx, old), None)

    def discarded(self, key: CallKey) -> None:
        """A call that turned out never to be a call: its live row goes."""
        self._pending.dirty.pop(key, None)
        self._pending.discarded.add(key)

    def tapped(self, pbx: str, event: CallEvent) -> None:
        """A live event the connectors' outbox gets with the next write."""
        self._pending.tapped.append((pbx, event))

    # -- what writing reads ------------------------------------------------------------------------
    @property
    def pending(self) -> int:
        """Calls changed, merged or discarded since the last committed write."""
        p = self._pending
        return len(p.dirty) + len(p.merges) + len(p.discarded)

    def held(self) -> tuple[list[CallKey], list[CallKey]]:
        """The calls waiting for the store: (ended, still live), each sorted."""
        p = self._pending
        ended = sorted(p.ended)
        live = sorted(k for k in p.dirty if k not in p.ended)
        return ended, live

    @property
    def unwritten(self) -> int:
        """Records held in memory waiting for the store."""
        return len(self._pending.dirty) + len(self._pending.ended)

    def held_of(self, pbx: str) -> set[str]:
        """The Linkedids of ``pbx`` with work waiting to be written (changed, ended, merged or discarded)."""
        p = self._pending
        return (
            {key[1] for key in p.dirty if key[0] == pbx}
            | {key[1] for key in p.discarded if key[0] == pbx}
            | {old for merged_pbx, old, _new in p.merges if merged_pbx == pbx}
        )

    def holds(self, key: CallKey) -> bool:
        """Whether a version of this call waits to be written."""
        return key in self._pending.dirty

    def holds_end(self, key: CallKey) -> bool:
        """Whether this call's end waits to be written."""
        return key in self._pending.ended

    def forget(self, pbx: str) -> None:
        """Drop ``pbx``'s pending work (another node writes that PBX now)."""
        self._pending = self._pending.only(self._pending.pbxes - {pbx})

    @asynccontextmanager
    async def taken(self, keep: Collection[CallKey] = ()) -> AsyncIterator[Batch]:
        """Everything pending as one batch; put back unless the ``async with`` body completes.

        The body writes and commits the batch; whatever ends it early (an error, a cancellation) leaves
        the work pending again, older than anything tracking added meanwhile. The ended calls of ``keep``
        are not taken: they stay pending, whole, for a later write.
        """
        batch, self._pending = self._pending, Batch()
        kept = [key for key in keep if key in batch.ended]
        if kept:
            self._pending = Batch(
                {key: batch.dirty.pop(key) for key in kept if key in batch.dirty},
                {key: batch.ended.pop(key) for key in kept},
            )
        done = False
        try:
            yield batch
            done = True
        finally:
            if not done:
                self._put_back(batch)

    def _put_back(self, batch: Batch) -> None:
        now = self._pending
        # A call discarded or folded into another meanwhile must not come back as a live row.
        gone = now.discarded | {(m[0], m[1]) for m in now.merges}
        self._pending = Batch(
            {**{k: v for k, v in batch.dirty.items() if k not in gone}, **now.dirty},
            {**batch.ended, **now.ended},
            batch.merges + now.merges,
            batch.discarded | now.discarded,
            batch.tapped + now.tapped,
        )
        self.restored += 1
