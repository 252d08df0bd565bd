"""``GET /metrics`` of the app built by ``crmtel.app.start``, over real HTTP, fed by a fake PBX and FastAGI."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path

import aiohttp
from prometheus_client.parser import text_string_to_metric_families
from pydantic import SecretStr

from crmtel.ami.protocol import Message
from crmtel.app import Running, start
from crmtel.config import LogSettings, RoutingSettings, Settings, WebSettings
from crmtel.fakepbx.server import FakeAmiServer, load_ami
from tests.fixtures.fake_ami import settings_for
from tests.integration.test_agi_server import env, fake_asterisk
from tests.integration.test_ami_pipeline import serving

TOKEN = "scrape-me"
Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def _settings(database_url: str, server: FakeAmiServer) -> Settings:
    return Settings(
        database_url=database_url,
        ami=settings_for(server),
        routing=RoutingSettings(agi_host="127.0.0.1", agi_port=0),
        web=WebSettings(host="127.0.0.1", port=0, metrics_token=SecretStr(TOKEN)),
        log=LogSettings(level="warning"),
    )


@asynccontextmanager
async def _crmtel(database_url: str, server: FakeAmiServer) -> AsyncIterator[Running]:
    async with start(_settings(database_url, server)) as running:
        yield running


async def _scrape(http: aiohttp.ClientSession, running: Running) -> Samples:
    async with http.get(running.web_url + "metrics") as response:
        assert response.status == 200, await response.text()
        text = await response.text()
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def _get(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


async def _scrape_until(
    http: aiohttp.ClientSession, running: Running, ready: Callable[[Samples], bool], limit: float = 15.0
) -> Samples:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + limit
    while True:
        samples = await _scrape(http, running)
        if ready(samples):
            return samples
        if loop.time() > deadline:
            raise AssertionError(f"metrics never got there; last scrape: {samples}")
        await asyncio.sleep(0.05)


def _first(stream: list[object], event: str) -> int:
    for i, item in enumerate(stream):
        headers = getattr(item, "headers", None)
        if headers is not None and Message(headers).event == event:
            return i
    raise AssertionError(f"no {event} in the trace")


async def test_metrics_follow_a_replayed_answered_call_and_routing_requests(
    database_url: str, traces_dir: Path
) -> None:
    """Mid-call the call is live and answered; after the replay it counts as ended/answered; routes are timed."""
    stream = load_ami(traces_dir / "direct-answered.ami")
    hold = _first(list(stream), "HangupRequest")
    async with (
        serving(stream, pause_after=hold) as server,
        _crmtel(database_url, server) as running,
        aiohttp.ClientSession() as http,
    ):
        mid = await _scrape_until(
            http,
            running,
            # Connected too: events sent right after the login are tracked (and published) while the
            # CoreShowChannels resync that completes the connection may still be on its way.
            lambda s: (
                _get(s, "crmtel_call_events_published_total", type="answered") >= 1
                and server.cursor == hold
                and _get(s, "crmtel_ami_connected", pbx="pbx1") == 1
            ),
        )
        assert _get(mid, "crmtel_ami_connected", pbx="pbx1") == 1
        assert _get(mid, "crmtel_ami_connections_total", pbx="pbx1") == 1
        assert _get(mid, "crmtel_calls_live", pbx="pbx1") == 1
        assert _get(mid, "crmtel_calls_ended_total", outcome="answered") == 0
        assert _get(mid, "crmtel_ami_events_received_total", pbx="pbx1") > 0

        server.resume()
        done = await _scrape_until(
            http, running, lambda s: _get(s, "crmtel_calls_ended_total", outcome="answered") == 1
        )
        assert _get(done, "crmtel_calls_live", pbx="pbx1") == 0
        assert _get(done, "crmtel_calls_ended_total", outcome="missed") == 0
        assert _get(done, "crmtel_ami_events_handled_total", pbx="pbx1") > _get(
            mid, "crmtel_ami_events_handled_total", pbx="pbx1"
        )
        assert _get(done, "crmtel_route_seconds_count") == 0

        exchange = await fake_asterisk(running.agi_port, env(caller="+79169999999"))
        assert exchange.variables["CRMTEL_ROUTE_KIND"] == "queue"
        async with http.get(running.web_url + "route", params={"caller": "+79169999999"}) as response:
            assert response.status == 200
        routed = await _scrape(http, running)
        assert _get(routed, "crmtel_route_seconds_count") == 2
        assert _get(routed, "crmtel_route_decisions_total", kind="queue") == 2
        assert _get(routed, "crmtel_route_fail_open_total") == 0
        assert _get(routed, "crmtel_agi_connections") == 0


async def test_metrics_refuse_a_proxied_request_without_the_token(database_url: str) -> None:
    """Behind a proxy /metrics needs the bearer token: none or a wrong one is 401, the right one 200."""
    async with (
        serving([]) as server,
        _crmtel(database_url, server) as running,
        aiohttp.ClientSession() as http,
    ):
        url = running.web_url + "metrics"
        proxied = {"X-Forwarded-For": "203.0.113.9"}
        async with http.get(url, headers=proxied) as response:
            assert response.status == 401
            assert "crmtel_" not in await response.text()
        async with http.get(url, headers={**proxied, "Authorization": "Bearer wrong"}) as response:
            assert response.status == 401
        async with http.get(url, headers={**proxied, "Authorization": f"Bearer {TOKEN}"}) as response:
            assert response.status == 200
            assert "crmtel_ami_connected" in await response.text()
        # No manager session is involved either way: the page's login does not open or close /metrics.
        async with http.get(url) as response:
            assert response.status == 200
