"""Pages connecting all at once (a restart, a cluster node back): their session checks share a few connections."""

from __future__ import annotations

import asyncio
import secrets
from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp
from aiohttp.test_utils import TestServer
from sqlalchemy import event
from yarl import URL

from crmtel.config import WebSettings
from crmtel.push.hub import Hub
from crmtel.push.sessions import token_hash
from crmtel.push.web import create_app
from crmtel.store.db import Database
from crmtel.store.managers import ManagerRepository
from crmtel.store.sessions import SessionRepository

PAGES = 40


class PoolWatch:
    """The most connections of the pool checked out at once."""

    def __init__(self, db: Database) -> None:
        self.out = 0
        self.peak = 0
        pool = db.engine.sync_engine.pool
        event.listen(pool, "checkout", self._checkout)
        event.listen(pool, "checkin", self._checkin)

    def _checkout(self, *_args: Any) -> None:
        self.out += 1
        self.peak = max(self.peak, self.out)

    def _checkin(self, *_args: Any) -> None:
        self.out -= 1


async def test_forty_pages_connecting_at_once_use_at_most_auth_store_reads_connections(db: Database) -> None:
    """40 managers' pages open their websockets together on a node that has seen none of their cookies: every
    page gets its hello (no 503), and the session checks never held more than ``auth_store_reads`` (3) of the
    pool's connections at once, plus one for the node's own session sweep."""
    managers = ManagerRepository(db)
    sessions = SessionRepository(db)
    now = datetime.now(UTC)
    tokens = []
    for i in range(PAGES):
        manager = await managers.save(login=f"m{i}", name=f"Manager {i}", extensions=(str(1000 + i),))
        token = secrets.token_urlsafe(32)
        await sessions.save(token_hash(token), manager.id, now + timedelta(hours=1), now)
        tokens.append(token)
    watch = PoolWatch(db)
    app = create_app(WebSettings(port=0, auth_store_reads=3), db=db, hub=Hub())
    server = TestServer(app, host="127.0.0.1", port=0)
    await server.start_server()
    base = str(server.make_url("/"))
    try:

        async def page(token: str) -> str:
            jar = aiohttp.CookieJar(unsafe=True)
            jar.update_cookies({"crmtel_session": token}, response_url=URL(base))
            async with (
                aiohttp.ClientSession(cookie_jar=jar, headers={"Origin": base.rstrip("/")}) as http,
                http.ws_connect(base + "ws") as ws,
            ):
                return str((await ws.receive_json(timeout=30))["type"])

        hellos = await asyncio.gather(*(page(t) for t in tokens))
    finally:
        await server.close()
    assert hellos == ["hello"] * PAGES
    assert 1 <= watch.peak <= 3 + 1
