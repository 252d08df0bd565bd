"""Backfill and reconcile: the calls crmtel could not follow come from Asterisk's own CDR.

load -> decide -> write, per call: the CDR legs of a period are grouped by Linkedid
(:func:`crmtel.cdr.calls.group_calls`), turned into records (:func:`~crmtel.cdr.calls.call_from_legs`),
compared with what is stored (:func:`crmtel.cdr.merge.corrected`), and what is new or better goes through
the call service's own call-ended path (leads, callback tasks, reports as for a live call).

When: after every AMI (re)connect and every periodic ``CoreShowChannels`` check the call service reports a
resync; the calls that resync closed are first amended with their CDR (their real end, not the moment
crmtel noticed), then one pass reads the CDR from the PBX's watermark (minus a margin) up to the resync,
and the watermark moves there. The first pass on a new installation only sets the watermark: calls from
before crmtel existed are not turned into callback tasks.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Collection, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta, tzinfo
from typing import Protocol

from crmtel.calls.service import CallService
from crmtel.calls.tracker import visits
from crmtel.calls.tracker.model import TrackerState
from crmtel.cdr.calls import call_from_legs, group_calls
from crmtel.cdr.csvsource import CsvCdrSource
from crmtel.cdr.merge import closed_at, corrected
from crmtel.cdr.models import CdrRow, CdrSpec
from crmtel.cdr.rows import overlaps, reused_key, split_reused
from crmtel.cdr.spans import call_spans
from crmtel.cdr.sqlsource import SqlCdrSource
from crmtel.cdr.times import pbx_zone
from crmtel.config import AmiSettings
from crmtel.domain import CallRecord
from crmtel.errors import CrmtelError
from crmtel.store.calls import StoredCall
from crmtel.store.watermarks import WatermarkRepository

log = logging.getLogger(__name__)
# A resync waits at most this long for the CDR of the calls it closed (a slow CDR database must not stall
# the AMI stream); the periodic pass corrects them later anyway.
AMEND_TIMEOUT = 10.0


class CdrSource(Protocol):
    """Where one PBX's CDR legs are read from (``CsvCdrSource``, ``SqlCdrSource``)."""

    skipped: int
    # The last read met a row the PBX is still writing: no watermark may pass it.
    incomplete: bool

    def describe(self) -> str:
        """The source for logs, without secrets."""
        ...

    async def legs(self, since: datetime, until: datetime | None = None) -> list[CdrRow]:
        """Every leg of the calls that ended in ``[since, until)``."""
        ...

    async def legs_of(self, linkedids: Collection[str], since: datetime) -> list[CdrRow]:
        """The legs of these calls (which started after ``since``)."""
        ...

    async def close(self) -> None:
        """Release connections."""
        ...


def open_source(spec: CdrSpec, zone: tzinfo) -> CdrSource:
    """The reader for a configured CDR source."""
    if spec.kind == "csv":
        return CsvCdrSource(spec.target, zone)
    return SqlCdrSource(spec, zone)


@dataclass
class BackfillReport:
    """What a backfill did, call by call."""

    created: int = 0
    corrected: int = 0
    unchanged: int = 0
    # Calls still in progress for the tracker (or with a newer version waiting to be written).
    live: int = 0
    linkedids: dict[str, str] = field(default_factory=dict)
    # A row of the period could not be read yet (the PBX was writing it): read the period again next time.
    incomplete: bool = False

    def count(self, linkedid: str, what: str) -> None:
        """Count one call as ``created``, ``corrected``, ``unchanged`` or ``live``."""
        setattr(self, what, getattr(self, what) + 1)
        self.linkedids[linkedid] = what


class Progress(Protocol):
    """Told how many calls a backfill found and how many it has handled (``crmtel backfill``'s bar)."""

    def found(self, calls: int) -> None:
        """``calls`` more calls to handle."""

    def done(self, calls: int) -> None:
        """``calls`` more handled."""


# A long backfill (days after an outage, or an admin's --since a month ago) is read a slice at a time, so
# memory stays bounded by one slice's calls; a call belongs to the slice its last leg ended in.
SLICE = timedelta(hours=6)


class Backfill:
    """One PBX's CDR against the store: creates the calls never seen, corrects those seen wrong."""

    def __init__(self, pbx: str, source: CdrSource, calls: CallService) -> None:
        self.pbx = pbx
        self.source = source
        self.calls = calls

    async def window(
        self,
        since: datetime,
        until: datetime | None,
        *,
        dry_run: bool = False,
        progress: Progress | None = None,
    ) -> BackfillReport:
        """Bring every call that ended in ``[since, until)`` in line with its CDR, one slice after another."""
        report = BackfillReport()
        start = since
        while True:
            end = start + SLICE
            if until is not None and end >= until:
                await self._slice(start, until, report, dry_run, progress)
                return report
            if until is None and end >= datetime.now(UTC):
                await self._slice(start, None, report, dry_run, progress)
                return report
            await self._slice(start, end, report, dry_run, progress)
            start = end

    async def _slice(
        self,
        since: datetime,
        until: datetime | None,
        report: BackfillReport,
        dry_run: bool,
        progress: Progress | None,
    ) -> None:
        groups = group_calls(await self.source.legs(since, until))
        report.incomplete = report.incomplete or self.source.incomplete
        state = self.calls.state_of(self.pbx)
        # Calls reusing a Linkedid are kept apart by their times (the first keeps it, see ``_keyed``).
        found_calls = [
            (linkedid, legs) for linkedid, grouped in groups.items() for legs in split_reused(grouped)
        ]
        if progress is not None:
            progress.found(len(found_calls))
        if not dry_run:
            # Calls that ended just now are stored before they are compared with their CDR (an end still
            # waiting for its party lookup stays pending, and so counts as live here: no wait for it).
            await self.calls.flush(keep_waiting=True)
        keys = {(self.pbx, linkedid) for linkedid, _ in found_calls}
        keys |= {
            (self.pbx, reused_key(linkedid, min(r.start for r in legs))) for linkedid, legs in found_calls
        }
        stored = await self.calls.calls.by_keys(sorted(keys))
        for linkedid, record, legs in self._keyed(state, found_calls, stored):
            key = (self.pbx, record.linkedid)
            if (record.linkedid == linkedid and linkedid in state.calls) or self.calls.is_pending(key):
                report.count(record.linkedid, "live")
            elif (found := stored.get(key)) is None:
                report.count(record.linkedid, "created")
                if not dry_run:
                    await self.calls.record_ended(self.pbx, record)
            elif (better := corrected(found.record, record, call_spans(legs, record))) is None:
                report.count(record.linkedid, "unchanged")
            else:
                report.count(record.linkedid, "corrected")
                if not dry_run:
                    await self.calls.record_ended(self.pbx, better)
            if progress is not None:
                progress.done(1)
        if not dry_run:
            await self.calls.flush()

    def _keyed(
        self,
        state: TrackerState,
        found_calls: Sequence[tuple[str, Sequence[CdrRow]]],
        stored: Mapping[tuple[str, str], StoredCall],
    ) -> Iterator[tuple[str, CallRecord, Sequence[CdrRow]]]:
        """Each call's record under its key: its Linkedid, unless a call of other times already holds that key
        (stored, or earlier in this read); then the Linkedid and its start (``reused_key``)."""
        taken: dict[str, tuple[datetime, datetime | None]] = {
            key[1]: (found.record.started_at, found.record.ended_at) for key, found in stored.items()
        }
        for linkedid, legs in sorted(found_calls, key=lambda item: min(r.start for r in item[1])):
            record = call_from_legs(state, linkedid, legs)
            if record is None:
                continue
            holder = taken.get(linkedid)
            if holder is not None and not overlaps(*holder, record.started_at, record.ended_at):
                record = replace(record, linkedid=reused_key(linkedid, record.started_at))
                log.info(
                    "cdr %s: Linkedid %s reused by another call: stored as %s",
                    self.pbx,
                    linkedid,
                    record.linkedid,
                )
            taken.setdefault(record.linkedid, (record.started_at, record.ended_at))
            yield linkedid, record, legs

    async def amend(self, records: Sequence[CallRecord]) -> dict[str, CallRecord]:
        """The CDR's truth for calls a resync closed (by Linkedid); calls without CDR legs are left out."""
        if not records:
            return {}
        since = min(r.started_at for r in records)
        groups = group_calls(await self.source.legs_of({r.linkedid for r in records}, since))
        state = self.calls.state_of(self.pbx)
        out: dict[str, CallRecord] = {}
        for record in records:
            # Of the calls that used this Linkedid, the one of this record's times.
            legs = next(
                (
                    call
                    for call in split_reused(groups.get(record.linkedid, []))
                    if overlaps(
                        record.started_at,
                        record.ended_at,
                        min(r.start for r in call),
                        max(r.end for r in call),
                    )
                ),
                None,
            )
            if not legs:
                continue
            cdr = call_from_legs(state, record.linkedid, legs)
            if cdr is not None:
                out[record.linkedid] = corrected(record, cdr, call_spans(legs, cdr)) or record
        return out


class CdrService:
    """The per-PBX backfills, driven by the call service's resyncs; owned by the composition root."""

    def __init__(
        self,
        calls: CallService,
        watermarks: WatermarkRepository,
        backfills: Mapping[str, Backfill],
        margins: Mapping[str, timedelta],
    ) -> None:
        self.calls = calls
        self.watermarks = watermarks
        self.backfills = dict(backfills)
        self.margins = dict(margins)
        self.passes = 0
        self._wanted: dict[str, datetime] = {}
        self._wakeup = asyncio.Event()
        # Per PBX, for ``serve`` (a cluster node runs one PBX's passes inside its leadership term).
        self._wakeups: dict[str, asyncio.Event] = {}
        self._serving = 0
        self._idle = asyncio.Event()
        self._idle.set()

    # -- ResyncAmender ---------------------------------------------------------------------------
    async def amend(self, pbx: str, records: Sequence[CallRecord], at: datetime) -> Mapping[str, CallRecord]:
        """The CDR's end (and answer) of calls a resync closed; nothing when the PBX has no CDR source."""
        backfill = self.backfills.get(pbx)
        if backfill is None:
            return {}
        try:
            async with asyncio.timeout(AMEND_TIMEOUT):
                return await backfill.amend(records)
        except TimeoutError:
            log.warning(
                "cdr %s: no CDR answer within %.0f s; closed calls kept as last seen", pbx, AMEND_TIMEOUT
            )
        except CrmtelError as err:
            log.warning("cdr %s: closed calls kept as last seen, CDR not read: %s", pbx, err)
        except Exception:
            # Whatever the CDR holds, the resync's closing of calls must go on.
            log.exception("cdr %s: reading the CDR of closed calls failed; kept as last seen", pbx)
        return {}

    def resynced(self, pbx: str, at: datetime) -> None:
        """Schedule a pass for ``pbx`` up to ``at`` (passes are coalesced: the latest wins)."""
        self._wanted[pbx] = max(at, self._wanted.get(pbx, at))
        self._idle.clear()
        self._wakeup.set()
        self._wakeup_of(pbx).set()

    def _wakeup_of(self, pbx: str) -> asyncio.Event:
        event = self._wakeups.get(pbx)
        if event is None:
            event = self._wakeups[pbx] = asyncio.Event()
        return event

    async def idle(self) -> None:
        """Wait until no pass is waiting or running (for tests and the CLI)."""
        await self._idle.wait()

    # -- the owned tasks ---------------------------------------------------------------------------
    async def serve(self, pbx: str) -> None:
        """Run ``pbx``'s passes as its resyncs ask for them, until cancelled (a cluster node runs this inside
        the PBX's leadership term: a pass never outlives the term whose calls it writes)."""
        wakeup = self._wakeup_of(pbx)
        try:
            while True:
                at = self._wanted.pop(pbx, None)
                if at is None:
                    if not self._wanted and not self._serving:
                        self._idle.set()
                    wakeup.clear()
                    await wakeup.wait()
                    continue
                self._serving += 1
                try:
                    await self._pass(pbx, at)
                except Exception:
                    log.exception("cdr %s: backfill pass failed", pbx)
                finally:
                    self._serving -= 1
        finally:
            # The term ended: the next leader's resync asks for its own pass.
            self._wanted.pop(pbx, None)
            if not self._wanted and not self._serving:
                self._idle.set()

    async def close(self) -> None:
        """Close every CDR source (when ``serve`` was used instead of ``run``)."""
        for backfill in self.backfills.values():
            await backfill.source.close()

    async def run(self) -> None:
        """Run passes as resyncs ask for them, until cancelled; then close the sources."""
        try:
            while True:
                if not self._wanted:
                    self._idle.set()
                    self._wakeup.clear()
                    await self._wakeup.wait()
                    continue
                pbx, at = self._wanted.popitem()
                try:
                    await self._pass(pbx, at)
                except Exception:
                    # One bad pass (odd CDR data, a bug) must not end backfills for good: the next resync retries.
                    log.exception("cdr %s: backfill pass failed", pbx)
        finally:
            for backfill in self.backfills.values():
                await backfill.source.close()

    async def _pass(self, pbx: str, at: datetime) -> None:
        try:
            await self._close_orphans(pbx, at)
            backfill = self.backfills.get(pbx)
            if backfill is None:
                return
            mark = await self.watermarks.get(pbx)
            if mark is None:
                log.info("cdr %s: first start with %s: calls from now on", pbx, backfill.source.describe())
                await self.watermarks.advance(pbx, at)
                return
            since = mark - self.margins.get(pbx, timedelta(0))
            if since < at:
                report = await backfill.window(since, at)
                self.passes += 1
                if report.incomplete:
                    # A row the PBX is still writing: the watermark stays, the next pass reads it whole.
                    log.info("cdr %s: a CDR row is being written; the period is read again next pass", pbx)
                    return
                if report.created or report.corrected:
                    log.info(
                        "cdr %s: %d call(s) created, %d corrected, %d unchanged from %s",
                        pbx,
                        report.created,
                        report.corrected,
                        report.unchanged,
                        backfill.source.describe(),
                    )
            await self.watermarks.advance(pbx, at)
        except CrmtelError as err:
            # The watermark stays: the next pass reads the same period again.
            log.warning("cdr %s: backfill postponed: %s", pbx, err)

    async def _close_orphans(self, pbx: str, at: datetime) -> None:
        """Calls stored as live that the tracker does not follow (their state was lost) and the PBX no longer has."""
        # Written first: a call whose end is being written right now must be seen as ended, not as an orphan
        # (an end still waiting for its party lookup stays pending: followed, and not waited for).
        await self.calls.flush(keep_waiting=True)
        # Taken before the store is read, and in the same loop turn as the flush: a call that ended in the
        # tracker while that flush committed is pending now, and the writer beside tracking may store its end
        # while the read below runs — a read that can still see the row live. Judged after the read, such a
        # call would be in neither the tracker nor the outbox, and closed at ``at`` over its true end.
        followed = self.calls.followed(pbx)
        orphans = [
            _with_waits(stored)
            for stored in await self.calls.calls.live(pbx)
            if stored.record.linkedid not in followed
            and not self.calls.is_pending((pbx, stored.record.linkedid))
            and stored.record.started_at <= at
        ]
        if not orphans:
            return
        better = await self.amend(pbx, orphans, at)
        for record in orphans:
            await self.calls.record_ended(pbx, better.get(record.linkedid) or closed_at(record, at))
        # Their lookups are done (``record_ended`` waits for each): another call's hung one is not waited for.
        await self.calls.flush(keep_waiting=True)
        log.info("cdr %s: %d call(s) stored as live but gone from the PBX closed", pbx, len(orphans))


def _with_waits(stored: StoredCall) -> CallRecord:
    """A live row's record with the queue waits its tracker snapshot kept (a live call's waits are written as
    rows only when it ends): closed without its tracker, it still counts in the queue report."""
    raw = (stored.live_state or {}).get("queue_visits")
    if raw is None:
        return stored.record
    try:
        waits = visits.decode(raw)
    except (ValueError, KeyError, TypeError):
        log.warning("cdr: call %s: unreadable queue waits in its live state", stored.record.linkedid)
        return stored.record
    return replace(stored.record, queue_visits=waits)


def build_cdr_service(
    calls: CallService, watermarks: WatermarkRepository, pbxes: Sequence[AmiSettings]
) -> CdrService:
    """The CDR service for these PBXs (a backfill for each one with a ``cdr`` source)."""
    backfills: dict[str, Backfill] = {}
    for pbx in pbxes:
        if pbx.cdr is None:
            continue
        spec = CdrSpec.parse(pbx.cdr, pbx.cdr_table)
        source = open_source(spec, pbx_zone(pbx.cdr_timezone, pbx.cdr_usegmtime))
        backfills[pbx.name] = Backfill(pbx.name, source, calls)
    margins = {pbx.name: timedelta(seconds=pbx.cdr_margin) for pbx in pbxes}
    return CdrService(calls, watermarks, backfills, margins)
