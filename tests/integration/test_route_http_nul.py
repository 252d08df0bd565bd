"""``GET /route`` with a NUL in ``caller`` or ``did`` (``%00``), against the real store: a clean decision (the
caller matches nobody), never a 5xx — PostgreSQL refuses a NUL in any query parameter."""

from __future__ import annotations

from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from crmtel.config import RoutingSettings
from crmtel.routing.service import RoutingService
from crmtel.routing.web import create_app
from crmtel.store.db import Database
from crmtel.store.parties import NewClient, PartyRepository


async def test_a_nul_in_caller_or_did_is_answered_not_a_5xx(db: Database) -> None:
    """``caller=%00``, ``caller=+7916%007770007``, ``did=%00``: 200 and the default queue, as for garbage;
    the known number itself is still found."""
    parties = PartyRepository(db)
    await parties.add_client(NewClient(name="ИП Петров", phones=("+79167770007",)))
    router = RoutingService(parties, RoutingSettings(deadline_ms=5000, default_queue="retail"))
    client: TestClient[web.Request, web.Application]
    async with TestClient(TestServer(create_app(router, None), host="127.0.0.1")) as client:
        for query in (
            "caller=%00",
            "caller=%2B7916%007770007",
            "caller=%2B79167770007&did=%00",
            "did=4951%00",
        ):
            resp = await client.get(f"/route?{query}")
            assert resp.status == 200, (query, await resp.text())
            body = await resp.json()
            assert body["kind"] in {"queue", "extension"}, (query, body)
        resp = await client.get("/route", params={"caller": "+79167770007"})
        assert (await resp.json())["caller_name"] == "ИП Петров"
