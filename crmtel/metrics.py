"""Prometheus metrics: ``GET /metrics`` on the web port, for the admin's scraper.

Most figures are counters the components already keep; a collector reads them at scrape time, so nothing
here sits on the hot path of AMI events. What has to be seen as it happens (route latency and decisions,
published call events, ended calls) is counted by thin wrappers around the router and the notifier, which
``app.py`` puts between the components. Everything lives on its own ``CollectorRegistry`` per ``Metrics``
(never the global one), so two apps in one process, or two tests, never share a figure.

Access: requests straight from this host (no proxy headers, the rule of ``GET /route``), or with
``Authorization: Bearer <web.metrics_token>``; the figures name PBXs and show the call load.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterable, Mapping, Sequence
from typing import Protocol

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.metrics_core import CounterMetricFamily, GaugeMetricFamily, Metric
from pydantic import SecretStr

from crmtel.calls.service import CallNotifier
from crmtel.calls.tracker.model import TrackerState
from crmtel.domain import CallAnswered, CallEnded, CallEvent, CallQueued, CallRinging, CallRingStopped
from crmtel.routing.models import Decision
from crmtel.routing.service import Router
from crmtel.routing.web import has_token, is_local

# Route decisions must come well inside the default 500 ms deadline; the buckets resolve that range.
ROUTE_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)

_EVENT_TYPES: Mapping[type[CallEvent], str] = {
    CallRinging: "ringing",
    CallRingStopped: "ring_stopped",
    CallAnswered: "answered",
    CallEnded: "ended",
    CallQueued: "queued",
}


class AmiCounters(Protocol):
    """What one PBX connection counts (``crmtel.ami.client.AmiClient``)."""

    @property
    def pbx(self) -> str:
        """The PBX name."""
        ...

    @property
    def connected(self) -> asyncio.Event:
        """Set while logged in."""
        ...

    @property
    def connections(self) -> int:
        """Successful logins so far."""
        ...

    @property
    def reconnects(self) -> int:
        """Connection attempts after the first one."""
        ...

    @property
    def connect_failures(self) -> int:
        """Attempts that never reached a PBX (refused, unreachable, timed out)."""
        ...

    @property
    def login_failures(self) -> int:
        """Logins the PBX refused."""
        ...

    @property
    def resyncs(self) -> int:
        """CoreShowChannels resyncs so far."""
        ...

    @property
    def received(self) -> int:
        """Events read from the socket."""
        ...

    @property
    def handled(self) -> int:
        """Events handed to the call service."""
        ...


class CallCounters(Protocol):
    """What the call service counts (``crmtel.calls.service.CallService``)."""

    @property
    def states(self) -> Mapping[str, TrackerState]:
        """The tracker state of each PBX (its live calls)."""
        ...

    @property
    def events(self) -> int:
        """Call events tracked."""
        ...

    @property
    def flushes(self) -> int:
        """Group writes committed."""
        ...

    @property
    def pending(self) -> int:
        """Calls changed since the last flush."""
        ...


class Sized(Protocol):
    """Something with a current count of connections (the push hub, the FastAGI server)."""

    @property
    def connections(self) -> int:
        """How many are open right now."""
        ...


class Collector(Protocol):
    """Anything the registry can read at scrape time."""

    def collect(self) -> Iterable[Metric]:
        """The metric families."""
        ...


class ComponentCollector:
    """Reads the components' own counters at scrape time (registered on a ``Metrics.registry``)."""

    def __init__(
        self,
        *,
        clients: Sequence[AmiCounters] = (),
        calls: CallCounters | None = None,
        browsers: Sized | None = None,
        agi: Sized | None = None,
    ) -> None:
        self._clients = tuple(clients)
        self._calls = calls
        self._browsers = browsers
        self._agi = agi

    def collect(self) -> Iterable[Metric]:
        """One family per figure; PBX figures are labelled ``pbx``."""
        yield from self._ami()
        if self._calls is not None:
            yield from self._call_service(self._calls)
        if self._browsers is not None:
            yield GaugeMetricFamily(
                "crmtel_web_browsers", "Browsers connected to the live websocket.", self._browsers.connections
            )
        if self._agi is not None:
            yield GaugeMetricFamily(
                "crmtel_agi_connections", "FastAGI connections being served.", self._agi.connections
            )

    def _ami(self) -> Iterable[Metric]:
        up = GaugeMetricFamily("crmtel_ami_connected", "1 while logged in to the PBX's AMI.", labels=["pbx"])
        logins = CounterMetricFamily(
            "crmtel_ami_connections", "AMI logins (first one included).", labels=["pbx"]
        )
        again = CounterMetricFamily(
            "crmtel_ami_reconnects", "AMI connection attempts after the first one.", labels=["pbx"]
        )
        unreachable = CounterMetricFamily(
            "crmtel_ami_connect_failures",
            "AMI connection attempts that never reached the PBX (refused, unreachable, timed out).",
            labels=["pbx"],
        )
        refused = CounterMetricFamily(
            "crmtel_ami_login_failures", "AMI logins the PBX refused (wrong user or secret).", labels=["pbx"]
        )
        received = CounterMetricFamily("crmtel_ami_events_received", "AMI events read.", labels=["pbx"])
        handled = CounterMetricFamily("crmtel_ami_events_handled", "AMI events handled.", labels=["pbx"])
        resyncs = CounterMetricFamily("crmtel_ami_resyncs", "CoreShowChannels resyncs.", labels=["pbx"])
        for client in self._clients:
            labels = [client.pbx]
            up.add_metric(labels, 1.0 if client.connected.is_set() else 0.0)
            logins.add_metric(labels, client.connections)
            again.add_metric(labels, client.reconnects)
            unreachable.add_metric(labels, client.connect_failures)
            refused.add_metric(labels, client.login_failures)
            received.add_metric(labels, client.received)
            handled.add_metric(labels, client.handled)
            resyncs.add_metric(labels, client.resyncs)
        return (up, logins, again, unreachable, refused, received, handled, resyncs)

    def _call_service(self, calls: CallCounters) -> Iterable[Metric]:
        live = GaugeMetricFamily("crmtel_calls_live", "Calls in progress, per PBX.", labels=["pbx"])
        names = sorted({c.pbx for c in self._clients} | set(calls.states))
        for pbx in names:
            state = calls.states.get(pbx)
            live.add_metric([pbx], len(state.calls) if state is not None else 0)
        yield live
        yield CounterMetricFamily("crmtel_call_events", "AMI events the call tracker used.", calls.events)
        yield CounterMetricFamily("crmtel_call_flushes", "Grouped call writes committed.", calls.flushes)
        yield GaugeMetricFamily("crmtel_call_pending", "Calls changed and not yet written.", calls.pending)


class Metrics:
    """One registry with crmtel's own metrics, and the counters the wrappers below feed."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.route_seconds = Histogram(
            "crmtel_route_seconds",
            "Time to answer one routing request (FastAGI or GET /route).",
            buckets=ROUTE_BUCKETS,
            registry=self.registry,
        )
        self.route_decisions = Counter(
            "crmtel_route_decisions", "Routing decisions by kind.", ["kind"], registry=self.registry
        )
        self.route_fail_open = Counter(
            "crmtel_route_fail_open",
            "Routing requests answered with no decision (slow or failing store: the dialplan's default).",
            registry=self.registry,
        )
        self.published = Counter(
            "crmtel_call_events_published",
            "Live call events sent to the page, by type.",
            ["type"],
            registry=self.registry,
        )
        self.calls_ended = Counter(
            "crmtel_calls_ended", "Calls that ended, by outcome.", ["outcome"], registry=self.registry
        )

    def watch(self, collector: Collector) -> None:
        """Add the components' counters to the scrape."""
        self.registry.register(collector)

    def render(self) -> bytes:
        """The text exposition of every metric."""
        return generate_latest(self.registry)


class MeteredRouter:
    """A ``Router`` that times every ``route`` and counts its decisions and fail-opens."""

    def __init__(self, router: Router, metrics: Metrics) -> None:
        self._router = router
        self._metrics = metrics

    async def route(self, caller: str | None, did: str | None) -> Decision | None:
        """The wrapped router's decision, observed."""
        started = time.perf_counter()
        try:
            decision = await self._router.route(caller, did)
        finally:
            self._metrics.route_seconds.observe(time.perf_counter() - started)
        if decision is None:
            self._metrics.route_fail_open.inc()
        else:
            self._metrics.route_decisions.labels(kind=decision.kind.value).inc()
        return decision


class MeteredNotifier:
    """A ``CallNotifier`` that counts events by type and ended calls by outcome, then passes them on."""

    def __init__(self, notifier: CallNotifier, metrics: Metrics) -> None:
        self._notifier = notifier
        self._metrics = metrics

    async def publish(self, event: CallEvent) -> None:
        """Count, then deliver."""
        self._metrics.published.labels(type=_EVENT_TYPES[type(event)]).inc()
        if isinstance(event, CallEnded) and event.record.outcome is not None:
            self._metrics.calls_ended.labels(outcome=event.record.outcome.value).inc()
        await self._notifier.publish(event)


def metrics_routes(metrics: Metrics, token: SecretStr | None) -> web.RouteTableDef:
    """``GET /metrics``, to mount among the web app's public routes (it checks access itself)."""
    table = web.RouteTableDef()

    @table.get("/metrics")
    async def get_metrics(request: web.Request) -> web.Response:
        if not (is_local(request) or has_token(request, token)):
            raise web.HTTPUnauthorized(
                text="metrics: local requests or a bearer token only\n",
                headers={"WWW-Authenticate": 'Bearer realm="crmtel-metrics"'},
            )
        return web.Response(
            body=metrics.render(),
            headers={"Content-Type": CONTENT_TYPE_LATEST, "Cache-Control": "no-store"},
        )

    return table
