"""The live board's service: folds live call events into the board and sends it to the heads' browsers.

It sits on the call service's notifier chain (``BoardTap``), so it hears every event the popups do, at
once. Today's answered/missed/called-back counts come from the record store, so the board agrees with the
reports: re-read as soon as the call service says it stored ended calls (``calls_stored``), ``settle``
seconds after an end it hears of without that (another node stores the calls), and every
``refresh_every`` seconds. One task, owned here, does that; ``aclose`` cancels and awaits it.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Iterable
from datetime import UTC, date, datetime
from typing import Any, Protocol

import structlog

from crmtel.board.models import BoardState, TodayCounts
from crmtel.calls.service import CallNotifier
from crmtel.domain import CallAnswered, CallEnded, CallEvent
from crmtel.errors import CrmtelError
from crmtel.push.hub import Hub
from crmtel.push.notifier import ExtensionNames
from crmtel.reports.models import Period, ReportFilter, total_of, zone
from crmtel.reports.queries import QueryOptions, ReportQueries
from crmtel.reports.queue_queries import QueueQueries
from crmtel.store.db import Database

log = structlog.get_logger(__name__)


class CountsSource(Protocol):
    """Where today's counts come from."""

    async def today(self, period: Period) -> tuple[TodayCounts, set[str]]:
        """Counts of ``period`` and the queues that had calls in it."""
        ...


class StoreCounts:
    """Today's counts by the reports' own queries (so board and reports never disagree)."""

    def __init__(self, db: Database, options: QueryOptions | None = None) -> None:
        self._reports = ReportQueries(db, options)
        self._queues = QueueQueries(db)

    async def today(self, period: Period) -> tuple[TodayCounts, set[str]]:
        """Answered (in and out), missed inbound, and missed that were called back since."""
        totals = total_of(await self._reports.figures(period, ReportFilter()))
        queues = {q.queue for q in (await self._queues.queues(period)).queues}
        called_back = totals.missed - totals.missed_not_called_back
        return TodayCounts(totals.answered, totals.missed, called_back), queues


class BoardService:
    """The board's state, kept live from call events and pushed to heads on every change."""

    def __init__(
        self,
        hub: Hub,
        names: ExtensionNames,
        counts: CountsSource,
        *,
        timezone: str,
        refresh_every: float = 30.0,
        settle: float = 2.0,
        min_interval: float = 0.2,
        queues: Iterable[str] = (),
        region: str = "RU",
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        zone(timezone)
        self._hub = hub
        self._names = names
        self._counts = counts
        self._tz = timezone
        self._refresh_every = refresh_every
        self._settle = settle
        self._clock = clock or (lambda: datetime.now(UTC))
        self.state = BoardState(configured=frozenset(q for q in queues if q), region=region)
        self._day: date | None = None
        self._ended = asyncio.Event()
        self._stored = asyncio.Event()
        self._wake = asyncio.Event()
        self._min_interval = min_interval
        self._changed = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        hub.everyone_greeting = self.message

    async def __aenter__(self) -> BoardService:
        self._tasks = [
            asyncio.create_task(self._refresh_loop(), name="board.refresh"),
            asyncio.create_task(self._send_loop(), name="board.send"),
        ]
        return self

    async def __aexit__(self, *_exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Stop refreshing and sending (cancel and await both tasks)."""
        tasks, self._tasks = self._tasks, []
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task

    def message(self) -> dict[str, Any]:
        """The board as the page draws it, now."""
        return self.state.message(self._clock())

    async def publish(self, event: CallEvent) -> None:
        """Fold one live event in and send the board to heads if it changed."""
        name = await self._name(event.extension) if isinstance(event, CallAnswered) else None
        if self.state.apply(event, name):
            self._changed.set()
        if isinstance(event, CallEnded):
            self._ended.set()
            self._wake.set()

    async def _name(self, extension: str) -> str | None:
        # The directory may have to ask the store: never hold up call tracking for a name on the board.
        try:
            async with asyncio.timeout(0.25):
                return await self._names.name_of(extension)
        except TimeoutError:
            return None

    def calls_stored(self, ended: int) -> None:
        """The call service stored ``ended`` ended calls: today's counts are worth re-reading now."""
        if ended:
            self._stored.set()
            self._wake.set()

    async def refresh(self) -> None:
        """Re-read today's counts (a new local day starts from zero); the store being down is logged, not fatal."""
        today = self._clock().astimezone(zone(self._tz)).date()
        if self._day is not None and today != self._day:
            self.state.new_day()
            self._changed.set()
        self._day = today
        period = Period(today, date.fromordinal(today.toordinal() + 1), self._tz)
        try:
            counts, queues = await self._counts.today(period)
        except CrmtelError as err:
            log.warning("board.counts_unavailable", error=str(err))
            return
        if self.state.set_counts(counts, queues):
            self._changed.set()

    async def _send_loop(self) -> None:
        # A busy line changes the board many times a second: heads get its latest state at most every
        # ``min_interval`` seconds, so their browsers' queues never fill with boards nobody saw.
        while True:
            await self._changed.wait()
            self._changed.clear()
            self._hub.to_everyone(self.message())
            await asyncio.sleep(self._min_interval)

    async def _refresh_loop(self) -> None:
        try:
            await self.refresh()  # the counts so far today, before anything happens
        except Exception:
            log.exception("board.refresh_failed")
        while True:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self._refresh_every):
                    await self._wake.wait()
            if self._ended.is_set() and not self._stored.is_set():
                # An end we heard of but nobody said was stored (yet): give the writer a moment.
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(self._settle):
                        await self._stored.wait()
            self._wake.clear()
            self._ended.clear()
            self._stored.clear()
            try:
                await self.refresh()
            except Exception:  # a bug in one refresh must not stop the board for the day
                log.exception("board.refresh_failed")
            # A busy line stores ended calls every moment: count at most once a second.
            await asyncio.sleep(1.0)


class BoardTap:
    """A notifier that lets the board hear every live event before passing it on unchanged."""

    def __init__(self, inner: CallNotifier, board: BoardService) -> None:
        self._inner = inner
        self._board = board

    async def publish(self, event: CallEvent) -> None:
        """Board first (it never waits on a browser), then the rest of the chain."""
        try:
            await self._board.publish(event)
        except Exception:  # the board must never hold up the managers' popups
            log.exception("board.publish_failed")
        await self._inner.publish(event)
