"""The managers' web app over real loopback HTTP: login, sessions, the live websocket and who sees what."""

from __future__ import annotations

import asyncio
import functools
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from sqlalchemy import update

from crmtel.config import WebSettings
from crmtel.domain import CallAnswered, Manager, Role
from crmtel.managers.models import MobilePolicy
from crmtel.push.cards import StoreCards
from crmtel.push.hub import Hub
from crmtel.push.live import Addressed
from crmtel.push.notifier import ManagerNames, Notifier
from crmtel.push.web import create_app
from crmtel.store.db import Database
from crmtel.store.managers import ManagerRepository, hash_password
from crmtel.store.models import CallRow, ManagerRow
from tests.fixtures.csrf import page_like_session
from tests.unit.test_push_live import CID, T0, ring

PASSWORD = "correct horse"


@dataclass
class Rig:
    """A running web app on a real port, its hub and notifier, and the seeded managers."""

    db: Database
    hub: Hub
    notifier: Notifier
    server: TestServer
    managers: dict[str, Manager]

    @property
    def base(self) -> str:
        return str(self.server.make_url("/"))

    @asynccontextmanager
    async def browser(self, login: str | None = None) -> AsyncIterator[aiohttp.ClientSession]:
        """An HTTP client with its own cookie jar, logged in as ``login`` when given."""
        async with page_like_session(
            base_url=self.base, cookie_jar=aiohttp.CookieJar(unsafe=True)
        ) as session:
            if login is not None:
                async with session.post("/api/login", json={"login": login, "password": PASSWORD}) as r:
                    assert r.status == 200, await r.text()
            yield session


@functools.cache
def _password_hash() -> str:
    # Hashing is deliberately slow; one hash serves every seeded manager of the run.
    return hash_password(PASSWORD)


async def seed_managers(db: Database) -> dict[str, Manager]:
    """Anna 101, Boris 102, Vera 103 (the traces' phones) and a head of sales with no phone."""
    repo = ManagerRepository(db)
    managers = {
        "anna": await repo.save(login="anna", name="Анна Смирнова", extensions=("101",)),
        "boris": await repo.save(login="boris", name="Boris Orlov", extensions=("102",)),
        "vera": await repo.save(login="vera", name="Vera Lebedeva", extensions=("103",)),
        "head": await repo.save(login="head", name="Head of Sales", role=Role.HEAD),
    }
    async with db.session() as session:
        await session.execute(update(ManagerRow).values(password_hash=_password_hash()))
    return managers


@asynccontextmanager
async def running_app(
    db: Database,
    *,
    recordings_dir: Path | None = None,
    queue_size: int = 256,
    cookie_secure: bool = False,
    trusted_proxies: tuple[str, ...] = (),
    login_workers: int = 2,
    login_queue: int = 64,
    mobiles: MobilePolicy | None = None,
    on_mobile: Callable[[], Awaitable[None]] | None = None,
) -> AsyncIterator[Rig]:
    """The web app as the composition root builds it, on 127.0.0.1 with a free port."""
    settings = WebSettings(
        port=0,
        login_workers=login_workers,
        login_queue=login_queue,
        heartbeat=5.0,
        queue_size=queue_size,
        cookie_secure=cookie_secure,
        recordings_dir=recordings_dir or Path("/nonexistent"),
        trusted_proxies=trusted_proxies,
    )
    managers = await seed_managers(db)
    hub = Hub(queue_size=queue_size)
    app = create_app(settings, db=db, hub=hub, mobiles=mobiles, on_mobile=on_mobile)
    server = TestServer(app, host="127.0.0.1", port=0)
    await server.start_server()
    try:
        # A generous card_wait keeps the card inside call.ringing here; the e2e tests use the default.
        async with Notifier(hub, StoreCards(db), ManagerNames(db), card_wait=2.0) as notifier:
            yield Rig(db, hub, notifier, server, managers)
    finally:
        await server.close()


async def add_call(
    db: Database,
    *,
    linkedid: str,
    rang: tuple[str, ...],
    answered_by: str | None,
    caller: str = "79031234567",
    caller_name: str | None = None,
    recording: str | None = None,
    started_at: datetime = T0,
    direction: str = "inbound",
) -> int:
    """A finished call row as the AMI service would have stored it."""
    async with db.session() as session:
        row = CallRow(
            pbx="pbx1",
            linkedid=linkedid,
            direction=direction,
            caller_number=caller,
            caller_name=caller_name,
            dialled="4951234567",
            rang=list(rang),
            answered_by=answered_by,
            queue="retail",
            outcome="answered" if answered_by else "missed",
            started_at=started_at,
            ended_at=started_at + timedelta(seconds=10),
            ring_seconds=2,
            talk_seconds=3 if answered_by else 0,
            recording_file=recording,
        )
        session.add(row)
        await session.flush()
        return row.id


async def receive(ws: aiohttp.ClientWebSocketResponse, wait: float = 2.0) -> dict[str, Any]:
    """The next JSON message from the server."""
    msg = await ws.receive(timeout=wait)
    assert msg.type is aiohttp.WSMsgType.TEXT, msg
    data: dict[str, Any] = json.loads(msg.data)
    return data


async def nothing_arrives(ws: aiohttp.ClientWebSocketResponse, wait: float = 0.2) -> bool:
    """True when no message arrives within ``wait`` seconds."""
    try:
        await ws.receive(timeout=wait)
    except TimeoutError:
        return True
    return False


async def test_login_sets_an_httponly_samesite_strict_session_cookie(db: Database) -> None:
    """A correct password opens a session with an HttpOnly, SameSite=Strict cookie (Secure when configured)."""
    async with running_app(db, cookie_secure=True) as rig, rig.browser() as browser:
        async with browser.post("/api/login", json={"login": "anna", "password": PASSWORD}) as r:
            assert r.status == 200
            cookies = r.headers.getall("Set-Cookie")
            body = await r.json()
            assert body["extensions"] == ["101"]
        cookie = next(c for c in cookies if c.startswith("crmtel_session="))
        assert "HttpOnly" in cookie
        assert "SameSite=Strict" in cookie
        assert "Secure" in cookie
        # The CSRF token's cookie is for the page's script (not HttpOnly), equally strict and secure.
        csrf = next(c for c in cookies if c.startswith("crmtel_csrf="))
        assert csrf.startswith(f"crmtel_csrf={body['csrf_token']};")
        assert "HttpOnly" not in csrf
        assert "SameSite=Strict" in csrf
        assert "Secure" in csrf


async def test_wrong_password_is_refused_and_guessing_is_throttled(db: Database) -> None:
    """A wrong password gets 401 and no cookie; after the free failures the pair must wait (429, Retry-After)."""
    async with running_app(db) as rig, rig.browser() as browser:
        for _ in range(5):
            async with browser.post("/api/login", json={"login": "anna", "password": "guess"}) as r:
                assert r.status == 401
                assert "Set-Cookie" not in r.headers
        async with browser.post("/api/login", json={"login": "anna", "password": "guess"}) as r:
            assert r.status == 401
        async with browser.post("/api/login", json={"login": "anna", "password": PASSWORD}) as r:
            assert r.status == 429
            assert int(r.headers["Retry-After"]) >= 1


async def test_unauthenticated_api_and_websocket_are_refused(db: Database) -> None:
    """Without a session (or with a forged one) every API and the websocket answer 401."""
    async with running_app(db) as rig:
        call = await add_call(db, linkedid="1.1", rang=("101",), answered_by="101")
        assert call
        async with rig.browser() as anon:
            for method, path in [
                ("GET", "/api/me"),
                ("GET", "/api/calls"),
                ("GET", "/api/calls/pbx1:1.1"),
                ("GET", "/api/calls/pbx1:1.1/recording"),
            ]:
                async with anon.request(method, path) as r:
                    assert r.status == 401, path
            async with anon.post("/api/calls/pbx1:1.1/notes", json={"topic": "x"}) as r:
                assert r.status == 401
            with pytest.raises(aiohttp.WSServerHandshakeError) as err:
                await anon.ws_connect("/ws")
            assert err.value.status == 401
            anon.cookie_jar.update_cookies({"crmtel_session": "forged-token"})
            async with anon.get("/api/calls") as r:
                assert r.status == 401
            # The page itself and its script are public.
            async with anon.get("/") as r:
                assert r.status == 200
                assert "Content-Security-Policy" in r.headers
            async with anon.get("/static/main.js") as r:
                assert r.status == 200
            async with anon.get("/no/such/page") as r:
                assert r.status == 404


async def test_logout_kills_the_session_token(db: Database) -> None:
    """After logout the old cookie value no longer opens anything (the session is gone server-side)."""
    async with running_app(db) as rig, rig.browser("anna") as browser:
        token = next(c.value for c in browser.cookie_jar if c.key == "crmtel_session")
        async with browser.post("/api/logout") as r:
            assert r.status == 200
        browser.cookie_jar.update_cookies({"crmtel_session": token})
        async with browser.get("/api/me") as r:
            assert r.status == 401


async def test_cross_origin_websocket_and_writes_are_refused(db: Database) -> None:
    """A websocket or a POST announced from another origin is refused even with a valid session."""
    async with running_app(db) as rig, rig.browser("anna") as browser:
        with pytest.raises(aiohttp.WSServerHandshakeError) as err:
            await browser.ws_connect("/ws", origin="http://evil.example")
        assert err.value.status == 403
        with pytest.raises(aiohttp.WSServerHandshakeError) as err:
            await browser.ws_connect("/ws", origin="null")
        assert err.value.status == 403
        await add_call(db, linkedid="1.1", rang=("101",), answered_by="101")
        headers = {"Origin": "http://evil.example"}
        async with browser.post("/api/calls/pbx1:1.1/notes", json={"topic": "x"}, headers=headers) as r:
            assert r.status == 403
        ws = await browser.ws_connect("/ws", origin=rig.base.rstrip("/"))
        assert (await receive(ws))["type"] == "hello"
        await ws.close()


async def test_ringing_reaches_only_the_ringing_manager_and_the_head(db: Database) -> None:
    """A ring at 102 pops up for Boris (with the card) and the head; Anna's page receives nothing."""
    async with (
        running_app(db) as rig,
        rig.browser("anna") as anna,
        rig.browser("boris") as boris,
        rig.browser("head") as head,
    ):
        sockets = [await b.ws_connect("/ws") for b in (anna, boris, head)]
        hellos = [await receive(ws) for ws in sockets]
        assert [h["everyone"] for h in hellos] == [False, False, True]
        await rig.notifier.publish(ring("102", name="<img src=x onerror=alert(1)>"))
        msg = await receive(sockets[1])
        assert msg["type"] == "call.ringing"
        assert msg["extension"] == "102"
        assert msg["caller_name"] == "<img src=x onerror=alert(1)>"
        assert msg["card"]["kind"] == "new_lead"
        assert (await receive(sockets[2]))["call_id"] == CID
        assert await nothing_arrives(sockets[0])
        for ws in sockets:
            await ws.close()


async def test_reconnecting_page_is_sent_the_calls_still_live_for_it(db: Database) -> None:
    """A page that (re)connects mid-call gets the ringing card and the answer; the loser's page gets nothing."""
    async with running_app(db) as rig, rig.browser("vera") as vera, rig.browser("boris") as boris:
        await rig.notifier.publish(ring("102"))
        await rig.notifier.publish(ring("103"))
        await rig.notifier.publish(CallAnswered(call_id=CID, extension="103", at=T0))
        await rig.notifier.idle()
        ws = await vera.ws_connect("/ws")
        assert [(await receive(ws))["type"] for _ in range(3)] == ["hello", "call.ringing", "call.answered"]
        ws_b = await boris.ws_connect("/ws")
        assert (await receive(ws_b))["type"] == "hello"
        assert await nothing_arrives(ws_b)
        await ws.close()
        await ws_b.close()


async def test_a_browser_that_stops_reading_is_dropped_and_never_delays_the_others(db: Database) -> None:
    """A page that reads nothing overflows its bounded queue and is disconnected; a reading page gets everything."""
    async with (
        running_app(db, queue_size=16) as rig,
        rig.browser("boris") as slow,
        rig.browser("boris") as fast,
    ):
        ws_slow = await slow.ws_connect("/ws", autoping=False)
        ws_fast = await fast.ws_connect("/ws")
        assert (await receive(ws_fast))["type"] == "hello"
        big = "x" * 64_000
        received = 0
        loop = asyncio.get_running_loop()
        started = loop.time()
        for i in range(400):
            # 25 MB in all: far more than the kernel buffers of the silent socket can absorb.
            rig.hub.deliver([Addressed("102", {"type": "test", "i": i, "pad": big})])
            msg = await receive(ws_fast)
            assert msg["i"] == i
            received += 1
        assert received == 400
        assert loop.time() - started < 10
        assert rig.hub.connections == 1
        await ws_fast.close()
        await ws_slow.close()


async def test_manager_cannot_read_another_managers_calls(db: Database) -> None:
    """Anna sees her calls only: Boris's call is absent from her list and 404 on every URL; the head sees both."""
    async with running_app(db) as rig, rig.browser("anna") as anna, rig.browser("head") as head:
        await add_call(db, linkedid="1.1", rang=("101",), answered_by="101")
        await add_call(db, linkedid="2.2", rang=("102", "103"), answered_by="103")
        await add_call(db, linkedid="3.3", rang=("1010",), answered_by=None)
        async with anna.get("/api/calls") as r:
            assert [c["call_id"] for c in (await r.json())["calls"]] == ["pbx1:1.1"]
        for path in ["/api/calls/pbx1:2.2", "/api/calls/pbx1:2.2/recording", "/api/calls/pbx1:3.3"]:
            async with anna.get(path) as r:
                assert r.status == 404, path
        async with anna.post("/api/calls/pbx1:2.2/notes", json={"topic": "peek"}) as r:
            assert r.status == 404
        async with head.get("/api/calls") as r:
            assert [c["call_id"] for c in (await r.json())["calls"]] == ["pbx1:3.3", "pbx1:2.2", "pbx1:1.1"]


async def test_extra_route_tables_and_subapps_sit_behind_the_session(db: Database) -> None:
    """Other features' routes need a session unless mounted as public; they can read the current manager."""
    from crmtel.push.web import current_manager

    routes = web.RouteTableDef()
    public = web.RouteTableDef()

    @routes.get("/reports/x")
    async def _report(request: web.Request) -> web.Response:
        return web.Response(text=current_manager(request).login)

    @public.get("/route")
    async def _route(_request: web.Request) -> web.Response:
        return web.Response(text="queue=retail")

    await seed_managers(db)
    app = create_app(WebSettings(), db=db, hub=Hub(), routes=[routes], public_routes=[public])
    server = TestServer(app, host="127.0.0.1", port=0)
    await server.start_server()
    try:
        async with page_like_session(
            base_url=str(server.make_url("/")), cookie_jar=aiohttp.CookieJar(unsafe=True)
        ) as s:
            async with s.get("/route") as r:
                assert await r.text() == "queue=retail"
            async with s.get("/reports/x") as r:
                assert r.status == 401
            async with s.post("/api/login", json={"login": "boris", "password": PASSWORD}) as r:
                assert r.status == 200
            async with s.get("/reports/x") as r:
                assert await r.text() == "boris"
    finally:
        await server.close()
