"""The routing service: who is looked up, and failing open on every kind of store trouble."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, time

import pytest

from crmtel.config import RoutingSettings
from crmtel.domain import LookupResult
from crmtel.errors import StoreUnavailable
from crmtel.routing.models import RouteKind
from crmtel.routing.service import RoutingService

NIGHT = datetime(2026, 11, 24, 20, 0, tzinfo=UTC)


@dataclass
class Store:
    error: Exception | None = None
    asked: list[str] = field(default_factory=list)

    async def lookup(self, e164: str) -> LookupResult:
        self.asked.append(e164)
        if self.error is not None:
            raise self.error
        return LookupResult(e164)


@pytest.mark.parametrize("caller", ["anonymous", "101", "", None, "x" * 500, "+7 (abc)"])
async def test_non_numbers_are_not_looked_up(caller: str | None) -> None:
    """Anonymous callers, internal extensions and garbage go to the default queue without a lookup."""
    store = Store()
    decision = await RoutingService(store, RoutingSettings()).route(caller, None)
    assert decision is not None
    assert (decision.kind, decision.target) == (RouteKind.QUEUE, "retail")
    assert store.asked == []


async def test_caller_is_normalised_before_lookup() -> None:
    """The store is asked with the E.164 form of a national-format caller id."""
    store = Store()
    await RoutingService(store, RoutingSettings()).route("8 (916) 111-00-01", None)
    assert store.asked == ["+79161110001"]


@pytest.mark.parametrize("error", [StoreUnavailable("down"), RuntimeError("bug"), KeyError("x")])
async def test_any_lookup_error_fails_open(error: Exception) -> None:
    """Store outages and bugs alike give no decision (the dialplan falls back), never an exception."""
    service = RoutingService(Store(error=error), RoutingSettings())
    assert await service.route("+79161110001", None) is None
    await service.close()


async def test_explain_propagates_store_errors() -> None:
    """``route explain`` shows the operator the real store error instead of hiding it."""
    service = RoutingService(Store(error=StoreUnavailable("down")), RoutingSettings())
    with pytest.raises(StoreUnavailable):
        await service.explain("+79161110001", None)


async def test_clock_drives_working_hours() -> None:
    """The injected clock decides whether the after-hours target applies."""
    settings = RoutingSettings(open_at=time(9), close_at=time(18), after_hours_target="night")
    decision = await RoutingService(Store(), settings, clock=lambda: NIGHT).route("+79161110001", None)
    assert decision is not None
    assert decision.target == "night"
