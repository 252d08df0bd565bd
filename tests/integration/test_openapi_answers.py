"""The OpenAPI document's schemas are true to the handlers: one manager's day through every JSON route the
document describes (on the app as app.py mounts them, with a fake PBX for click-to-call), each answer validated
with jsonschema against its route's schema, and every described answer met at least once."""

from __future__ import annotations

import contextlib
import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestServer
from jsonschema import Draft202012Validator

from crmtel.ami.client import AmiClient
from crmtel.board.service import BoardService, StoreCounts
from crmtel.board.web import board_routes
from crmtel.callbacks.web import callback_routes
from crmtel.calls.service import CallService
from crmtel.config import (
    CallsSettings,
    DealsSettings,
    DialRule,
    OriginateSettings,
    Settings,
    WebphoneSettings,
    WebSettings,
)
from crmtel.crm.web import CrmApi, crm_routes
from crmtel.deals.web import deal_routes
from crmtel.dial.guard import GuardedSender
from crmtel.dial.service import DialService
from crmtel.dial.web import dial_routes, hub_notifier
from crmtel.domain import CallAnswered, CallQueued
from crmtel.fakepbx.server import FakeAmiServer
from crmtel.openapi.document import ROUTES, document
from crmtel.openapi.schemas import QUERIES, REQUESTS, RESPONSES
from crmtel.push.cards import StoreCards
from crmtel.push.context import current_manager, translator
from crmtel.push.hub import Hub
from crmtel.push.notifier import ManagerNames, Notifier
from crmtel.push.web import create_app
from crmtel.results.models import BUILT_IN, ResultChoices
from crmtel.results.web import result_routes
from crmtel.store.call_results import CallResults
from crmtel.store.callbacks import CallbackRepository
from crmtel.store.crm_deals import CrmDeals
from crmtel.store.crm_lists import PartyLists
from crmtel.store.crm_merge import PartyMerger
from crmtel.store.crm_parties import PartyCards
from crmtel.store.crm_tasks import CrmTasks
from crmtel.store.crm_timeline import Timelines
from crmtel.store.db import Database
from crmtel.store.dial_attempts import DialAttempts
from crmtel.store.history import CallHistory
from crmtel.store.managers import ManagerRepository
from crmtel.store.models import TaskRow
from crmtel.store.parties import NewLead, PartyRepository
from crmtel.store.sip_credentials import SipCredentialRepository
from crmtel.tasks.web import task_routes
from crmtel.webphone.sync import sync_endpoints
from crmtel.webphone.web import webphone_routes
from tests.fixtures.csrf import csrf_middleware
from tests.fixtures.fake_ami import running, settings_for, wait_for
from tests.fixtures.openapi_check import AnswerCheck, documented_answers
from tests.integration.test_web_app import PASSWORD, add_call, seed_managers


@contextlib.asynccontextmanager
async def _app(db: Database, database_url: str) -> AsyncIterator[str]:
    """Every JSON route of the managers' app, on one fake PBX, with the browser phone's credentials made."""
    await seed_managers(db)
    phone = WebphoneSettings(enabled=True, ws_url="wss://pbx.example.com:8089/ws", reload=False)
    await sync_endpoints(Settings(database_url=database_url, webphone=phone), db)
    repo = ManagerRepository(db)
    parties = PartyRepository(db)
    ami = FakeAmiServer([])
    ami.originate_speed = None
    await ami.start()
    hub = Hub()
    try:
        async with (
            Notifier(hub, StoreCards(db), ManagerNames(db)) as notifier,
            BoardService(hub, ManagerNames(db), StoreCounts(db), timezone="UTC", queues=("retail",)) as board,
        ):
            calls = CallService(db, CallsSettings(), parties, notifier)
            client = AmiClient(settings_for(ami), calls)
            originate = OriginateSettings.model_validate(
                {"dial_rules": (DialRule(prefix="+7", replace="8"),)}
            )
            dial = DialService(
                {"pbx1": GuardedSender("pbx1", client, originate)},
                {"pbx1": originate},
                notify=hub_notifier(hub),
                audit=DialAttempts(db),
            )
            api = CrmApi(
                lists=PartyLists(db),
                cards=PartyCards(db),
                merger=PartyMerger(db),
                timelines=Timelines(db),
                parties=parties,
                managers=repo,
                region="RU",
                recordings_dir=None,
                deals=DealsSettings(),
            )
            routes = (
                crm_routes(api),
                deal_routes(CrmDeals(db), repo, CallHistory(db), DealsSettings(), "RU"),
                task_routes(CrmTasks(db), repo, "RU"),
                callback_routes(CallbackRepository(db), repo),
                result_routes(ResultChoices(BUILT_IN), CallResults(db)),
                dial_routes(dial),
                webphone_routes(phone, SipCredentialRepository(db)),
                board_routes(board, current_manager, translator),
            )
            # One caller waiting in the queue, one call in progress: the board's lists are not empty.
            now = datetime.now(UTC)
            await board.publish(CallQueued("pbx1:9.1", "retail", "+79031110000", "Иван", now, None, now))
            await board.publish(CallQueued("pbx1:9.2", "retail", "+79031110001", None, now, None, now))
            await board.publish(CallAnswered("pbx1:9.2", "101", now))
            server = TestServer(create_app(WebSettings(port=0), db=db, hub=hub, routes=routes), port=0)
            await server.start_server()
            try:
                async with running(client):
                    await wait_for(client.connected.is_set)
                    yield str(server.make_url("/"))
                    await dial.aclose()
            finally:
                await server.close()
    finally:
        await ami.close()


async def _call(
    http: aiohttp.ClientSession, method: str, path: str, body: Any = None, status: int = 200
) -> Any:
    async with http.request(method, path, json=body) as r:
        assert r.status == status, (method, path, r.status, await r.text())
        return await r.json()


async def test_every_described_answer_matches_the_real_handler(db: Database, database_url: str) -> None:
    """Login to logout through every JSON route: each answer matches its schema (checked as it arrives), and
    every (route, status) the document describes was seen."""
    check = AnswerCheck()
    async with _app(db, database_url) as base:
        managers = {m.login: m for m in await ManagerRepository(db).all()}
        call_id = await add_call(db, linkedid="1700000000.1", rang=("101",), answered_by="101")
        other_call = await add_call(
            db, linkedid="1700000000.2", rang=("101",), answered_by="101", caller="79035550011"
        )
        del call_id, other_call
        parties = PartyRepository(db)
        lead = await parties.add_lead(
            NewLead(name="Лид", phones=("+79037770000",), manager_id=managers["anna"].id)
        )
        now = datetime.now(UTC)
        async with db.session() as session:
            task = TaskRow(
                phone="+79031234567",
                manager_id=managers["anna"].id,
                missed_count=1,
                status="open",
                due_at=now - timedelta(minutes=5),
                created_at=now - timedelta(hours=1),
                updated_at=now,
            )
            session.add(task)
            await session.flush()
            callback_id = task.id
        jar = aiohttp.CookieJar(unsafe=True)
        async with aiohttp.ClientSession(
            base_url=base, cookie_jar=jar, middlewares=(csrf_middleware(jar), check.middleware())
        ) as http:
            await _call(http, "POST", "/api/login", {"login": "anna", "password": PASSWORD})
            await _call(http, "GET", "/api/me")
            await _call(http, "PUT", "/api/me/locale", {"locale": "en"})
            await _call(http, "GET", "/api/call-results")
            await _call(http, "GET", "/api/phone")
            await _call(http, "PUT", "/api/me/mobile", {"mobile": "8 916 111-00-01"})
            calls = (await _call(http, "GET", "/api/calls"))["calls"]
            first = calls[0]["call_id"]
            await _call(http, "GET", f"/api/calls/{first}")
            await _call(
                http, "POST", f"/api/calls/{first}/notes", {"topic": "t", "result": "r", "comment": "c"}, 201
            )
            made = await _call(http, "POST", f"/api/calls/{first}/lead", {"name": "Новый"}, 201)
            await _call(http, "POST", f"/api/calls/{first}/lead", {"name": "Новый"}, 200)
            await _call(http, "POST", f"/api/calls/{first}/deals", {"title": "Сделка", "amount": "1000"}, 201)
            await _call(
                http, "POST", f"/api/calls/{first}/tasks", {"title": "Перезвонить", "due_minutes": 30}, 201
            )
            await _call(http, "PUT", f"/api/calls/{first}/result", {"result": "talked"})
            await _call(http, "GET", f"/api/calls/{first}")
            await _call(http, "GET", "/api/callbacks?status=all")
            await _call(http, "POST", f"/api/callbacks/{callback_id}/close", {"result": "перезвонил"})
            await _call(http, "GET", "/api/search?q=Лид")
            await _call(http, "GET", "/api/crm/settings")
            await _call(http, "GET", "/api/managers")
            client = await _call(
                http,
                "POST",
                "/api/clients",
                {"name": "ООО «Схема»", "phones": [{"number": "+74951112233"}]},
                201,
            )
            other = await _call(
                http, "POST", "/api/clients", {"name": "Дубль", "phones": [{"number": "+74951112244"}]}, 201
            )
            await _call(http, "GET", "/api/clients")
            await _call(http, "GET", "/api/leads?q=Лид")
            card = await _call(http, "GET", f"/api/clients/{client['id']}")
            await _call(
                http, "PATCH", f"/api/clients/{client['id']}", {"version": card["version"], "comment": "ок"}
            )
            await _call(http, "POST", f"/api/clients/{client['id']}/notes", {"text": "заметка"}, 201)
            await _call(http, "PUT", f"/api/clients/{client['id']}/shares", {"managers": ["boris"]})
            await _call(
                http, "POST", f"/api/clients/{client['id']}/merge", {"kind": "client", "id": other["id"]}
            )
            await _call(http, "GET", f"/api/clients/{client['id']}/timeline")
            await _call(http, "GET", f"/api/leads/{made['id']}/timeline")
            await _call(http, "POST", f"/api/leads/{lead.id}/convert", {}, 201)
            deal = await _call(
                http,
                "POST",
                "/api/deals",
                {"kind": "client", "party_id": client["id"], "title": "Поставка", "amount": "5000"},
                201,
            )
            await _call(http, "GET", "/api/deals")
            await _call(http, "GET", "/api/deals/pipeline")
            await _call(http, "GET", f"/api/deals/{deal['id']}")
            await _call(
                http, "PATCH", f"/api/deals/{deal['id']}", {"stage": deal["stage"], "title": "Поставка 2"}
            )
            due = (datetime.now(UTC) + timedelta(days=1)).isoformat()
            task_made = await _call(
                http, "POST", "/api/tasks", {"kind": "call", "title": "Позвонить", "due_at": due}, 201
            )
            await _call(http, "GET", "/api/tasks?status=all")
            await _call(http, "PATCH", f"/api/tasks/{task_made['id']}", {"title": "Позвонить снова"})
            await _call(http, "POST", f"/api/tasks/{task_made['id']}/complete", {"result": "готово"})
            await _call(http, "POST", f"/api/tasks/{task_made['id']}/reopen", {})
            placed = await _call(http, "POST", "/api/dial", {"number": "+79031234567"}, 202)
            # The same click again within dedup_seconds: the first attempt, 200.
            await _call(http, "POST", "/api/dial", {"number": "+79031234567"}, 200)
            await _call(http, "GET", f"/api/dial/{placed['originate_id']}")
            # The browser phone's own call: admitted by the same policy, dialled by the page.
            await _call(http, "POST", "/api/dial/browser", {"number": "+79031234568"})
            await _call(http, "POST", "/api/logout", {})
            await _call(http, "POST", "/api/login", {"login": "head", "password": PASSWORD})
            board = await _call(http, "GET", "/api/board")
            assert board["queues"][0]["callers"]
            assert board["talking"]
    missing = {a for a in documented_answers() if a not in check.checked}
    assert missing == set(), sorted(missing)


def test_a_drifted_answer_is_caught() -> None:
    """The check is not blind: a call list whose call lost a field, or gained one, or a wrong type, fails."""
    check = AnswerCheck()
    good: dict[str, Any] = {
        "manager": None,
        "answered_by_name": None,
        "rang_names": [],
        "id": 1,
        "call_id": "pbx1:1.1",
        "direction": "inbound",
        "caller_number": None,
        "caller_name": None,
        "dialled": None,
        "started_at": None,
        "ended_at": None,
        "rang": [],
        "answered_by": None,
        "answered_on": None,
        "transferred_to": None,
        "queue": None,
        "outcome": "missed",
        "missed_reason": None,
        "ring_seconds": 1.0,
        "talk_seconds": 0.0,
        "party_kind": None,
        "party_id": None,
        "party_name": None,
        "result": None,
        "recording": None,
    }
    check.check("GET", "/api/calls", 200, json.dumps({"calls": [good]}).encode(), "application/json")
    for drifted in (
        {k: v for k, v in good.items() if k != "result"},
        {**good, "surprise": 1},
        {**good, "id": "1"},
    ):
        with pytest.raises(AssertionError, match="does not match"):
            check.check(
                "GET", "/api/calls", 200, json.dumps({"calls": [drifted]}).encode(), "application/json"
            )
    with pytest.raises(AssertionError, match="does not match"):
        check.check("GET", "/api/clients/5", 404, b'{"message": "x"}', "application/json")


def test_the_schemas_are_well_formed_and_name_only_real_routes() -> None:
    """Every component is a valid JSON Schema (2020-12, as OpenAPI 3.1 uses); every route given a body, query
    or answer model is a route of the document; the bearer schemes are declared."""
    doc = document()
    for name, schema in doc["components"]["schemas"].items():
        Draft202012Validator.check_schema(schema)
        assert name.isidentifier(), name
    for table in (REQUESTS, QUERIES, RESPONSES):
        assert set(table) <= set(ROUTES), set(table) - set(ROUTES)
    schemes = doc["components"]["securitySchemes"]
    assert schemes["api_token"]["scheme"] == "bearer"
    assert schemes["bearer"]["type"] == "http"
    create = doc["paths"]["/api/{kind}"]["post"]
    assert create["requestBody"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/PartyCreate"
    }
    assert {p["name"] for p in doc["paths"]["/api/calls"]["get"]["parameters"]} >= {"limit", "before", "from"}
