"""``GET /healthz`` of the app built by ``crmtel.app.start``, over real HTTP: healthy, AMI down, database down."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from pydantic import SecretStr

from crmtel import __version__
from crmtel.app import Running, start
from crmtel.config import AmiSettings, LogSettings, RoutingSettings, Settings, WebSettings
from crmtel.fakepbx.server import FakeAmiServer, load_ami
from crmtel.health.service import HealthCheck
from crmtel.health.web import health_routes
from crmtel.store.db import Database
from tests.fixtures.daemon import free_port
from tests.fixtures.fake_ami import settings_for

SECRET = "ami-secret-never-shown"


def _settings(database_url: str, ami: AmiSettings) -> Settings:
    return Settings(
        database_url=database_url,
        ami=ami,
        routing=RoutingSettings(agi_host="127.0.0.1", agi_port=0),
        web=WebSettings(host="127.0.0.1", port=0),
        log=LogSettings(level="warning"),
    )


async def _get(url: str) -> tuple[int, dict[str, Any], str]:
    async with aiohttp.ClientSession() as http, http.get(url) as response:
        text = await response.text()
        return response.status, await response.json(), text


async def _until(url: str, status: int, limit: float = 10.0) -> dict[str, Any]:
    deadline = time.monotonic() + limit
    while True:
        got, body, _text = await _get(url)
        if got == status:
            return body
        assert time.monotonic() < deadline, (got, body)
        await asyncio.sleep(0.05)


async def _metric(running: Running, name: str) -> float:
    async with aiohttp.ClientSession() as http, http.get(running.web_url + "metrics") as response:
        for line in (await response.text()).splitlines():
            if line.startswith(name + "{"):
                return float(line.rsplit(" ", 1)[1])
    raise AssertionError(f"{name} not in /metrics")


async def test_healthy_crmtel_answers_200_with_version_database_and_pbx_without_login(
    database_url: str, traces_dir: Path
) -> None:
    """Database up, PBX logged in: 200, the documented fields, no cookie needed, no secret in the body."""
    server = FakeAmiServer(load_ami(traces_dir / "direct-answered.ami"), secret=SECRET)
    await server.start()
    port = server.port
    try:
        ami = settings_for(server, secret=SecretStr(SECRET))
        async with start(_settings(database_url, ami)) as running:
            body = await _until(running.web_url + "healthz", 200)
            _status, _body, text = await _get(running.web_url + "healthz")
    finally:
        await server.close()
    assert body["status"] == "ok"
    assert body["version"] == __version__
    assert body["database"] == "ok"
    assert set(body["pbx"]) == {"pbx1"}
    pbx = body["pbx"]["pbx1"]
    assert pbx["connected"] is True
    assert pbx["state"] == "connected"
    assert pbx["last_event_age_s"] is None or 0 <= pbx["last_event_age_s"] < 60
    for leak in (SECRET, "127.0.0.1", f":{port}", database_url):
        assert leak not in text, leak


async def test_ami_unreachable_is_503_and_counted_as_reconnects(database_url: str) -> None:
    """Nothing listens on the AMI port: 503, pbx unreachable, and crmtel_ami_reconnects_total climbs."""
    ami = AmiSettings(port=free_port(), reconnect_min=0.05, reconnect_max=0.1, secret=SecretStr(SECRET))
    async with start(_settings(database_url, ami)) as running:
        body = await _until(running.web_url + "healthz", 503)
        deadline = time.monotonic() + 10
        while body["pbx"]["pbx1"]["state"] != "unreachable":
            assert time.monotonic() < deadline, body
            body = await _until(running.web_url + "healthz", 503)
        await asyncio.sleep(0.5)
        reconnects = await _metric(running, "crmtel_ami_reconnects_total")
        failures = await _metric(running, "crmtel_ami_connect_failures_total")
        logins = await _metric(running, "crmtel_ami_connections_total")
    assert body["status"] == "unhealthy"
    assert body["database"] == "ok"
    assert body["pbx"]["pbx1"] == {"connected": False, "state": "unreachable", "last_event_age_s": None}
    assert reconnects >= 2
    assert failures >= reconnects
    assert logins == 0


async def test_refused_ami_login_is_503_login_failed_and_counted(database_url: str, traces_dir: Path) -> None:
    """The PBX refuses the secret: 503 with state login_failed, and crmtel_ami_login_failures_total ≥ 1."""
    server = FakeAmiServer(load_ami(traces_dir / "direct-answered.ami"), secret="the-real-one")
    await server.start()
    try:
        ami = settings_for(server, secret=SecretStr(SECRET), login_retry=5.0)
        async with start(_settings(database_url, ami)) as running:
            deadline = time.monotonic() + 10
            while (body := await _until(running.web_url + "healthz", 503))["pbx"]["pbx1"]["state"] != (
                "login_failed"
            ):
                assert time.monotonic() < deadline, body
                await asyncio.sleep(0.05)
            refused = await _metric(running, "crmtel_ami_login_failures_total")
    finally:
        await server.close()
    assert body["pbx"]["pbx1"]["connected"] is False
    assert refused >= 1


class _Up:
    """A PBX link that is logged in (the AMI side is covered above; here only the database is down)."""

    pbx = "pbx1"
    state = "connected"
    last_event_at: float | None = None


@asynccontextmanager
async def _serve(app: web.Application) -> AsyncIterator[str]:
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        yield f"http://127.0.0.1:{port}/"
    finally:
        await runner.cleanup()


@pytest.mark.parametrize(
    "url",
    [
        "postgresql+asyncpg://crmtel:db-password-xyz@127.0.0.1:1/crmtel",
        "sqlite+aiosqlite:////nonexistent-crmtel-dir/crmtel.db",
    ],
    ids=["postgres-refused", "sqlite-missing"],
)
async def test_database_down_is_503_database_unavailable_without_details(url: str) -> None:
    """The database cannot be reached: 503, database "unavailable", no URL, host or password in the body."""
    db = Database(url)
    app = web.Application()
    app.router.add_routes(health_routes(HealthCheck(db, [_Up()])))
    try:
        async with _serve(app) as base:
            status, body, text = await _get(base + "healthz")
    finally:
        await db.dispose()
        await _aiosqlite_threads_done()
    assert status == 503
    assert body["status"] == "unhealthy"
    assert body["database"] == "unavailable"
    assert body["pbx"]["pbx1"]["connected"] is True
    for leak in ("db-password-xyz", "127.0.0.1", "nonexistent", "asyncpg", "sqlite"):
        assert leak not in text


async def _aiosqlite_threads_done() -> None:
    # aiosqlite's worker of a failed connect reports its stop to this loop a moment later; let it, before
    # pytest closes the loop (a running daemon's loop is still there, so this is a test-only concern).
    deadline = time.monotonic() + 5
    while any("_connection_worker_thread" in t.name for t in threading.enumerate()):
        assert time.monotonic() < deadline
        await asyncio.sleep(0.01)


async def test_database_up_with_the_same_check_is_200(database_url: str) -> None:
    """The same check on a working database answers 200 (so the 503 above is the database, nothing else)."""
    db = Database(database_url)
    app = web.Application()
    app.router.add_routes(health_routes(HealthCheck(db, [_Up()])))
    try:
        async with _serve(app) as base:
            status, body, _text = await _get(base + "healthz")
    finally:
        await db.dispose()
    assert (status, body["database"]) == (200, "ok")
