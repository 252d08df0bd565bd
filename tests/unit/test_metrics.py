"""Metrics: the collector reads the components' counters at scrape time; the wrappers count as things happen."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from prometheus_client.parser import text_string_to_metric_families
from pydantic import SecretStr

from crmtel.calls.tracker.model import Call, TrackerState
from crmtel.domain import (
    CallAnswered,
    CallEnded,
    CallEvent,
    CallRecord,
    CallRinging,
    Direction,
    Outcome,
)
from crmtel.metrics import ComponentCollector, MeteredNotifier, MeteredRouter, Metrics, metrics_routes
from crmtel.routing.models import Decision, RouteKind

Client = TestClient[web.Request, web.Application]
AT = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)


@dataclass
class FakeClient:
    pbx: str
    connected: asyncio.Event = field(default_factory=asyncio.Event)
    connections: int = 0
    reconnects: int = 0
    connect_failures: int = 0
    login_failures: int = 0
    resyncs: int = 0
    received: int = 0
    handled: int = 0


@dataclass
class FakeCalls:
    states: Mapping[str, TrackerState] = field(default_factory=dict)
    events: int = 0
    flushes: int = 0
    pending: int = 0


@dataclass
class FakeCount:
    connections: int = 0


def _state(pbx: str, *linkedids: str) -> TrackerState:
    return TrackerState(pbx, calls={i: Call(linkedid=i, started_at=AT) for i in linkedids})


def _value(metrics: Metrics, name: str, **labels: str) -> float | None:
    return metrics.registry.get_sample_value(name, labels)


def test_collector_reads_component_counters_at_scrape_time() -> None:
    """Each scrape shows the counters as they are at that moment, per PBX where they are per PBX."""
    metrics = Metrics()
    one, two = FakeClient("pbx1"), FakeClient("branch")
    calls, browsers, agi = FakeCalls(), FakeCount(), FakeCount()
    metrics.watch(ComponentCollector(clients=(one, two), calls=calls, browsers=browsers, agi=agi))
    assert _value(metrics, "crmtel_ami_connected", pbx="pbx1") == 0
    assert _value(metrics, "crmtel_calls_live", pbx="branch") == 0

    one.connected.set()
    one.connections, one.received, one.handled, one.resyncs = 3, 120, 118, 3
    one.reconnects, one.connect_failures, one.login_failures = 6, 2, 1
    two.connections = 1
    calls.states = {"pbx1": _state("pbx1", "a.1", "a.2"), "branch": _state("branch")}
    calls.events, calls.flushes, calls.pending = 77, 5, 2
    browsers.connections, agi.connections = 4, 1

    assert _value(metrics, "crmtel_ami_connected", pbx="pbx1") == 1
    assert _value(metrics, "crmtel_ami_connected", pbx="branch") == 0
    assert _value(metrics, "crmtel_ami_connections_total", pbx="pbx1") == 3
    assert _value(metrics, "crmtel_ami_reconnects_total", pbx="pbx1") == 6
    assert _value(metrics, "crmtel_ami_reconnects_total", pbx="branch") == 0
    assert _value(metrics, "crmtel_ami_connect_failures_total", pbx="pbx1") == 2
    assert _value(metrics, "crmtel_ami_login_failures_total", pbx="pbx1") == 1
    assert _value(metrics, "crmtel_ami_events_received_total", pbx="pbx1") == 120
    assert _value(metrics, "crmtel_ami_events_handled_total", pbx="pbx1") == 118
    assert _value(metrics, "crmtel_ami_resyncs_total", pbx="pbx1") == 3
    assert _value(metrics, "crmtel_calls_live", pbx="pbx1") == 2
    assert _value(metrics, "crmtel_calls_live", pbx="branch") == 0
    assert _value(metrics, "crmtel_call_events_total") == 77
    assert _value(metrics, "crmtel_call_flushes_total") == 5
    assert _value(metrics, "crmtel_call_pending") == 2
    assert _value(metrics, "crmtel_web_browsers") == 4
    assert _value(metrics, "crmtel_agi_connections") == 1


def test_two_metrics_objects_never_share_a_figure() -> None:
    """Each Metrics has its own registry (no global state): counting in one leaves the other at zero."""
    first, second = Metrics(), Metrics()
    first.route_fail_open.inc()
    assert _value(first, "crmtel_route_fail_open_total") == 1
    assert _value(second, "crmtel_route_fail_open_total") == 0


def test_render_is_parseable_text_exposition() -> None:
    """The rendered text parses as Prometheus exposition and names the component families."""
    metrics = Metrics()
    metrics.watch(ComponentCollector(clients=(FakeClient("pbx1"),), calls=FakeCalls()))
    names = {family.name for family in text_string_to_metric_families(metrics.render().decode())}
    assert {
        "crmtel_ami_connected",
        "crmtel_calls_live",
        "crmtel_route_seconds",
        "crmtel_calls_ended",
    } <= names


DECISION = Decision(kind=RouteKind.EXTENSION, target="101", fallback_queue="retail", reason="x", rules=())


@dataclass
class FakeRouter:
    answers: list[Decision | None]

    async def route(self, caller: str | None, did: str | None) -> Decision | None:
        return self.answers.pop(0)


class BrokenRouter:
    async def route(self, caller: str | None, did: str | None) -> Decision | None:
        raise RuntimeError("bug")


async def test_metered_router_times_each_route_and_counts_decisions_and_fail_opens() -> None:
    """Every route() lands in the histogram; decisions count by kind, a None answer as a fail-open."""
    metrics = Metrics()
    router = MeteredRouter(FakeRouter([DECISION, None, DECISION]), metrics)
    assert [await router.route("+7916", None) for _ in range(3)] == [DECISION, None, DECISION]
    assert _value(metrics, "crmtel_route_seconds_count") == 3
    assert _value(metrics, "crmtel_route_decisions_total", kind="extension") == 2
    assert _value(metrics, "crmtel_route_fail_open_total") == 1


async def test_metered_router_still_times_a_router_that_raises() -> None:
    """A raising router's error passes through unchanged, and its time is still observed."""
    metrics = Metrics()
    with pytest.raises(RuntimeError):
        await MeteredRouter(BrokenRouter(), metrics).route(None, None)
    assert _value(metrics, "crmtel_route_seconds_count") == 1


@dataclass
class FakeNotifier:
    seen: list[CallEvent] = field(default_factory=list)

    async def publish(self, event: CallEvent) -> None:
        self.seen.append(event)


def _ended(linkedid: str, outcome: Outcome) -> CallEnded:
    record = CallRecord(
        "pbx1", linkedid, Direction.INBOUND, "+79161110001", None, "4951234567", AT, outcome=outcome
    )
    return CallEnded(linkedid, record, AT)


async def test_metered_notifier_counts_by_type_and_outcome_and_passes_every_event_on() -> None:
    """Published events count by type, ended calls by outcome; the wrapped notifier gets each event."""
    metrics = Metrics()
    inner = FakeNotifier()
    notifier = MeteredNotifier(inner, metrics)
    events: list[CallEvent] = [
        CallRinging(
            "c1", "pbx1", "c1", "101", Direction.INBOUND, "+79161110001", None, "4951234567", None, AT
        ),
        CallAnswered("c1", "101", AT),
        _ended("c1", Outcome.ANSWERED),
        _ended("c2", Outcome.MISSED),
        _ended("c3", Outcome.MISSED),
    ]
    for event in events:
        await notifier.publish(event)
    assert inner.seen == events
    assert _value(metrics, "crmtel_call_events_published_total", type="ringing") == 1
    assert _value(metrics, "crmtel_call_events_published_total", type="answered") == 1
    assert _value(metrics, "crmtel_call_events_published_total", type="ended") == 3
    assert _value(metrics, "crmtel_calls_ended_total", outcome="answered") == 1
    assert _value(metrics, "crmtel_calls_ended_total", outcome="missed") == 2


@pytest.fixture
async def client() -> AsyncIterator[Client]:
    metrics = Metrics()
    metrics.route_fail_open.inc()
    app = web.Application()
    app.add_routes(metrics_routes(metrics, SecretStr("s3cret")))
    async with TestClient(TestServer(app, host="127.0.0.1")) as test_client:
        yield test_client


async def test_local_request_gets_the_text_exposition(client: Client) -> None:
    """A plain request from this host is answered with the exposition format."""
    response = await client.get("/metrics")
    assert response.status == 200
    assert response.headers["Content-Type"].startswith("text/plain; version=")
    assert "crmtel_route_fail_open_total 1.0" in await response.text()


@pytest.mark.parametrize("header", ["X-Forwarded-For", "X-Real-IP", "Forwarded"])
async def test_proxied_request_without_token_is_refused(client: Client, header: str) -> None:
    """A request that came through a proxy is not local: without the token it gets 401."""
    response = await client.get("/metrics", headers={header: "for=203.0.113.9"})
    assert response.status == 401
    assert "crmtel_" not in await response.text()


async def test_proxied_request_with_the_right_token_is_answered(client: Client) -> None:
    """The bearer token opens /metrics from anywhere; a wrong one does not."""
    proxied = {"X-Forwarded-For": "203.0.113.9"}
    good = await client.get("/metrics", headers={**proxied, "Authorization": "Bearer s3cret"})
    assert good.status == 200
    bad = await client.get("/metrics", headers={**proxied, "Authorization": "Bearer s3cre"})
    assert bad.status == 401
