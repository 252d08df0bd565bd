"""Routing service: normalise the caller, look them up, decide — within a hard deadline, failing open."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Protocol

import structlog

from crmtel.config import RoutingSettings
from crmtel.domain import LookupResult
from crmtel.errors import StoreUnavailable
from crmtel.routing.models import Decision, Policy, RouteRequest
from crmtel.routing.rules import decide

_log = structlog.get_logger(__name__)

Clock = Callable[[], datetime]


class PartyLookup(Protocol):
    """Who a phone number belongs to (``crmtel.store.parties.PartyRepository`` provides it)."""

    async def lookup(self, e164: str) -> LookupResult:
        """Every CRM record the number belongs to, best first."""
        ...


class Router(Protocol):
    """What the FastAGI and HTTP front ends need: a decision, or None when the dialplan must fall back."""

    async def route(self, caller: str | None, did: str | None) -> Decision | None:
        """The decision within the deadline, or None."""
        ...


def _utcnow() -> datetime:
    return datetime.now(UTC)


class RoutingService:
    """Decides routes for inbound calls; ``route`` never raises and never exceeds the deadline."""

    def __init__(
        self,
        lookup: PartyLookup,
        settings: RoutingSettings,
        *,
        region: str = "RU",
        clock: Clock = _utcnow,
        max_inflight: int = 64,
    ) -> None:
        self._lookup = lookup
        self._policy = Policy.from_settings(settings, region)
        self._region = region
        self._clock = clock
        self.deadline = settings.deadline_ms / 1000
        # Lookups still running (some past their deadline); beyond the bound, calls fail open at once.
        self._inflight: set[asyncio.Task[Decision]] = set()
        self._max_inflight = max_inflight

    @property
    def policy(self) -> Policy:
        """The validated routing policy."""
        return self._policy

    async def explain(self, caller: str | None, did: str | None) -> Decision:
        """Decide without a deadline; store errors propagate (for ``route explain``)."""
        request = RouteRequest.from_raw(caller, did, self._region)
        e164 = request.caller.e164
        # Anonymous callers, internal extensions and garbage are never looked up: they match nobody.
        match = await self._lookup.lookup(e164) if e164 is not None else LookupResult(e164=None)
        return decide(request, match, self._policy, self._clock())

    async def route(self, caller: str | None, did: str | None) -> Decision | None:
        """The decision, or None when the store is slow or failing (the dialplan then uses its default)."""
        if len(self._inflight) >= self._max_inflight:
            _log.warning("route.overloaded", caller=caller, did=did, in_flight=len(self._inflight))
            return None
        loop = asyncio.get_running_loop()
        started = loop.time()
        # The lookup runs in its own owned task and is not cancelled at the deadline: cancelling a query
        # half-way makes the pool throw the connection away, which turns a slow store into a slower one.
        task = loop.create_task(self.explain(caller, did), name=f"route-lookup {caller!r}")
        self._inflight.add(task)
        task.add_done_callback(self._finished)
        try:
            async with asyncio.timeout(self.deadline):
                decision = await asyncio.shield(task)
        except TimeoutError:
            _log.warning("route.deadline_exceeded", caller=caller, did=did, deadline_ms=self.deadline * 1000)
            return None
        except StoreUnavailable as err:
            _log.warning("route.store_unavailable", caller=caller, did=did, error=str(err))
            return None
        except Exception:  # noqa: BLE001 — fail open: a bug in lookup or rules must not lose the call
            _log.exception("route.failed", caller=caller, did=did)
            return None
        _log.info(
            "route.decided",
            caller=caller,
            did=did,
            kind=decision.kind.value,
            target=decision.target,
            fallback=decision.fallback_queue,
            reason=decision.reason,
            ms=round((loop.time() - started) * 1000, 2),
        )
        return decision

    def _finished(self, task: asyncio.Task[Decision]) -> None:
        self._inflight.discard(task)
        # A lookup that outlived its deadline has nobody awaiting it: retrieve its error so it is not lost.
        if not task.cancelled() and (err := task.exception()) is not None:
            _log.debug("route.lookup_error", error=repr(err))

    async def close(self) -> None:
        """Cancel and await lookups still running after their callers gave up."""
        tasks = list(self._inflight)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
