"""AMI events -> tracker -> call records, callback tasks, leads and live notifications.

One line of sight per event: parse -> reduce -> effects. Live events (ringing, answered, ended) go to the
notifier at once, before anything waits for the store. Records are written in groups, beside tracking: every
effect marks its call in the outbox (``crmtel.calls.outbox``), and ``flush`` takes all of it as one batch and
writes it in ONE transaction (upsert by ``(pbx, linkedid)``, each live call with the tracker's JSON state of
it), plus the leads and callback tasks of calls that ended; a batch is put back unless it commits. Under the
composition root ``write_beside`` runs the flushes as a task of their own and the AMI client's ``on_idle``
(every ``batch`` (500) events, or 50 ms after the last write once its queue ran dry) only asks for one, so a
slow or locked store delays no popup. A ``kill -9`` loses what was not yet committed; the restart repairs it
as far as the PBX still knows: live calls come back from ``calls.live_state``, then ``CoreShowChannels`` adds
the calls that started meanwhile and closes the ones that ended; with a CDR source (``crmtel.cdr``) the
closed calls get their real end and the calls that began and ended inside the lost window are backfilled.
A SIGTERM loses nothing a store takes within ``calls.stop_write_seconds`` of it: reading stops, what was
received is tracked and ``write_all`` writes it, giving up at that deadline with each call not written logged.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Protocol

from sqlalchemy.ext.asyncio import AsyncSession

from crmtel.ami import events as ev
from crmtel.ami.protocol import Message
from crmtel.callbacks.service import (
    EndedCall,
    Responsible,
    book_ended_calls,
    booking_changed,
    corrected_for_booking,
)
from crmtel.calls import tracker
from crmtel.calls.extensions import KnownExtensions
from crmtel.calls.outbox import Outbox
from crmtel.calls.owner import Owner, OwnerReason, OwnerRules, Staff, owner_of
from crmtel.calls.record import party_number
from crmtel.calls.tracker import CallStarted, CallUpdated, Effect
from crmtel.calls.tracker.model import TrackerState
from crmtel.config import CallsSettings
from crmtel.domain import (
    CallAnswered,
    CallDiscarded,
    CallEnded,
    CallEvent,
    CallQueued,
    CallRecord,
    CallRinging,
    CallRingStopped,
    Direction,
    LookupResult,
    PartyKind,
    PartyMatch,
    call_id,
)
from crmtel.errors import CrmtelError, WriteFenced
from crmtel.i18n import Translator
from crmtel.recordings import DEFAULT_RECORDINGS_DIR
from crmtel.store.calls import (
    CallKey,
    CallRepository,
    discard_live_in,
    merge_in,
    stored_ends_in,
    upsert_in,
)
from crmtel.store.db import Database, is_sqlite
from crmtel.store.lookup import lookup_in
from crmtel.store.managers import staff_in
from crmtel.store.tasks import WantedLead, ensure_leads_in

log = logging.getLogger(__name__)
# Seconds a party lookup is reused for further calls from the same number.
_LOOKUP_TTL = 10.0
# Store reads for callers' parties at once (the rest wait their turn, beside tracking).
_LOOKUPS_AT_ONCE = 4
# Seconds a write that keeps back the ends still waiting for their party gives their lookups first.
_LOOKUP_GRACE = 0.25
# Ended calls waiting beside tracking for their party lookup; beyond this many tracking waits for them itself
# (memory stays bounded when the store hangs: reading from the PBX pauses, as for unwritten records).
_ENDS_BESIDE = 1_000


class PartyLookup(Protocol):
    """Finds who a phone number belongs to (``crmtel.store.parties.PartyRepository``)."""

    async def lookup(self, e164: str) -> LookupResult:
        """Every CRM record the number belongs to, best first."""
        ...


class CallNotifier(Protocol):
    """Receives live call events (the push hub)."""

    async def publish(self, event: CallEvent) -> None:
        """Deliver one live call event; must not block for long."""
        ...


class WriteFence(Protocol):
    """Decides, inside a write's transaction, which PBXs this node may still write (a cluster's fencing)."""

    async def admit(self, session: AsyncSession, pbxes: Collection[str]) -> set[str]:
        """The PBXs of ``pbxes`` whose calls may be written in this transaction."""
        ...


class ResyncAmender(Protocol):
    """Knows more about calls that ended while crmtel was away (the CDR): see ``crmtel.cdr.service``."""

    async def amend(self, pbx: str, records: Sequence[CallRecord], at: datetime) -> Mapping[str, CallRecord]:
        """Better records (by Linkedid) for calls a resync at ``at`` has just closed."""
        ...

    def resynced(self, pbx: str, at: datetime) -> None:
        """``pbx``'s live calls were checked against the PBX at ``at`` (a backfill up to then may follow)."""


class CallTap(Protocol):
    """Writes what outside systems must learn of the calls a flush stores, inside its transaction (the outbox)."""

    async def write_in(self, session: AsyncSession, events: Sequence[CallEvent]) -> None:
        """Stage ``events`` (in the order they happened; ``CallEnded`` carries the record as stored)."""
        ...


class NullNotifier:
    """A notifier that drops everything (no web app running)."""

    async def publish(self, event: CallEvent) -> None:
        """Drop the event."""


@dataclass(frozen=True, slots=True)
class _Party:
    kind: PartyKind
    id: int
    name: str
    # The manager responsible for this party (client's personal manager, else the lead's).
    manager_id: int | None


def _responsible(result: LookupResult) -> _Party | None:
    """The party a call belongs to and who answers for it: client with a manager, else a lead's manager."""
    best: PartyMatch | None = result.best
    if best is None:
        return None
    manager: int | None = None
    for kind in (PartyKind.CLIENT, PartyKind.LEAD):
        for match in result.matches:
            if match.kind is kind and match.manager_id is not None and match.manager_active:
                manager = match.manager_id
                break
        if manager is not None:
            break
    return _Party(best.kind, best.id, best.name, manager)


def merged_into_call(before: TrackerState, after: TrackerState, linkedid: str) -> str | None:
    """The call that took over ``linkedid``'s channels (a Linkedid merge), if it ended that way."""
    call = before.calls.get(linkedid)
    if call is None:
        return None
    for uniqueid in call.legs:
        target = after.channels.get(uniqueid)
        if target is not None and target != linkedid and target in after.calls:
            return target
    return None


def _pbx_of(event: CallEvent) -> str:
    """The PBX of a live event (its ``call_id`` is ``pbx:linkedid``)."""
    return event.call_id.split(":", 1)[0]


def _with_ends(events: Sequence[CallEvent], stored: Mapping[CallKey, CallRecord]) -> list[CallEvent]:
    """The live events, then an end for every call this flush stored as ended (its record as written)."""
    ends: list[CallEvent] = [
        CallEnded(call_id(record.pbx, record.linkedid), record, record.ended_at or record.started_at)
        for record in stored.values()
    ]
    return [*events, *ends]


def _extensions_of(record: CallRecord) -> tuple[str, ...]:
    """The extensions the owner rule may look up for this call."""
    return (record.answered_by or "", record.caller_number or "", *record.rang)


class CallService:
    """The AMI sink that keeps call records, tasks and leads in step with the PBXs."""

    def __init__(
        self,
        db: Database,
        settings: CallsSettings,
        parties: PartyLookup,
        notifier: CallNotifier | None = None,
        *,
        region: str = "RU",
        trunks: Iterable[str] = (),
        device_prefixes: Mapping[str, tuple[str, ...]] | None = None,
        recordings_dir: str = DEFAULT_RECORDINGS_DIR,
        fence: WriteFence | None = None,
        translator: Translator | None = None,
        match_digits: int = 10,
        after_flush: Callable[[int], None] | None = None,
        tap: CallTap | None = None,
        backfilled: Collection[str] = (),
    ) -> None:
        self.db = db
        # The PBXs with a CDR source: an ended call a stop could not write comes back from their backfill.
        self.backfilled = frozenset(backfilled)
        # When the stop's writes give up (loop time), set once by ``begin_stop``; None while running.
        self._stop_at: float | None = None
        # Calls the stop gave up on (logged by ``write_all``), including those a cluster term then forgot.
        self.unwritten_at_stop = 0
        # Told how many ended calls each flush stored (the heads' board re-reads today's counts then).
        self._after_flush = after_flush
        # Callback task titles are written in the configured language (they are stored, then read on the page).
        self.translator = translator or Translator.for_locale(None)
        self.settings = settings
        self.parties = parties
        self.notifier: CallNotifier = notifier or NullNotifier()
        self.region = region
        self.trunks = frozenset(trunks)
        # Per PBX: device prefixes that still mean the user's extension (FreePBX WebRTC 99<ext>).
        self.device_prefixes = dict(device_prefixes or {})
        # The managers' extensions (``learn_extensions``, then ``extensions.changed``): a device 99<ext> that is
        # one of them is that phone.
        self.extensions = KnownExtensions(db)
        self.recordings_dir = recordings_dir
        self.match_digits = match_digits
        self.calls = CallRepository(db)
        # Set by the composition root when the CDR service runs (it needs this service to exist first).
        self.amender: ResyncAmender | None = None
        self.states: dict[str, TrackerState] = {}
        self.events = 0
        self.flushes = 0
        # Pending writes: committed as one batch, or put back whatever ends the write.
        self.outbox = Outbox()
        # Unwritten records beyond which tracking waits for the store (so reading pauses, TCP slows the
        # PBX) instead of holding ever more records in memory while the database is down.
        self.max_unwritten = settings.max_unwritten
        self._party: dict[CallKey, _Party | None] = {}
        # The number each call's party was looked up by.
        self._matched: dict[CallKey, str | None] = {}
        # Calls whose party lookup failed (the store briefly unreachable): not "nobody" — their write reads
        # the party again in its own transaction, so a known client's missed call makes no lead.
        self._unread: set[CallKey] = set()
        # A short memory of lookups: a busy line calls the same numbers again and again.
        self._lookups: dict[str, tuple[_Party | None, float]] = {}
        # Party lookups running beside tracking (``_match``), a few at a time: the pool serves the cards too.
        self._looking: dict[CallKey, asyncio.Task[None]] = {}
        self._lookup_slots = asyncio.Semaphore(_LOOKUPS_AT_ONCE)
        # Ended calls whose popup waits for their party lookup beside tracking (``_end_beside``); the end itself
        # is in the outbox already.
        self._ending: dict[CallKey, asyncio.Task[None]] = {}
        self._now = time.monotonic
        self._flush_lock = asyncio.Lock()
        # ``write_beside`` running: tracking asks it for writes instead of awaiting them.
        self._beside = False
        self._write_wanted = asyncio.Event()
        self._fence = fence
        # Live events waiting for the next flush, written with the rows into the connectors' outbox.
        self._tap = tap

    @property
    def pending(self) -> int:
        """Calls changed since the last flush."""
        return self.outbox.pending

    @property
    def known_extensions(self) -> frozenset[str]:
        """The managers' extensions the trackers classify with now."""
        return self.extensions.current

    def _state(self, pbx: str) -> TrackerState:
        state = self.states.get(pbx)
        known = self.extensions.current
        if state is None:
            state = self.states[pbx] = tracker.new_state(
                pbx,
                self.region,
                self.settings.recording_url_template,
                self.trunks,
                self.device_prefixes.get(pbx, ()),
                self.recordings_dir,
                known,
            )
        elif state.known_extensions is not known:
            # The extensions were read again (a manager added or changed while running): every path that
            # classifies a channel (events, resync, restore, the CDR) takes the new set from its next step on.
            state = self.states[pbx] = replace(state, known_extensions=known)
        return state

    # -- lifecycle ---------------------------------------------------------------------------------
    async def learn_extensions(self) -> frozenset[str]:
        """Read the managers' extensions into every PBX's tracker: with the browser phone on, a desk phone 9913
        of one manager is that phone, not extension 13's browser device (``legs.user_extension``)."""
        return await self.extensions.load()

    async def restore(self, pbx: str) -> int:
        """Resume the live calls stored for ``pbx`` (after a restart, even ``kill -9``); returns how many."""
        await self.learn_extensions()
        state = self._state(pbx)
        restored = 0
        for stored in await self.calls.live(pbx):
            if stored.live_state is None:
                continue
            try:
                state = tracker.restore(state, dict(stored.live_state))
            except ValueError as err:
                log.warning("ami %s: live call %s not restored: %s", pbx, stored.record.linkedid, err)
                continue
            restored += 1
        self.states[pbx] = state
        log.info("ami %s: %d live calls restored", pbx, restored)
        await self.retell(pbx, datetime.now(UTC))
        return restored

    async def retell(self, pbx: str, at: datetime, linkedids: Collection[str] | None = None) -> None:
        """Tell the notifier where each live call of ``pbx`` (or of ``linkedids``) stands now.

        A restore or a resync learns live calls without their events: the pages' hello and cards, and the
        board, come from this. Only the notifier hears it (the connectors' outbox had them the first time).
        """
        for event in tracker.live_now(self._state(pbx), at, linkedids):
            try:
                await self.notifier.publish(event)
            except Exception:  # a broken notifier must not stop call tracking
                log.exception("notifier failed on %s", type(event).__name__)

    def forget(self, pbx: str) -> None:
        """Drop everything held in memory for ``pbx`` (this node stopped following it; another one writes it)."""
        self.states.pop(pbx, None)
        self.outbox.forget(pbx)
        for held in (self._party, self._matched):
            for key in [k for k in held if k[0] == pbx]:
                del held[key]
        self._unread -= {k for k in self._unread if k[0] == pbx}
        for key in [k for k in self._ending if k[0] == pbx]:
            self._ending.pop(key).cancel()
        for key in [k for k in self._looking if k[0] == pbx]:
            self._cancel_lookup(key)

    # -- AmiSink -----------------------------------------------------------------------------------
    async def on_event(self, pbx: str, message: Message, at: datetime) -> None:
        """Track one AMI event."""
        event = ev.parse_event(message, at)
        if event is None:
            return
        self.events += 1
        before = self._state(pbx)
        state, effects = tracker.reduce(before, event)
        self.states[pbx] = state
        await self._apply(pbx, effects, before)
        if self.outbox.unwritten > self.max_unwritten:
            await self._write_backlog()

    async def _write_backlog(self) -> None:
        """Retry the flush until the store takes the backlog: nothing is dropped, nothing more is read.

        The ends still waiting for their party stay pending, so one hung lookup holds back neither the other
        calls nor reading; only when they alone are past the bound does tracking wait, for one to answer."""
        delay = 0.1
        while self.outbox.unwritten > self.max_unwritten:
            try:
                await self.flush(keep_waiting=True)
            except WriteFenced as err:
                log.warning("%s", err)
            except CrmtelError as err:
                log.warning("store behind, %d records waiting; retrying: %s", self.outbox.unwritten, err)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)
                continue
            if self.outbox.unwritten > self.max_unwritten:
                await self._held_lookups(within=None, first=True)

    async def on_resync(self, pbx: str, channels: Sequence[Message], at: datetime) -> None:
        """Bring the tracker in line with the channels the PBX says are alive."""
        listed = [e for e in (ev.parse_event(m, at) for m in channels) if isinstance(e, ev.CoreShowChannel)]
        before = self._state(pbx)
        state, effects = tracker.resync(before, listed, at)
        self.states[pbx] = state
        await self._apply(pbx, await self._amended(pbx, effects, at), before)
        # Calls found on the PBX that crmtel did not know (started while it was away): their cards.
        await self.retell(pbx, at, state.calls.keys() - before.calls.keys())
        await self.on_idle(pbx)
        if self.amender is not None:
            self.amender.resynced(pbx, at)

    async def on_idle(self, pbx: str) -> None:
        """Write out what the last events changed (ask the writer beside tracking, when it runs)."""
        if self._beside:
            self._write_wanted.set()
        else:
            await self._flush_reporting_fence()

    async def write_beside(self) -> None:
        """Write the outbox beside tracking until cancelled (a task the composition root owns).

        While it runs, ``on_idle`` and a resync only ask for a write: no AMI event, and so no popup, waits
        for a commit, however slow or locked the store is. A failed write is retried with backoff while
        work is pending; the outbox keeps it meanwhile (and the stop writes it out).
        """
        self._beside = True
        delay = 0.1
        try:
            while True:
                await self._write_wanted.wait()
                self._write_wanted.clear()
                try:
                    # An end whose party is still being read stays pending, the rest is written now; its
                    # lookup's end asks for the write that takes it (``_looked_up``).
                    await self.flush(keep_waiting=True)
                    delay = 0.1
                except WriteFenced as err:
                    log.warning("%s", err)
                except CrmtelError as err:
                    log.warning("store not writable, %d call(s) kept; retrying: %s", self.pending, err)
                    await asyncio.sleep(delay)
                    delay = min(delay * 2, 5.0)
                    self._write_wanted.set()
        finally:
            self._beside = False

    async def _flush_reporting_fence(self) -> None:
        # The AMI client's flush: a fenced PBX is not an error of this node (its leadership ends), and a
        # store that refuses the write keeps the work pending for the next flush (or the stop's last write).
        try:
            await self.flush()
        except WriteFenced as err:
            log.warning("%s", err)
        except CrmtelError as err:
            log.warning("store not writable, %d call(s) kept for the next write: %s", self.pending, err)

    async def on_lost(self, pbx: str, at: datetime) -> None:
        """The connection to ``pbx`` ended at ``at``: the tracker notes it (see ``tracker.sync``)."""
        before = self._state(pbx)
        state, effects = tracker.reduce(before, ev.Disconnected(at))
        self.states[pbx] = state
        await self._apply(pbx, effects, before)

    # -- effects -----------------------------------------------------------------------------------
    async def _apply(self, pbx: str, effects: Sequence[Effect], before: TrackerState) -> None:
        # Popups first: the live events go to the notifier before anything here waits for the store (the
        # party lookup reads it). A call's end is published once its record is complete, after them.
        for effect in effects:
            if isinstance(effect, CallRinging | CallRingStopped | CallAnswered | CallQueued):
                await self._publish(effect)
        for effect in effects:
            if isinstance(effect, CallStarted | CallUpdated):
                key = (pbx, effect.record.linkedid)
                await self._match(key, effect.record)
                self.outbox.changed(key, effect.record)
            elif isinstance(effect, CallEnded):
                record = effect.record
                key = (pbx, record.linkedid)
                merged_into = record.extra.get("merged_into") or merged_into_call(
                    before, self.states[pbx], record.linkedid
                )
                if merged_into:
                    # A transfer joined this call to another one: its row is folded into that call's.
                    self.outbox.merged(pbx, record.linkedid, merged_into)
                    self._party.pop(key, None)
                    self._matched.pop(key, None)
                    self._unread.discard(key)
                    self._cancel_lookup(key)
                    await self._publish(effect)
                    continue
                await self._match(key, record)
                # Pending from now on, like any change: a stop that runs out of time reports it and a lost
                # term drops it with the rest (the next leader closes it); the write adds its party.
                self.outbox.ended(key, record)
                if key in self._looking and len(self._ending) < _ENDS_BESIDE and key not in self._ending:
                    # Its party is still being read: the end's popup waits for it beside tracking, so no later
                    # event (another call's ringing) waits behind this store read. It is the call's last event.
                    task = asyncio.create_task(
                        self._end_beside(key, effect), name=f"calls.end.{key[0]}.{key[1]}"
                    )
                    self._ending[key] = task
                    task.add_done_callback(functools.partial(self._ended_beside, key))
                    continue
                await self._publish(replace(effect, record=await self._settled(key, record)))
            elif isinstance(effect, CallDiscarded):
                key = (pbx, effect.linkedid)
                self.outbox.discarded(key)
                self._party.pop(key, None)
                self._matched.pop(key, None)
                self._unread.discard(key)
                self._cancel_lookup(key)

    async def _end(self, key: CallKey, record: CallRecord) -> CallRecord:
        """A call's end: queued for the next flush (which waits for its party, makes leads and tasks)."""
        await self._match(key, record)
        self.outbox.ended(key, record)
        return await self._settled(key, record)

    async def _settled(self, key: CallKey, record: CallRecord) -> CallRecord:
        """``record`` with its party, once the lookup still running for it (if any) is done."""
        await self._settle(key)
        return self._with_party(key, record)

    async def _end_beside(self, key: CallKey, effect: CallEnded) -> None:
        await self._publish(replace(effect, record=await self._settled(key, effect.record)))
        if self._ending.get(key) is asyncio.current_task():
            del self._ending[key]

    def _ended_beside(self, key: CallKey, task: asyncio.Task[None]) -> None:
        if self._ending.get(key) is task:
            del self._ending[key]

    async def record_ended(self, pbx: str, record: CallRecord) -> None:
        """A call that ended out of sight (learnt from the CDR): stored like any ended call at the next flush."""
        await self._end((pbx, record.linkedid), record)

    def is_pending(self, key: CallKey) -> bool:
        """Whether a version of this call waits for the next flush (newer than what is stored)."""
        return self.outbox.holds(key)

    def followed(self, pbx: str) -> frozenset[str]:
        """The calls of ``pbx`` this service answers for right now: live in the tracker or waiting to be written."""
        return frozenset(self._state(pbx).calls) | self.outbox.held_of(pbx)

    def state_of(self, pbx: str) -> TrackerState:
        """The tracker's state of ``pbx`` (its live calls, its trunks and conventions)."""
        return self._state(pbx)

    async def _amended(self, pbx: str, effects: Sequence[Effect], at: datetime) -> Sequence[Effect]:
        """Calls a resync closed ended while crmtel was away: the amender (the CDR) may know their real end."""
        ended = [e.record for e in effects if isinstance(e, CallEnded)]
        if self.amender is None or not ended:
            return effects
        try:
            better = await self.amender.amend(pbx, ended, at)
        except CrmtelError as err:
            log.warning("ami %s: closed calls kept as last seen, CDR not read: %s", pbx, err)
            return effects
        return [
            replace(e, record=better.get(e.record.linkedid, e.record)) if isinstance(e, CallEnded) else e
            for e in effects
        ]

    async def _lookup(self, record: CallRecord) -> _Party | None:
        number = party_number(record)
        if number is None:
            return None
        now = self._now()
        cached = self._lookups.get(number)
        if cached is not None and cached[1] > now:
            return cached[0]
        party = _responsible(await self.parties.lookup(number))
        if len(self._lookups) > 10_000:
            self._lookups.clear()
        self._lookups[number] = (party, now + _LOOKUP_TTL)
        return party

    async def _match(self, key: CallKey, record: CallRecord) -> None:
        """Look the call's outside number up once it is known (an outbound call learns it on dialling).

        The store read runs beside tracking: the events after it (every other call's popups) never queue
        behind it. Only the call's end waits for its party (``_settle``), long done by then as a rule.
        """
        number = party_number(record)
        if key in self._matched and self._matched.get(key) == number:
            return
        self._matched[key] = number
        self._unread.discard(key)
        self._cancel_lookup(key)
        cached = self._lookups.get(number) if number is not None else None
        if number is None or (cached is not None and cached[1] > self._now()):
            self._party[key] = await self._lookup(record)
            return
        self._party.pop(key, None)
        task = asyncio.create_task(self._look_up_beside(key, record), name=f"calls.party.{key[0]}.{key[1]}")
        self._looking[key] = task
        task.add_done_callback(functools.partial(self._looked_up, key))

    async def _look_up_beside(self, key: CallKey, record: CallRecord) -> None:
        number = party_number(record)
        async with self._lookup_slots:
            try:
                party = await self._lookup(record)
            except CrmtelError as err:
                log.warning("party lookup for %s failed; its write reads it again: %s", number, err)
                if self._matched.get(key) == number:
                    self._unread.add(key)
                return
        if self._matched.get(key) == number:
            self._party[key] = party
            self._unread.discard(key)

    def _looked_up(self, key: CallKey, task: asyncio.Task[None]) -> None:
        if self._looking.get(key) is task:
            del self._looking[key]
            if self._beside and self.outbox.holds_end(key):
                self._write_wanted.set()  # its end, kept back by the writer, can be written now

    def _cancel_lookup(self, key: CallKey) -> None:
        task = self._looking.pop(key, None)
        if task is not None:
            task.cancel()

    async def _settle(self, key: CallKey) -> None:
        """Wait for the party lookup of ``key`` still running, if any."""
        task = self._looking.get(key)
        if task is not None:
            await asyncio.wait([task])

    async def aclose(self) -> None:
        """Cancel the party lookups still running and the end popups waiting for them, and wait for them (the
        service's own tasks). Their calls' ends are in the outbox: the stop's last write took them, or it
        named each one it could not write."""
        await self.extensions.aclose()
        tasks = [*self._ending.values(), *self._looking.values()]
        self._ending.clear()
        self._looking.clear()
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.wait(tasks)

    def _with_party(self, key: CallKey, record: CallRecord) -> CallRecord:
        party = self._party.get(key)
        if party is None:
            return record
        return replace(record, party_kind=party.kind, party_id=party.id, party_name=party.name)

    async def _publish(self, event: CallEvent) -> None:
        # The tap gets the live events here and every ended call (AMI, resync, CDR) from the flush itself.
        if self._tap is not None and isinstance(event, CallRinging | CallRingStopped | CallAnswered):
            self.outbox.tapped(_pbx_of(event), event)
        try:
            await self.notifier.publish(event)
        except Exception:  # a broken notifier must not stop call tracking
            log.exception("notifier failed on %s", type(event).__name__)

    # -- persistence -------------------------------------------------------------------------------
    async def flush(self, *, keep_waiting: bool = False) -> None:
        """Write every pending call, and the leads/tasks of calls that ended.

        An ended call is written with its party. A flush gives the lookups of the ends a moment, then writes
        every call not waiting for its party, in one transaction; then it waits for the lookups of the ends
        left pending (those pending when it began), holding nothing meanwhile (neither the one write lock nor
        a batch: every other write goes on, a cancellation loses nothing), and writes each end once its party
        is read — unless ``keep_waiting``, which leaves an end whose lookup still runs pending (whole). So one
        slow or hung lookup holds back no other call's write (the writer beside tracking, a CDR pass, the
        stop), not even in the flush that waits for it.

        The pending work is taken from the outbox as one batch and put back unless the transaction commits
        (a database error or a cancellation keeps it for the next flush). Raises StoreUnavailable (nothing
        written) or WriteFenced (the rest written; the calls of a PBX another node took over are its own).
        Once a stop began (``begin_stop``) the transaction waits for a locked store no longer than the stop
        has left.
        """
        if keep_waiting:
            await self._write_pending(grace=True)
            return
        # The ends pending now are this flush's to write; an end added meanwhile is the next one's (under
        # steady traffic some end always waits: a flush waiting for those too might never return).
        mine = self.outbox.held()[0]
        fenced: WriteFenced | None = None
        grace = True
        while True:
            try:
                await self._write_pending(grace=grace)
            except WriteFenced as err:
                # The rest was written: the ends that wait for their party still are, then the caller is told.
                fenced = err
            grace = False
            # Each end goes as soon as its party is read: a slow lookup holds back no quicker one.
            tasks = [
                self._looking[key] for key in mine if key in self._looking and self.outbox.holds_end(key)
            ]
            if not tasks:
                break
            await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        if fenced is not None:
            raise fenced

    async def _write_pending(self, *, grace: bool) -> None:
        """One transaction: every pending call but the ends whose party lookup still runs (after a moment
        given to those lookups with ``grace``)."""
        # One flush at a time (several PBX clients share this service): a later version of a call must
        # never be overwritten by an earlier one committing after it.
        async with self._flush_lock:
            fenced: set[str] = set()
            if grace:
                await self._lookups_given_time()
            # Read in the same loop turn as the batch is taken: no end is taken while its lookup runs.
            waiting = frozenset(key for key, task in self._looking.items() if not task.done())
            async with self.outbox.taken(keep=waiting) as batch:
                if not batch:
                    return
                async with self.db.session() as session:
                    await self._bound_wait(session)
                    if self._fence is not None:
                        admitted = await self._fence.admit(session, batch.pbxes)
                        fenced = batch.pbxes - admitted
                        batch = batch.only(admitted)
                    await discard_live_in(session, sorted(batch.discarded))
                    stored = await self._write(session, batch.dirty, batch.ended, batch.merges)
                    tapped = [event for _, event in batch.tapped]
                    if self._tap is not None and (tapped or stored):
                        await self._tap.write_in(session, _with_ends(tapped, stored))
            self.flushes += 1
            for key in batch.ended:
                self._party.pop(key, None)
                self._matched.pop(key, None)
                self._unread.discard(key)
            if batch.ended and self._after_flush is not None:
                self._after_flush(len(batch.ended))
            if fenced:
                for pbx in fenced:
                    # Another node leads it now and writes its calls from its own tracking.
                    self.forget(pbx)
                raise WriteFenced(sorted(fenced))

    async def _lookups_given_time(self) -> None:
        # The lookups of the ended calls about to be written get a moment (most take milliseconds), so their
        # ends go in this write rather than each in one of their own; nothing is taken yet, so a
        # cancellation here loses nothing.
        left = self.stop_left
        await self._held_lookups(within=_LOOKUP_GRACE if left is None else min(_LOOKUP_GRACE, left / 2))

    async def _held_lookups(self, *, within: float | None, first: bool = False) -> None:
        """Wait for the party lookups of the ended calls pending now (all, or the ``first`` to answer)."""
        ended, _ = self.outbox.held()
        tasks = [self._looking[key] for key in ended if key in self._looking]
        if tasks:
            await asyncio.wait(
                tasks, timeout=within, return_when=asyncio.FIRST_COMPLETED if first else asyncio.ALL_COMPLETED
            )

    async def _bound_wait(self, session: AsyncSession) -> None:
        # No write waits for a locked store longer than a stop may take: once a stop began, than what it
        # has left; before, SQLite's busy wait (which nothing interrupts once begun) is no longer than the
        # whole budget, so a wait begun just before SIGTERM ends within the stop's deadline too.
        bound = self.settings.stop_write_seconds
        left = self.stop_left
        if left is not None:
            await self.db.wait_at_most(session, min(bound, left))
        elif is_sqlite(self.db.url):
            await self.db.wait_at_most(session, bound)

    def begin_stop(self, within: float | None = None) -> float:
        """Start the stop's one budget (``within``, default ``calls.stop_write_seconds``) unless it runs.

        Returns the deadline (loop time) every later step of the stop shares: the drain, each write
        attempt, the last write — the budget is given once, from SIGTERM, however many steps use it.
        """
        if self._stop_at is None:
            if within is None:
                within = self.settings.stop_write_seconds
            self._stop_at = asyncio.get_running_loop().time() + within
        return self._stop_at

    @property
    def stop_left(self) -> float | None:
        """Seconds the stop has left (None while not stopping)."""
        if self._stop_at is None:
            return None
        return max(0.0, self._stop_at - asyncio.get_running_loop().time())

    async def write_all(self, within: float | None = None, *, report: bool = True) -> bool:
        """Write everything pending before a stop, retrying a locked or unreachable store until its deadline.

        The deadline is the stop's (``begin_stop``; started here with ``within`` if no stop began). Each
        attempt is bounded by the time left: a write still waiting on the store then is cancelled (the
        outbox keeps its batch) and so is a busy wait. Returns whether everything was written; what was
        not is logged by call, with where it comes back from (``report=False``: a step of the stop that a
        last ``write_all`` follows, once a write still running elsewhere has put its batch back).
        """
        loop = asyncio.get_running_loop()
        deadline = self.begin_stop(within)
        delay = 0.1
        error: object = "no time left"
        while True:
            try:
                async with asyncio.timeout_at(deadline):
                    # Every call not waiting for its party first: a hung lookup leaves only its own call
                    # unwritten at the deadline; then the ends that waited, with their parties.
                    await self.flush(keep_waiting=True)
                    await self.flush()
                return True
            except TimeoutError:
                error = "a write was still waiting for the store at the deadline"
                break
            except WriteFenced as err:
                log.warning("%s", err)
            except CrmtelError as err:
                error = err
                left = deadline - loop.time()
                if left <= 0:
                    break
                log.warning("store not writable while stopping (%s); retrying for %.1f s more", err, left)
                await asyncio.sleep(min(delay, left))
                delay = min(delay * 2, 2.0)
        if report:
            self._log_unwritten(error)
        return False

    def _log_unwritten(self, error: object) -> None:
        ended, live = self.outbox.held()
        self.unwritten_at_stop += len(ended) + len(live)
        log.error(
            "stopping with %d call(s) not written: the store did not take them before the stop's deadline "
            "(calls.stop_write_seconds=%.0f): %s",
            len(ended) + len(live),
            self.settings.stop_write_seconds,
            error,
        )
        for pbx, linkedid in ended:
            where = (
                "the CDR backfill stores it at the next start"
                if pbx in self.backfilled
                else "LOST: this PBX has no CDR source (ami.cdr) to backfill it from"
            )
            log.error("not written: ended call %s on %s; %s", linkedid, pbx, where)
        for pbx, linkedid in live:
            log.error(
                "not written: latest state of live call %s on %s; the next start resumes it from the "
                "PBX (CoreShowChannels) and its CDR",
                linkedid,
                pbx,
            )

    async def _write(
        self,
        session: AsyncSession,
        dirty: Mapping[CallKey, CallRecord],
        ended: Mapping[CallKey, CallRecord],
        merges: Sequence[tuple[str, str, str]],
    ) -> dict[CallKey, CallRecord]:
        """Write the rows, leads and tasks; returns the ended calls' records as stored."""
        for key in [key for key in ended if key in self._unread]:
            number = party_number(ended[key])
            if number is not None:
                self._party[key] = _responsible(await lookup_in(session, number))
            self._unread.discard(key)
        for pbx, old, new in merges:
            await merge_in(session, pbx, old, new)
        already = await stored_ends_in(session, list(ended)) if ended else {}
        # Only calls ending for the first time make leads and tasks: replays and resyncs do not — unless the
        # call's outcome changed (the CDR found a "missed" call answered): its tasks follow the truth.
        fresh = [key for key in ended if key not in already]
        corrected = {
            key: already[key]
            for key in ended
            if key in already and booking_changed(already[key], self._with_party(key, ended[key]))
        }
        staff = await staff_in(
            session,
            {e for r in dirty.values() for e in _extensions_of(r)},
            {*self.settings.queue_owners.values(), self.settings.default_owner or ""},
        )
        rules = OwnerRules(self.settings.queue_owners, self.settings.default_owner)
        # Unknown inbound callers become leads before the rows are written, so the row names the lead.
        await self._leads_for_unknown(session, [(key, ended[key]) for key in fresh], staff, rules)
        items: list[tuple[CallRecord, dict[str, object] | None]] = []
        stored: dict[CallKey, CallRecord] = {}
        owners: dict[CallKey, Owner | None] = {}
        for key, record in dirty.items():
            record = self._with_party(key, record)
            owner = owners[key] = self._owner_of(key, record, staff, rules)
            record = replace(record, manager_id=owner.manager_id if owner is not None else None)
            if key in ended:
                stored[key] = record
            live = None if key in ended else tracker.snapshot(self.states[key[0]], key[1])
            items.append((record, live))
        ids = await upsert_in(session, items)
        for key, before in corrected.items():
            log.info(
                "ami %s: call %s corrected from %s to %s: its callback tasks follow",
                key[0],
                key[1],
                before.outcome,
                ended[key].outcome,
            )
        await book_ended_calls(
            session,
            [
                EndedCall(record, ids.get(key), self._responsible(key, owners.get(key)))
                for key in fresh
                for record in (self._with_party(key, ended[key]),)
            ]
            + [
                EndedCall(
                    corrected_for_booking(before, record),
                    ids.get(key),
                    self._responsible(key, owners.get(key)),
                )
                for key, before in corrected.items()
                for record in (self._with_party(key, ended[key]),)
            ],
            self.settings,
            self.match_digits,
            title=lambda who: self.translator.t("messages.task_missed_call", who=who),
        )
        return stored

    def _owner_of(self, key: CallKey, record: CallRecord, staff: Staff, rules: OwnerRules) -> Owner | None:
        party = self._party.get(key)
        return owner_of(record, party.manager_id if party is not None else None, staff, rules)

    def _responsible(self, key: CallKey, owner: Owner | None) -> Responsible:
        """The call's party and its owner (who gets the callback task of a missed call)."""
        party = self._party.get(key)
        client = party.id if party is not None and party.kind is PartyKind.CLIENT else None
        lead = party.id if party is not None and party.kind is PartyKind.LEAD else None
        return Responsible(owner.manager_id if owner is not None else None, client, lead)

    async def _leads_for_unknown(
        self,
        session: AsyncSession,
        calls: Sequence[tuple[CallKey, CallRecord]],
        staff: Staff,
        rules: OwnerRules,
    ) -> None:
        if not self.settings.create_leads_for_unknown:
            return
        wanted: dict[str, tuple[list[CallKey], WantedLead]] = {}
        for key, record in calls:
            number = party_number(record)
            if (
                record.direction is not Direction.INBOUND
                or number is None
                or self._party.get(key) is not None
            ):
                continue
            # The new lead is the manager's who talked to the caller; a missed caller's lead stays unassigned
            # (every manager sees it) while its callback task goes to the call's owner.
            owner = owner_of(record, None, staff, rules)
            talked = owner.manager_id if owner is not None and owner.reason is OwnerReason.ANSWERED else None
            keys, _ = wanted.setdefault(number, ([], WantedLead(number, record.caller_name, talked)))
            keys.append(key)
        if not wanted:
            return
        leads = await ensure_leads_in(session, [want for _, want in wanted.values()])
        for number, (keys, _) in wanted.items():
            lead = leads[number]
            party = _Party(PartyKind.LEAD, lead.id, lead.name, lead.manager_id)
            self._lookups[number] = (party, self._now() + _LOOKUP_TTL)
            for key in keys:
                self._party[key] = party
            if lead.created:
                log.info("new lead %d from an unknown caller (%s)", lead.id, keys[0][1])
