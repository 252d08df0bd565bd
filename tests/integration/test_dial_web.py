"""The page's click-to-call and callback APIs over HTTP: what is accepted, what is refused (4xx, never 500),
the result pushed to the clicking manager's websocket only, and who sees and closes which callback task."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pytest
from aiohttp.test_utils import TestServer

from crmtel.ami.client import AmiClient
from crmtel.callbacks.web import callback_routes
from crmtel.calls.service import CallService
from crmtel.config import CallsSettings, DialRule, OriginateSettings, WebSettings
from crmtel.dial.guard import GuardedSender
from crmtel.dial.models import DialRefused
from crmtel.dial.service import DialService
from crmtel.dial.web import dial_routes, hub_notifier
from crmtel.fakepbx.server import FakeAmiServer
from crmtel.push.cards import StoreCards
from crmtel.push.hub import Hub
from crmtel.push.notifier import ManagerNames, Notifier
from crmtel.push.web import create_app
from crmtel.store.callbacks import CallbackRepository
from crmtel.store.db import Database
from crmtel.store.dial_attempts import DialAttempts
from crmtel.store.managers import ManagerRepository
from crmtel.store.models import PartyShareRow, TaskRow
from crmtel.store.parties import NewClient, NewLead, PartyRepository
from tests.fixtures.fake_ami import running, settings_for, wait_for
from tests.integration.test_web_app import Rig, seed_managers


@dataclass
class DialRig:
    web: Rig
    ami: FakeAmiServer
    dial: DialService


@contextlib.asynccontextmanager
async def dial_app(db: Database, **originate: object) -> AsyncIterator[DialRig]:
    """The page's app with click-to-call on one fake PBX; ``originate`` overrides its settings."""
    managers = await seed_managers(db)
    ami = FakeAmiServer([])
    ami.originate_speed = None
    await ami.start()
    hub = Hub()
    try:
        async with Notifier(hub, StoreCards(db), ManagerNames(db)) as notifier:
            calls = CallService(db, CallsSettings(), PartyRepository(db), notifier)
            client = AmiClient(settings_for(ami), calls)
            settings = OriginateSettings.model_validate(
                {"dial_rules": (DialRule(prefix="+7", replace="8"),), **originate}
            )
            dial = DialService(
                {"pbx1": GuardedSender("pbx1", client, settings)},
                {"pbx1": settings},
                notify=hub_notifier(hub),
                audit=DialAttempts(db),
            )
            routes = (dial_routes(dial), callback_routes(CallbackRepository(db), ManagerRepository(db)))
            server = TestServer(create_app(WebSettings(port=0), db=db, hub=hub, routes=routes), port=0)
            await server.start_server()
            try:
                async with running(client):
                    await wait_for(client.connected.is_set)
                    yield DialRig(Rig(db, hub, notifier, server, managers), ami, dial)
                    await dial.aclose()
            finally:
                await server.close()
    finally:
        await ami.close()


async def test_dial_api_places_the_call_and_pushes_the_result_to_the_clicker_only(db: Database) -> None:
    """202 with the attempt; the websocket of the clicking manager gets dial.result, a head's does not."""
    async with dial_app(db) as r, r.web.browser("boris") as boris, r.web.browser("head") as head:
        ws_boris = await boris.ws_connect("/ws")
        ws_head = await head.ws_connect("/ws")
        assert (await ws_boris.receive_json())["type"] == "hello"
        assert (await ws_head.receive_json())["type"] == "hello"
        async with boris.post("/api/dial", json={"number": "8 (903) 123-45-67"}) as resp:
            assert resp.status == 202
            body = await resp.json()
        assert (body["status"], body["extension"], body["dialled"]) == ("calling", "102", "89031234567")
        assert body["params"]["number"] == "+7 903 123-45-67"
        assert "+7 903 123-45-67" in body["message"]
        result = await ws_boris.receive_json(timeout=10)
        while result["type"] != "dial.result":
            result = await ws_boris.receive_json(timeout=10)
        assert (result["originate_id"], result["status"]) == (body["originate_id"], "answered")
        assert "+7 903 123-45-67" in result["params"]["number"]
        async with boris.get(f"/api/dial/{body['originate_id']}") as resp:
            assert (await resp.json())["status"] == "answered"
        async with head.get(f"/api/dial/{body['originate_id']}") as resp:
            assert resp.status == 404
        # The head saw the outbound call's events, never Boris's dial result.
        seen: list[str] = []
        with contextlib.suppress(TimeoutError):
            while True:
                seen.append((await ws_head.receive_json(timeout=0.5))["type"])
        assert "dial.result" not in seen
        await ws_boris.close()
        await ws_head.close()


async def test_dial_api_refuses_bad_input_and_foreign_extensions(db: Database) -> None:
    """Someone else's extension 403, bad numbers/extensions/bodies 400/415; the PBX never hears of them."""
    async with dial_app(db) as r, r.web.browser("anna") as anna, r.web.browser("head") as head:
        async with anna.post("/api/dial", json={"number": "+79031234567", "extension": "102"}) as resp:
            assert resp.status == 403
            assert (await resp.json())["key"] == "dial.not_your_extension"
        async with head.post("/api/dial", json={"number": "+79031234567"}) as resp:
            assert resp.status == 400
            assert (await resp.json())["key"] == "dial.no_extension"
        for bad in (
            {"number": "hello"},
            {"number": ""},
            {"number": 79031234567},
            {"number": "1" * 41},
            {"number": "+79031234567", "extension": "10a"},
            {"number": "+79031234567", "channel": "PJSIP/102"},
            {},
            ["+79031234567"],
        ):
            async with anna.post("/api/dial", json=bad) as resp:
                assert resp.status == 400, bad
        async with anna.post("/api/dial", data="number=1", headers={"Content-Type": "text/plain"}) as resp:
            assert resp.status == 415
        async with anna.get("/api/dial/" + "x" * 500) as resp:
            assert resp.status == 404
        assert r.ami.originates == []


async def test_callback_list_is_own_for_managers_everyones_for_heads_and_closes_by_hand(db: Database) -> None:
    """Anna sees her task (party, overdue), not Boris's; the head sees both; closing needs a result, once."""
    async with dial_app(db) as r, r.web.browser("anna") as anna, r.web.browser("head") as head:
        m = r.web.managers
        client = await PartyRepository(db).add_client(NewClient(name="ООО Ромашка", phones=("+79031234567",)))
        now = datetime.now(UTC)
        async with db.session() as session:
            mine = TaskRow(
                phone="+79031234567",
                manager_id=m["anna"].id,
                client_id=client.id,
                missed_count=2,
                status="open",
                due_at=now - timedelta(minutes=5),
                created_at=now - timedelta(hours=1),
                updated_at=now,
            )
            other = TaskRow(
                phone="+79035550000",
                manager_id=m["boris"].id,
                missed_count=1,
                status="open",
                due_at=now + timedelta(minutes=30),
                created_at=now,
                updated_at=now,
            )
            session.add_all([mine, other])
            await session.flush()
            mine_id, other_id = mine.id, other.id
        async with anna.get("/api/callbacks") as resp:
            tasks = (await resp.json())["tasks"]
        assert [(t["id"], t["party_name"], t["missed_count"], t["overdue"]) for t in tasks] == [
            (mine_id, "ООО Ромашка", 2, True)
        ]
        assert tasks[0]["first_missed_at"].endswith("Z")
        async with head.get("/api/callbacks") as resp:
            assert {t["id"] for t in (await resp.json())["tasks"]} == {mine_id, other_id}
        async with head.get("/api/callbacks?manager=boris") as resp:
            assert [t["id"] for t in (await resp.json())["tasks"]] == [other_id]
        for query in ("?status=bogus", "?manager=", "?page=2"):
            async with head.get("/api/callbacks" + query) as resp:
                assert resp.status == 400, query
        async with head.get("/api/callbacks?manager=nobody") as resp:
            assert resp.status == 404
        # Someone else's task is not there for Anna; an empty result is refused.
        async with anna.post(f"/api/callbacks/{other_id}/close", json={"result": "x"}) as resp:
            assert resp.status == 404
        async with anna.post(f"/api/callbacks/{mine_id}/close", json={"result": " "}) as resp:
            assert resp.status == 400
        async with anna.post("/api/callbacks/99999999999999999999/close", json={"result": "x"}) as resp:
            assert resp.status == 404
        async with anna.post(
            f"/api/callbacks/{mine_id}/close", json={"result": "Called, sent the offer"}
        ) as resp:
            assert resp.status == 200
            closed = await resp.json()
        assert (closed["status"], closed["result"]) == ("closed", "Called, sent the offer")
        async with anna.post(f"/api/callbacks/{mine_id}/close", json={"result": "again"}) as resp:
            assert resp.status == 409
        async with anna.get("/api/callbacks?status=closed") as resp:
            assert [t["id"] for t in (await resp.json())["tasks"]] == [mine_id]


async def test_search_finds_clients_and_leads_by_name_company_or_number(db: Database) -> None:
    """Cyrillic names as typed, companies, and a part of a number; too short or too long is refused."""
    async with dial_app(db) as r, r.web.browser("anna") as anna:
        parties = PartyRepository(db)
        await parties.add_client(NewClient(name="Иван Петров", phones=("+79161110001",)))
        await parties.add_lead(NewLead(name="Pavel", company="Romashka LLC", phones=("+79037654321",)))
        for q, names in (("Петров", ["Иван Петров"]), ("romashka", ["Pavel"]), ("765432", ["Pavel"])):
            async with anna.get("/api/search", params={"q": q}) as resp:
                assert resp.status == 200
                found = (await resp.json())["results"]
                assert [f["name"] for f in found] == names, q
        async with anna.get("/api/search", params={"q": "765432"}) as resp:
            assert (await resp.json())["results"][0]["phones"] == ["+79037654321"]
        for q in ("x", "y" * 101):
            async with anna.get("/api/search", params={"q": q}) as resp:
                assert resp.status == 400, q


async def test_search_shows_a_manager_only_what_they_may_see_and_a_head_everything(db: Database) -> None:
    """Anna finds her own client, an unassigned lead and a client shared with her — never Boris's own client
    or lead, nor their numbers; the head finds all of them."""
    async with (
        dial_app(db) as r,
        r.web.browser("anna") as anna,
        r.web.browser("head") as head,
    ):
        ids = {login: m.id for login, m in r.web.managers.items()}
        parties = PartyRepository(db)
        await parties.add_client(
            NewClient(name="Ромашка Анны", phones=("+79161110001",), manager_id=ids["anna"])
        )
        borisc = await parties.add_client(
            NewClient(name="Ромашка Бориса", phones=("+79161110002",), manager_id=ids["boris"])
        )
        shared = await parties.add_client(
            NewClient(name="Ромашка общая", phones=("+79161110003",), manager_id=ids["boris"])
        )
        await parties.add_lead(NewLead(name="Ромашка без хозяина", phones=("+79161110004",)))
        await parties.add_lead(
            NewLead(name="Ромашка лид Бориса", phones=("+79161110005",), manager_id=ids["boris"])
        )
        async with db.session() as session:
            session.add(PartyShareRow(kind="client", party_id=shared.id, manager_id=ids["anna"]))
        for q in ("Ромашка", "7916111000"):
            async with anna.get("/api/search", params={"q": q}) as resp:
                assert resp.status == 200
                found = (await resp.json())["results"]
            assert sorted(f["name"] for f in found) == [
                "Ромашка Анны",
                "Ромашка без хозяина",
                "Ромашка общая",
            ], q
            assert "+79161110002" not in {p for f in found for p in f["phones"]}
            async with head.get("/api/search", params={"q": q}) as resp:
                assert len((await resp.json())["results"]) == 5, q
        assert borisc.id not in {f["id"] for f in found if f["kind"] == "client"}


async def test_every_refused_click_leaves_an_audit_row_with_its_reason(db: Database) -> None:
    """Someone else's extension (403), no phone, a bad number (400) and an unknown PBX (the CLI's --pbx) are
    each written to the audit log as refused with their reason — not only the policy's refusals."""
    since = datetime.now(UTC) - timedelta(seconds=1)
    async with dial_app(db) as r, r.web.browser("anna") as anna, r.web.browser("head") as head:
        async with anna.post("/api/dial", json={"number": "+79031234567", "extension": "102"}) as resp:
            assert resp.status == 403
        async with head.post("/api/dial", json={"number": "+79031234567"}) as resp:
            assert resp.status == 400
        async with anna.post("/api/dial", json={"number": "call-me-maybe"}) as resp:
            assert resp.status == 400
        with pytest.raises(DialRefused):
            await r.dial.prepare("+79031234567", manager=None, extension="101", pbx="nope")
        assert r.ami.originates == []
    rows = await DialAttempts(db).between(since)
    assert {row.decision for row in rows} == {"refused"}
    reasons = sorted((row.reason, row.extension, row.number, row.manager_login) for row in rows)
    assert reasons == [
        ("dial.bad_number", "101", "call-me-maybe", "anna"),
        ("dial.no_extension", "", "+79031234567", "head"),
        ("dial.not_your_extension", "102", "+79031234567", "anna"),
        ("dial.unknown_pbx", "101", "+79031234567", None),
    ]


async def test_a_call_from_the_browser_phone_passes_the_same_checks_without_an_originate(
    db: Database,
) -> None:
    """POST /api/dial/browser: the number as the PBX dials it (dial_rules) and an audit row "placed" for anna,
    no Originate (her browser places the call); someone else's extension 403, a bad number 400, both audited."""
    since = datetime.now(UTC) - timedelta(seconds=1)
    async with dial_app(db) as r, r.web.browser("anna") as anna:
        async with anna.post("/api/dial/browser", json={"number": "8 (903) 123-45-67"}) as resp:
            assert resp.status == 200
            body = await resp.json()
        assert (body["exten"], body["number"], body["extension"]) == ("89031234567", "+79031234567", "101")
        assert "+7 903 123-45-67" in body["message"]
        async with anna.post(
            "/api/dial/browser", json={"number": "+79031234567", "extension": "102"}
        ) as resp:
            assert resp.status == 403
        async with anna.post("/api/dial/browser", json={"number": "call-me-maybe"}) as resp:
            assert resp.status == 400
        # "Via my mobile" means nothing to the browser phone: a 400 naming the field, not a browser call.
        async with anna.post("/api/dial/browser", json={"number": "+79031234567", "via": "mobile"}) as resp:
            assert resp.status == 400
            assert "via" in (await resp.json())["error"]
        assert r.ami.originates == []
    rows = await DialAttempts(db).between(since)
    decisions = sorted((row.decision, row.reason or "", row.dialled or "") for row in rows)
    assert decisions == [
        ("placed", "", "89031234567"),
        ("refused", "dial.bad_number", ""),
        ("refused", "dial.not_your_extension", ""),
    ]
