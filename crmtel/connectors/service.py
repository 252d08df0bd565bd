"""The outbox's two ends: the tap that stages effects in the call flush's transaction, and the owned
delivery workers (one per connector) that deliver them at least once, in order per call.

A worker claims due events (each the first undelivered one of its call) for a lease, delivers them under the
connector's rate limit, and settles each: delivered, retried later with exponential backoff (hours to days:
``[outbox] retry_max_seconds``, ``give_up_hours``), or failed for a person to look at and replay. A claim
that runs out (a node killed mid-delivery) lets any node deliver the event again, so a connector must make
a repeat harmless (its CRM sees each effect once: idempotency keys, EXTERNAL_CALL_ID, memos).
"""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol, runtime_checkable

import structlog
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from sqlalchemy.ext.asyncio import AsyncSession

from crmtel.config import OutboxSettings
from crmtel.connectors.models import Attempt, Backlog, Kind, OutboxEvent, Verdict
from crmtel.connectors.rate import Limiter, RateLimits
from crmtel.connectors.staging import stage_all
from crmtel.domain import CallEvent
from crmtel.errors import CrmtelError
from crmtel.store.outbox import OutboxRepository, stage_in

_log = structlog.get_logger("crmtel.connectors")


def utcnow() -> datetime:
    """Now, in UTC."""
    return datetime.now(UTC)


class Sink(Protocol):
    """One outside system the outbox delivers to (a CRM connector, a webhook subscription)."""

    @property
    def name(self) -> str:
        """The connector's name (outbox rows are kept per name)."""
        ...

    @property
    def kinds(self) -> frozenset[Kind]:
        """The effects it wants staged."""
        ...

    @property
    def rate_per_second(self) -> float:
        """Requests per second the outside system allows."""
        ...

    @property
    def rate_burst(self) -> int:
        """Requests it takes at once after a quiet time (1: none beyond the rate)."""
        ...

    async def deliver(self, event: OutboxEvent, memo: Mapping[str, Any]) -> Attempt:
        """Deliver one effect; never raises for the outside system's trouble (that is a RETRY or FAILED)."""
        ...

    async def aclose(self) -> None:
        """Release the sink's connections."""
        ...


@runtime_checkable
class Diagnosed(Protocol):
    """A sink that can say what is wrong with its setup (shown in /healthz beside its backlog)."""

    @property
    def problem(self) -> str | None:
        """What an administrator must fix, or None."""
        ...


class OutboxTap:
    """The call service's ``CallTap``: stages each connector's effects in the flush's own transaction."""

    def __init__(self, sinks: Sequence[Sink], *, clock: Callable[[], datetime] = utcnow) -> None:
        self._wanted = [(s.name, s.kinds) for s in sinks]
        self._clock = clock
        self._nudges: list[asyncio.Event] = []

    def on_staged(self, event: asyncio.Event) -> None:
        """Have ``event`` set whenever something was staged (a worker waiting for work wakes up)."""
        self._nudges.append(event)

    async def write_in(self, session: AsyncSession, events: Sequence[CallEvent]) -> None:
        """Stage the effects of ``events`` for every connector that wants them."""
        now = self._clock()
        staged_any = False
        for name, kinds in self._wanted:
            staged = stage_all(events, kinds)
            await stage_in(session, name, staged, now)
            staged_any = staged_any or bool(staged)
        if staged_any:
            # Set before the commit: a worker that wakes too early finds nothing and waits for the next poll.
            for nudge in self._nudges:
                nudge.set()


class DeliveryWorker:
    """Delivers one connector's outbox (an owned task: ``run`` until cancelled)."""

    def __init__(
        self,
        sink: Sink,
        repo: OutboxRepository,
        settings: OutboxSettings,
        *,
        node: str,
        clock: Callable[[], datetime] = utcnow,
        limits: RateLimits | None = None,
    ) -> None:
        self.sink = sink
        self.repo = repo
        self.settings = settings
        self.node = node
        self._clock = clock
        # One bucket per connector for the whole cluster (``limits`` shared over Redis), else per node.
        self.rate: Limiter = (limits or RateLimits()).limit(
            f"outbox:{sink.name}", sink.rate_per_second, sink.rate_burst
        )
        self.wake = asyncio.Event()
        self.delivered = 0
        self.retried = 0
        self.failed = 0
        self.backlog = Backlog(sink.name, 0, 0, 0.0)
        # Until when the whole connector waits (the CRM said "too many requests", or is down).
        self._hold_until: datetime | None = None

    async def run(self) -> None:
        """Claim, deliver and settle until cancelled."""
        poll = self.settings.poll_seconds
        while True:
            await self._held()
            try:
                claimed = await self.repo.claim(
                    self.sink.name,
                    self.node,
                    self._clock(),
                    timedelta(seconds=self.settings.lease_seconds),
                    self.settings.batch,
                )
            except CrmtelError as err:
                _log.warning("outbox.claim_failed", connector=self.sink.name, error=str(err))
                await asyncio.sleep(poll)
                continue
            if not claimed:
                self.wake.clear()
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(poll):
                        await self.wake.wait()
                continue
            try:
                await self._deliver_batch(claimed)
            # A bug must not end deliveries for good: the events were given back, the next round retries.
            except Exception:  # noqa: BLE001
                _log.exception("outbox.batch_failed", connector=self.sink.name)
                await asyncio.sleep(poll)

    async def _held(self) -> None:
        if self._hold_until is None:
            return
        wait = (self._hold_until - self._clock()).total_seconds()
        self._hold_until = None
        if wait > 0:
            await asyncio.sleep(wait)

    async def _deliver_batch(self, claimed: list[tuple[OutboxEvent, dict[str, Any]]]) -> None:
        # Events of one claim belong to different calls, so delivering them side by side keeps each call's order.
        gate = asyncio.Semaphore(self.settings.concurrency)
        results: list[tuple[OutboxEvent, Attempt]] = []

        async def one(event: OutboxEvent, memo: dict[str, Any]) -> None:
            async with gate:
                if self._hold_until is not None:
                    return  # the CRM asked us to wait: the rest of the batch is given back below
                await self.rate.acquire()
                results.append((event, await self._attempt(event, memo)))

        # The claim is kept alive while the batch is delivered (a slow CRM: 50 events of up to 15 s, 4 at a time,
        # outlast any lease); only a node that stops renewing (killed) lets another deliver them again.
        lease = self._keep_claims([event.id for event, _ in claimed])
        keeper = asyncio.get_running_loop().create_task(lease, name=f"outbox-{self.sink.name}-lease")
        try:
            async with asyncio.TaskGroup() as group:
                for event, memo in claimed:
                    group.create_task(one(event, memo), name=f"outbox-{self.sink.name}-{event.id}")
        finally:
            keeper.cancel()
            # What was sent is recorded in one transaction (also when stopping: shielded); what was not sent
            # goes back at once instead of waiting for its lease to run out.
            await asyncio.shield(self._settle(results))
            done = {event.id for event, _ in results}
            for event, _ in claimed:
                if event.id not in done:
                    with contextlib.suppress(CrmtelError):
                        await asyncio.shield(self.repo.release(event))
            await asyncio.wait([keeper])

    async def _keep_claims(self, ids: list[int]) -> None:
        lease = self.settings.lease_seconds
        while True:
            await asyncio.sleep(lease / 3)
            # Delivered ones too: they are settled at the batch's end, and must not be taken before.
            try:
                await self.repo.extend(ids, self.node, self._clock() + timedelta(seconds=lease))
            except CrmtelError as err:
                _log.warning("outbox.lease_not_renewed", connector=self.sink.name, error=str(err))

    async def _attempt(self, event: OutboxEvent, memo: dict[str, Any]) -> Attempt:
        try:
            return await self.sink.deliver(event, memo)
        except asyncio.CancelledError:
            raise
        # A connector's bug must not stop the outbox: the event waits, and the bug is logged.
        except Exception as err:  # noqa: BLE001
            _log.exception("outbox.connector_error", connector=self.sink.name, event_id=event.id)
            return Attempt(Verdict.RETRY, f"connector error: {err.__class__.__name__}: {err}")

    def next_at(self, event: OutboxEvent, attempt: Attempt, now: datetime) -> datetime | None:
        """When to try a retried event again; None once it is older than ``give_up_hours`` (it fails)."""
        base = self.settings.retry_min_seconds * (2 ** min(event.attempts, 30))
        delay = min(self.settings.retry_max_seconds, base) * random.uniform(0.8, 1.0)
        if attempt.retry_after is not None:
            delay = max(delay, attempt.retry_after)
        due = now + timedelta(seconds=delay)
        if due - _aware(event.created_at) > timedelta(hours=self.settings.give_up_hours):
            return None
        return due

    async def _settle(self, results: list[tuple[OutboxEvent, Attempt]]) -> None:
        if not results:
            return
        now = self._clock()
        items: list[tuple[OutboxEvent, Attempt, datetime | None]] = []
        for event, attempt in results:
            retry = attempt.verdict is Verdict.RETRY
            items.append((event, attempt, self.next_at(event, attempt, now) if retry else None))
            if retry and attempt.retry_after is not None:
                hold = now + timedelta(seconds=attempt.retry_after)
                self._hold_until = max(hold, self._hold_until) if self._hold_until is not None else hold
        delay = 0.1
        while True:
            try:
                states = await self.repo.settle_many(items, node=self.node, now=now)
                break
            except CrmtelError as err:
                # The results must be recorded (else the events are delivered again): wait for the store.
                _log.warning("outbox.settle_failed", connector=self.sink.name, error=str(err))
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)
        for (event, attempt), state in zip(results, states, strict=True):
            if state == "delivered":
                self.delivered += 1
            elif state == "pending":
                self.retried += 1
                _log.info(
                    "outbox.retry", connector=self.sink.name, event_id=event.id, answer=attempt.answer[:200]
                )
            else:
                self.failed += 1
                _log.warning(
                    "outbox.failed", connector=self.sink.name, event_id=event.id, answer=attempt.answer[:200]
                )

    async def refresh_backlog(self) -> Backlog:
        """Read the backlog from the store (metrics and /healthz show the last one read)."""
        (self.backlog,) = await self.repo.backlog([self.sink.name], self._clock())
        return self.backlog


def _aware(value: datetime) -> datetime:
    # SQLite hands naive datetimes back; they were written in UTC.
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


class ConnectorService:
    """Owns the delivery workers and the backlog reader (enter to start, leave to stop them)."""

    def __init__(
        self,
        sinks: Sequence[Sink],
        repo: OutboxRepository,
        settings: OutboxSettings,
        *,
        node: str,
        clock: Callable[[], datetime] = utcnow,
        limits: RateLimits | None = None,
    ) -> None:
        self.tap = OutboxTap(sinks, clock=clock)
        self._clock = clock
        self.repo = repo
        self.settings = settings
        self.workers = [
            DeliveryWorker(s, repo, settings, node=node, clock=clock, limits=limits) for s in sinks
        ]
        for worker in self.workers:
            self.tap.on_staged(worker.wake)
        self._tasks: list[asyncio.Task[None]] = []

    async def __aenter__(self) -> ConnectorService:
        loop = asyncio.get_running_loop()
        for worker in self.workers:
            self._tasks.append(loop.create_task(worker.run(), name=f"outbox-{worker.sink.name}"))
        if self.workers:
            self._tasks.append(loop.create_task(self._watch_backlog(), name="outbox-backlog"))
        return self

    async def __aexit__(self, *_exc: object) -> None:
        for task in self._tasks:
            task.cancel()
        results = await asyncio.gather(*self._tasks, return_exceptions=True)
        for task, result in zip(self._tasks, results, strict=True):
            if isinstance(result, BaseException) and not isinstance(result, asyncio.CancelledError):
                _log.error("task.failed", task=task.get_name(), error=repr(result))
        self._tasks.clear()
        for worker in self.workers:
            await worker.sink.aclose()

    async def _watch_backlog(self) -> None:
        pruned_at = 0.0
        loop = asyncio.get_running_loop()
        while True:
            for worker in self.workers:
                try:
                    await worker.refresh_backlog()
                except CrmtelError as err:
                    _log.warning("outbox.backlog_unread", error=str(err))
            if loop.time() - pruned_at > 3600:
                pruned_at = loop.time()
                await self.prune()
            await asyncio.sleep(self.settings.backlog_seconds)

    async def prune(self) -> int:
        """Delete what was delivered more than ``keep_days`` ago (the outbox must not grow forever)."""
        before = self._clock() - timedelta(days=self.settings.keep_days)
        total = 0
        try:
            while (deleted := await self.repo.prune(before)) > 0:
                total += deleted
        except CrmtelError as err:
            _log.warning("outbox.prune_failed", error=str(err))
        if total:
            _log.info("outbox.pruned", events=total)
        return total

    def backlogs(self) -> list[Backlog]:
        """The last backlog read of every connector, with what its sink found wrong with its setup."""
        return [
            replace(w.backlog, problem=w.sink.problem) if isinstance(w.sink, Diagnosed) else w.backlog
            for w in self.workers
        ]

    def collect(self) -> list[Metric]:
        """Prometheus families: deliveries by outcome and the backlog, per connector."""
        done = CounterMetricFamily(
            "crmtel_outbox_deliveries", "Outbox delivery attempts by result.", labels=["connector", "result"]
        )
        pending = GaugeMetricFamily(
            "crmtel_outbox_pending", "Outbox events not delivered yet.", labels=["connector"]
        )
        failed = GaugeMetricFamily(
            "crmtel_outbox_failed", "Outbox events given up (list and replay them).", labels=["connector"]
        )
        oldest = GaugeMetricFamily(
            "crmtel_outbox_oldest_seconds", "Age of the oldest pending outbox event.", labels=["connector"]
        )
        for w in self.workers:
            name = w.sink.name
            done.add_metric([name, "delivered"], w.delivered)
            done.add_metric([name, "retry"], w.retried)
            done.add_metric([name, "failed"], w.failed)
            pending.add_metric([name], w.backlog.pending)
            failed.add_metric([name], w.backlog.failed)
            oldest.add_metric([name], w.backlog.oldest_seconds)
        return [done, pending, failed, oldest]
