"""The CRM's JSON API as another manager, a forger and a hostile client would use it: every answer enforces
who may see what (404 like a missing record), every write needs the CSRF token, bad input is a 4xx."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestServer

from crmtel.config import DealsSettings, WebSettings
from crmtel.crm.schemas import encode_cursor
from crmtel.crm.web import CrmApi, crm_routes
from crmtel.deals.web import deal_routes
from crmtel.push.hub import Hub
from crmtel.push.web import create_app
from crmtel.store.crm_deals import CrmDeals
from crmtel.store.crm_lists import PartyLists
from crmtel.store.crm_merge import PartyMerger
from crmtel.store.crm_parties import PartyCards
from crmtel.store.crm_tasks import CrmTasks
from crmtel.store.crm_timeline import Timelines
from crmtel.store.db import Database
from crmtel.store.history import CallHistory
from crmtel.store.managers import ManagerRepository
from crmtel.store.models import CallRow
from crmtel.store.parties import NewClient, NewLead, PartyRepository
from crmtel.tasks.web import task_routes
from tests.fixtures.csrf import page_like_session
from tests.integration.test_web_app import PASSWORD, seed_managers


@asynccontextmanager
async def crm_app(db: Database) -> AsyncIterator[tuple[str, dict[str, int]]]:
    """The web app with the CRM routes as app.py mounts them; Anna's, Boris's and an unassigned client."""
    managers = await seed_managers(db)
    parties = PartyRepository(db)
    repo = ManagerRepository(db)
    ids = {
        "anna_client": (
            await parties.add_client(
                NewClient(name="ИП Петров", phones=("89167770007",), manager_id=managers["anna"].id)
            )
        ).id,
        "boris_client": (
            await parties.add_client(
                NewClient(name="ООО «Вектор»", phones=("+74951234567",), manager_id=managers["boris"].id)
            )
        ).id,
        "pool_client": (await parties.add_client(NewClient(name="Общий", phones=("+79030000001",)))).id,
        "boris_lead": (
            await parties.add_lead(
                NewLead(name="Лид Бориса", phones=("+79031112233",), manager_id=managers["boris"].id)
            )
        ).id,
    }
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
    app = create_app(
        WebSettings(port=0),
        db=db,
        hub=Hub(),
        routes=(
            crm_routes(api),
            deal_routes(CrmDeals(db), repo, CallHistory(db), DealsSettings(), "RU"),
            task_routes(CrmTasks(db), repo, "RU"),
        ),
    )
    server = TestServer(app, host="127.0.0.1", port=0)
    await server.start_server()
    try:
        yield str(server.make_url("/")), ids
    finally:
        await server.close()


@asynccontextmanager
async def logged_in(base: str, login: str) -> AsyncIterator[aiohttp.ClientSession]:
    """A client logged in as ``login`` that sends the CSRF token like the page."""
    async with page_like_session(base_url=base) as http:
        async with http.post("/api/login", json={"login": login, "password": PASSWORD}) as r:
            assert r.status == 200
        yield http


async def _json(r: aiohttp.ClientResponse) -> Any:
    return await r.json()


async def test_another_managers_records_are_answered_like_missing_ones(db: Database) -> None:
    """Anna asking for Boris's client or lead by id — read, edit, timeline, note, merge, convert, deal, task —
    gets 404, exactly as for an id that does not exist; Boris's client is not in her list either."""
    async with crm_app(db) as (base, ids), logged_in(base, "anna") as anna:
        boris = ids["boris_client"]
        for method, path, body in [
            ("GET", f"/api/clients/{boris}", None),
            ("GET", f"/api/clients/{boris}/timeline", None),
            ("PATCH", f"/api/clients/{boris}", {"name": "Взлом"}),
            ("POST", f"/api/clients/{boris}/notes", {"text": "подглядел"}),
            ("PUT", f"/api/clients/{boris}/shares", {"managers": ["anna"]}),
            ("POST", f"/api/clients/{ids['anna_client']}/merge", {"kind": "client", "id": boris}),
            ("POST", f"/api/leads/{ids['boris_lead']}/convert", {}),
            ("GET", f"/api/leads/{ids['boris_lead']}", None),
            ("POST", "/api/deals", {"kind": "client", "party_id": boris, "title": "Чужая"}),
            (
                "POST",
                "/api/tasks",
                {
                    "title": "Чужая",
                    "due_at": "2030-01-01T10:00:00+03:00",
                    "party_kind": "client",
                    "party_id": boris,
                },
            ),
            ("GET", "/api/clients/999999", None),
        ]:
            async with anna.request(method, path, json=body) as r:
                assert r.status == 404, (method, path, await r.text())
        async with anna.get("/api/clients") as r:
            names = [i["name"] for i in (await _json(r))["items"]]
        assert names == ["ИП Петров", "Общий"]
        async with anna.get("/api/clients", params={"q": "вектор"}) as r:
            assert (await _json(r))["items"] == []


async def test_a_write_without_the_csrf_token_is_refused(db: Database) -> None:
    """A logged-in browser tricked into a write (no token, or another session's token) gets 403."""
    async with crm_app(db) as (base, ids), logged_in(base, "head") as head:
        path = f"/api/clients/{ids['anna_client']}"
        async with aiohttp.ClientSession(base_url=base, cookie_jar=head.cookie_jar) as forged:
            async with forged.patch(path, json={"name": "Подделка"}) as r:
                assert r.status == 403
                assert (await _json(r))["code"] == "messages.csrf"
            async with forged.patch(path, json={"name": "Подделка"}, headers={"X-CSRF-Token": "0" * 64}) as r:
                assert r.status == 403
            async with forged.post("/api/logout") as r:
                assert r.status == 403
        async with head.get(path) as r:
            assert (await _json(r))["name"] == "ИП Петров"


async def test_an_edit_persists_with_its_audit_entry(db: Database) -> None:
    """Name, numbers (any spelling, with kinds), e-mail, INN and turnover; the audit names Anna and each field."""
    async with crm_app(db) as (base, ids), logged_in(base, "anna") as anna:
        path = f"/api/clients/{ids['anna_client']}"
        body = {
            "name": "ИП Петров Пётр",
            "email": "petrov@example.ru",
            "inn": "7707083893",
            "turnover": "150 000,50",
            "phones": [
                {"number": "8 (916) 777-00-07", "kind": "mobile"},
                {"number": "+7 495 111 22 33", "kind": "work"},
            ],
            "tags": ["VIP", "vip", " опт "],
        }
        async with anna.patch(path, json=body) as r:
            assert r.status == 200, await r.text()
            result = await _json(r)
        assert set(result["changed"]) == {"name", "email", "inn", "turnover", "phones", "tags"}
        async with anna.get(path) as r:
            card = await _json(r)
        assert card["name"] == "ИП Петров Пётр"
        assert [(p["display"], p["kind"]) for p in card["phones"]] == [
            ("+7 916 777-00-07", "mobile"),
            ("+7 495 111-22-33", "work"),
        ]
        assert card["turnover"] == "150000.50"
        assert card["tags"] == ["VIP", "опт"]
        entry = card["audit"][0]
        assert entry["manager_name"] == "Анна Смирнова"
        assert entry["changes"]["name"] == ["ИП Петров", "ИП Петров Пётр"]
        async with anna.get("/api/clients", params={"q": "+7 (495) 111-22-33"}) as r:
            assert [i["name"] for i in (await _json(r))["items"]] == ["ИП Петров Пётр"]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"inn": "1234567890"}, "inn"),
        ({"email": "не почта"}, "email"),
        ({"phones": [{"number": "<script>alert(1)</script>"}]}, "phones.0.number"),
        ({"name": "x" * 301}, "name"),
        ({"name": ""}, "name"),
        ({"turnover": "сто рублей"}, "amount"),
        ({"manager": "boris"}, "manager"),
        ({"bogus": 1}, "bogus"),
    ],
)
async def test_bad_card_input_is_a_400_naming_the_field(
    db: Database, body: dict[str, object], field: str
) -> None:
    """Checksums, addresses, numbers, lengths, amounts, assignments by a plain manager, unknown fields."""
    async with crm_app(db) as (base, ids), logged_in(base, "anna") as anna:
        async with anna.patch(f"/api/clients/{ids['anna_client']}", json=body) as r:
            assert r.status in (400, 403), await r.text()
            data = await _json(r)
        assert field in {f["field"] for f in data.get("fields", [])}, data


async def test_hostile_strings_are_stored_and_returned_as_text(db: Database) -> None:
    """Markup, quotes, NUL and right-to-left marks in a name and a note come back as written (minus NUL)."""
    hostile = '<img src=x onerror=alert(1)> O\'Brien "ООО" \u202e\x00'
    async with crm_app(db) as (base, ids), logged_in(base, "anna") as anna:
        path = f"/api/clients/{ids['anna_client']}"
        async with anna.patch(path, json={"name": hostile, "comment": hostile * 10}) as r:
            assert r.status == 200, await r.text()
        async with anna.post(path + "/notes", json={"text": hostile}) as r:
            assert r.status == 201
        async with anna.get(path) as r:
            assert (await _json(r))["name"] == hostile.replace("\x00", "").strip()
        async with anna.get(path + "/timeline") as r:
            assert (await _json(r))["items"][0]["text"] == hostile.replace("\x00", "").strip()
        async with anna.get("/api/clients", params={"q": "onerror"}) as r:
            assert len((await _json(r))["items"]) == 1


async def test_huge_pages_bad_cursors_and_a_merge_with_itself_are_refused(db: Database) -> None:
    """limit beyond 100, a forged cursor, an id past 64 bits (in the path or in a cursor: PostgreSQL cannot
    bind it, which was a 503), merging a record into itself: 4xx, never 5xx."""
    at = "2026-11-20T09:00:00+00:00"
    huge = 10**30
    async with crm_app(db) as (base, ids), logged_in(base, "head") as head:
        for path, params in [
            ("/api/clients", {"cursor": encode_cursor(["петров", huge])}),
            ("/api/clients", {"sort": "-created", "cursor": encode_cursor([at, huge])}),
            ("/api/tasks", {"cursor": encode_cursor([at, huge])}),
            ("/api/deals", {"cursor": encode_cursor([at, -(huge)])}),
            (f"/api/clients/{ids['anna_client']}/timeline", {"cursor": encode_cursor([at, "call", huge])}),
            ("/api/clients", {"limit": "100000"}),
            ("/api/clients", {"cursor": "!!!"}),
            ("/api/clients", {"cursor": "WzEsMiwzXQ"}),
            ("/api/tasks", {"cursor": "WyJ4IiwxXQ"}),
            ("/api/deals", {"limit": "0"}),
            ("/api/clients", {"q": "x" * 201}),
            ("/api/clients", {"sort": "-created", "cursor": "WyJub3QgYSB0aW1lIiwgMV0"}),
            # A search's term cursor sent with the newest-first sort (was a 500), with or without a search.
            ("/api/clients", {"sort": "-created", "q": "ип", "cursor": encode_cursor(["a", 1, "ип"])}),
            ("/api/leads", {"sort": "-created", "cursor": encode_cursor([at, 1, "ип"])}),
            # A NUL in a cursor's key or term (PostgreSQL refuses it: a 503 «database unavailable»).
            ("/api/clients", {"cursor": encode_cursor(["\x00", 1])}),
            ("/api/clients", {"q": "ип", "cursor": encode_cursor(["ип", 1, "\x00"])}),
            (
                f"/api/clients/{ids['anna_client']}/timeline",
                {"cursor": "WyIyMDI2LTAxLTAxVDAwOjAwOjAwIiwgImNhbGwiLCAxXQ"},
            ),
        ]:
            async with head.get(path, params=params) as r:
                assert r.status == 400, (path, params, await r.text())
        async with head.get("/api/clients/99999999999999999999") as r:
            assert r.status == 404
        cid = ids["anna_client"]
        async with head.post(f"/api/clients/{cid}/merge", json={"kind": "client", "id": cid}) as r:
            assert r.status == 400
            assert (await _json(r))["code"] == "crm.merge_self"


async def test_a_deal_moves_through_the_pipeline_and_is_won(db: Database) -> None:
    """Open on a client, move a stage, lose without a reason (refused), win: closed, in the won list."""
    async with crm_app(db) as (base, ids), logged_in(base, "anna") as anna:
        async with anna.post(
            "/api/deals",
            json={
                "kind": "client",
                "party_id": ids["anna_client"],
                "title": "Поставка",
                "amount": "150 000,50",
            },
        ) as r:
            assert r.status == 201, await r.text()
            deal = await _json(r)
        assert deal["stage"] == "new"
        assert deal["amount"] == "150000.50"
        async with anna.patch(f"/api/deals/{deal['id']}", json={"stage": "proposal"}) as r:
            assert (await _json(r))["stage"] == "proposal"
        async with anna.get("/api/deals/pipeline") as r:
            pipeline = await _json(r)
        column = next(c for c in pipeline["stages"] if c["stage"] == "proposal")
        assert column["count"] == 1
        assert column["amount"] == "150000.50"
        async with anna.patch(f"/api/deals/{deal['id']}", json={"status": "lost"}) as r:
            assert r.status == 400
        async with anna.patch(f"/api/deals/{deal['id']}", json={"status": "won"}) as r:
            won = await _json(r)
        assert won["status"] == "won"
        assert won["closed_at"] is not None
        async with anna.get("/api/deals", params={"status": "won"}) as r:
            assert [d["id"] for d in (await _json(r))["items"]] == [deal["id"]]
        async with logged_in(base, "boris") as boris, boris.get(f"/api/deals/{deal['id']}") as r:
            assert r.status == 404


async def test_a_deal_carries_its_partys_numbers_only_for_who_may_see_the_party(db: Database) -> None:
    """A deal shows its party's numbers written one way, in the list, the pipeline, by id and in the answer
    to a create or an edit; Anna's own deal with Boris's client shows her its name but none of his client's
    numbers (she may not open that card, so she may not call from it) until Boris shares the client; the head
    sees them all, a lead's too."""
    async with crm_app(db) as (base, ids), logged_in(base, "head") as head, logged_in(base, "anna") as anna:
        petrov = [{"e164": "+79167770007", "display": "+7 916 777-00-07"}]
        vector = [{"e164": "+74951234567", "display": "+7 495 123-45-67"}]

        def numbers(deal: dict[str, Any]) -> list[dict[str, str]]:
            return [{"e164": p["e164"], "display": p["display"]} for p in deal["phones"]]

        async def seen_by(http: aiohttp.ClientSession, deal_id: int) -> list[list[dict[str, str]]]:
            """The deal's numbers by id, in the list and in the pipeline."""
            async with http.get(f"/api/deals/{deal_id}") as r:
                one = numbers(await _json(r))
            async with http.get("/api/deals") as r:
                listed = [numbers(d) for d in (await _json(r))["items"] if d["id"] == deal_id]
            async with http.get("/api/deals/pipeline") as r:
                stages = (await _json(r))["stages"]
            piped = [numbers(d) for c in stages for d in c["deals"] if d["id"] == deal_id]
            return [one, *listed, *piped]

        new = {"kind": "client", "party_id": ids["anna_client"], "title": "Поставка", "amount": "1000"}
        async with anna.post("/api/deals", json=new) as r:
            own = await _json(r)
        assert numbers(own) == petrov
        assert await seen_by(anna, own["id"]) == [petrov] * 3
        theirs = {**new, "party_id": ids["boris_client"], "manager": "anna", "title": "Кровля"}
        async with head.post("/api/deals", json=theirs) as r:
            hers = await _json(r)
        assert numbers(hers) == vector
        assert await seen_by(anna, hers["id"]) == [[]] * 3
        async with anna.patch(f"/api/deals/{hers['id']}", json={"stage": "proposal"}) as r:
            assert r.status == 200
            assert (await _json(r))["phones"] == []
        assert await seen_by(head, hers["id"]) == [vector] * 3
        share = {"managers": ["anna"]}
        async with (
            logged_in(base, "boris") as boris,
            boris.put(f"/api/clients/{ids['boris_client']}/shares", json=share) as r,
        ):
            assert r.status == 200
        assert await seen_by(anna, hers["id"]) == [vector] * 3
        lead = {**new, "kind": "lead", "party_id": ids["boris_lead"], "title": "Лид", "manager": "boris"}
        async with head.post("/api/deals", json=lead) as r:
            assert numbers(await _json(r)) == [{"e164": "+79031112233", "display": "+7 903 111-22-33"}]


async def test_tasks_are_set_completed_reopened_and_reassigned_only_by_heads(db: Database) -> None:
    """A callback for tomorrow on Anna's client; Anna cannot hand it to Boris, the head can."""
    tomorrow = (datetime.now(UTC) + timedelta(days=1)).isoformat()
    async with crm_app(db) as (base, ids), logged_in(base, "anna") as anna:
        async with anna.post(
            "/api/tasks",
            json={
                "title": "Перезвонить",
                "due_at": tomorrow,
                "party_kind": "client",
                "party_id": ids["anna_client"],
            },
        ) as r:
            assert r.status == 201, await r.text()
            task = await _json(r)
        assert task["phone_display"] == "+7 916 777-00-07"
        assert task["source"] == "planned"
        assert task["manager"] == "anna"  # the owner's login, as in the call list and ``tasks list``
        async with anna.patch(f"/api/tasks/{task['id']}", json={"manager": "boris"}) as r:
            assert r.status == 403
        async with anna.post(f"/api/tasks/{task['id']}/complete", json={"result": "Договорились"}) as r:
            assert (await _json(r))["status"] == "closed"
        async with anna.post(f"/api/tasks/{task['id']}/reopen", json={}) as r:
            assert (await _json(r))["status"] == "open"
        async with (
            logged_in(base, "head") as head,
            head.patch(f"/api/tasks/{task['id']}", json={"manager": "boris"}) as r,
        ):
            reassigned = await _json(r)
            assert (reassigned["manager"], reassigned["manager_name"]) == ("boris", "Boris Orlov")
        async with anna.get("/api/tasks") as r:
            # Anna still sees it: the task is about her client.
            assert [t["id"] for t in (await _json(r))["items"]] == [task["id"]]


async def test_a_colleagues_call_with_my_client_is_mine_to_see_but_not_a_strangers(db: Database) -> None:
    """Boris answered Anna's client: Anna sees the call on the card's timeline and may open it; Vera may not."""
    from crmtel.store.models import CallRow

    async with crm_app(db) as (base, ids):
        async with db.session() as session:
            session.add(
                CallRow(
                    pbx="pbx1",
                    linkedid="l-1",
                    direction="inbound",
                    caller_number="+79167770007",
                    started_at=datetime(2026, 11, 30, 9, 0, tzinfo=UTC),
                    ended_at=datetime(2026, 11, 30, 9, 5, tzinfo=UTC),
                    rang=["102"],
                    answered_by="102",
                    outcome="answered",
                    talk_seconds=290,
                    party_kind="client",
                    party_id=ids["anna_client"],
                )
            )
        async with logged_in(base, "anna") as anna:
            async with anna.get(f"/api/clients/{ids['anna_client']}/timeline") as r:
                items = (await _json(r))["items"]
            assert [(i["type"], i["number_display"]) for i in items] == [("call", "+7 916 777-00-07")]
            async with anna.get("/api/calls/pbx1:l-1") as r:
                assert r.status == 200
        async with logged_in(base, "vera") as vera, vera.get("/api/calls/pbx1:l-1") as r:
            assert r.status == 404


async def test_the_timeline_names_who_answered_only_and_the_owner_apart(db: Database) -> None:
    """A missed call owned by Anna names no answerer (not Anna); Boris's answer of Anna's call names Boris as
    the answerer and Anna as the one responsible."""
    from crmtel.store.managers import ManagerRepository
    from crmtel.store.models import CallRow

    async with crm_app(db) as (base, ids):
        anna_row = await ManagerRepository(db).by_login("anna")
        boris_row = await ManagerRepository(db).by_login("boris")
        assert anna_row is not None
        assert boris_row is not None
        at = datetime(2026, 11, 30, 9, 0, tzinfo=UTC)
        async with db.session() as session:
            for linkedid, answered_by, outcome, minutes in (
                ("m-1", None, "missed", 0),
                ("a-1", "102", "answered", 5),
            ):
                session.add(
                    CallRow(
                        pbx="pbx1",
                        linkedid=linkedid,
                        direction="inbound",
                        caller_number="+79167770007",
                        started_at=at + timedelta(minutes=minutes),
                        ended_at=at + timedelta(minutes=minutes + 1),
                        rang=["101", "102"],
                        answered_by=answered_by,
                        outcome=outcome,
                        talk_seconds=50 if answered_by else 0,
                        party_kind="client",
                        party_id=ids["anna_client"],
                        manager_id=anna_row.id,
                    )
                )
        async with (
            logged_in(base, "anna") as anna,
            anna.get(f"/api/clients/{ids['anna_client']}/timeline") as r,
        ):
            items = {i["call_id"]: i for i in (await _json(r))["items"]}
        missed, answered = items["pbx1:m-1"], items["pbx1:a-1"]
        assert (missed["answered_by"], missed["answered_by_name"]) == (None, None)
        assert missed["manager_name"] == anna_row.name
        assert (answered["answered_by"], answered["answered_by_name"]) == ("102", boris_row.name)
        assert answered["manager_name"] == anna_row.name


async def test_an_edit_of_a_card_changed_meanwhile_is_refused_not_overwritten(db: Database) -> None:
    """Two people edit one card: the second save, made on the old version, gets 409 and changes nothing."""
    async with crm_app(db) as (base, ids), logged_in(base, "anna") as anna:
        path = f"/api/clients/{ids['anna_client']}"
        async with anna.get(path) as r:
            loaded = await _json(r)
        async with anna.patch(path, json={"version": loaded["version"], "name": "Первая правка"}) as r:
            assert r.status == 200
            fresh = (await _json(r))["card"]
        async with anna.patch(path, json={"version": loaded["version"], "name": "Вторая правка"}) as r:
            assert r.status == 409
        async with anna.patch(path, json={"version": fresh["version"], "name": "Вторая правка"}) as r:
            assert r.status == 200


async def test_a_deal_takes_only_the_configured_stages_and_lost_reasons(db: Database) -> None:
    """An unknown stage (create or move) or lost reason is a 400 naming the field; nothing is stored."""
    async with crm_app(db) as (base, ids), logged_in(base, "anna") as anna:
        new = {"kind": "client", "party_id": ids["anna_client"], "title": "Поставка", "amount": "1"}
        async with anna.post("/api/deals", json={**new, "stage": "Нет такой"}) as r:
            assert r.status == 400
            body = await _json(r)
            assert (body["code"], body["fields"][0]["field"]) == ("crm.stage_unknown", "stage")
        async with anna.post("/api/deals", json={**new, "stage": "proposal"}) as r:
            assert r.status == 201
            deal = await _json(r)
        path = f"/api/deals/{deal['id']}"
        async with anna.patch(path, json={"stage": "Выдуманная"}) as r:
            assert r.status == 400
            body = await _json(r)
            assert (body["code"], body["fields"][0]["field"]) == ("crm.stage_unknown", "stage")
        async with anna.patch(path, json={"status": "lost", "lost_reason": "<script>x</script>"}) as r:
            assert r.status == 400
            body = await _json(r)
            assert (body["code"], body["fields"][0]["field"]) == ("crm.lost_reason_unknown", "lost_reason")
        async with anna.get(path) as r:
            kept = await _json(r)
        assert (kept["stage"], kept["status"], kept["lost_reason"]) == ("proposal", "open", None)
        async with anna.patch(path, json={"status": "lost", "lost_reason": "competitor"}) as r:
            assert r.status == 200
            assert (await _json(r))["lost_reason"] == "competitor"


async def test_a_deal_names_only_a_call_its_manager_may_see(db: Database) -> None:
    """Anna's deal on her client «from» Boris's call with Boris's client is refused like an unknown call (it
    was linked, 201, and showed on Boris's call card); from a call with her client, or one that rang at her
    phone, it is linked."""
    async with crm_app(db) as (base, ids), logged_in(base, "anna") as anna:
        at = datetime(2026, 11, 20, 9, 0, tzinfo=UTC)
        async with db.session() as session:
            for linkedid, number, ext, party in [
                ("1763629200.77", "+74951234567", "102", ids["boris_client"]),
                ("1763629200.78", "+79167770007", "102", ids["anna_client"]),
                ("1763629200.79", "+74951234567", "101", ids["boris_client"]),
            ]:
                session.add(
                    CallRow(
                        pbx="pbx1",
                        linkedid=linkedid,
                        direction="inbound",
                        caller_number=number,
                        started_at=at,
                        ended_at=at + timedelta(minutes=2),
                        rang=[ext],
                        answered_by=ext,
                        outcome="answered",
                        talk_seconds=100,
                        party_kind="client",
                        party_id=party,
                    )
                )
        deal = {"kind": "client", "party_id": ids["anna_client"], "title": "Моя сделка", "amount": "1000"}
        async with anna.post("/api/deals", json={**deal, "call": "pbx1:1763629200.77"}) as r:
            assert r.status == 400, await r.text()
            assert (await _json(r))["code"] == "crm.call_unknown"
        for linkedid in ("1763629200.78", "1763629200.79"):
            async with anna.post("/api/deals", json={**deal, "call": f"pbx1:{linkedid}"}) as r:
                assert r.status == 201, await r.text()
                assert (await _json(r))["call_id"] == f"pbx1:{linkedid}"


async def test_a_client_only_shared_with_a_manager_is_not_hers_to_merge_away(db: Database) -> None:
    """Boris shares his client with Anna: she sees and edits it, but merging it into her own client (which
    deleted it and moved its history to her, 200) is refused with 403 like sharing it; Boris still has it.
    An unassigned duplicate she may merge into hers."""
    async with crm_app(db) as (base, ids), logged_in(base, "boris") as boris, logged_in(base, "anna") as anna:
        boris_client, anna_client = ids["boris_client"], ids["anna_client"]
        async with boris.put(f"/api/clients/{boris_client}/shares", json={"managers": ["anna"]}) as r:
            assert r.status == 200, await r.text()
        async with anna.patch(f"/api/clients/{boris_client}", json={"comment": "звонила"}) as r:
            assert r.status == 200, await r.text()
        async with anna.post(
            f"/api/clients/{anna_client}/merge", json={"kind": "client", "id": boris_client}
        ) as r:
            assert r.status == 403, await r.text()
            assert (await _json(r))["code"] == "crm.merge_forbidden"
        async with boris.get(f"/api/clients/{boris_client}") as r:
            assert r.status == 200
        async with anna.post(
            f"/api/clients/{anna_client}/merge", json={"kind": "client", "id": ids["pool_client"]}
        ) as r:
            assert r.status == 200, await r.text()


async def test_a_name_of_invisible_characters_alone_is_a_400(db: Database) -> None:
    """A client, lead, contact person, deal or task named with only zero-width spaces, soft hyphens or a BOM
    (what a paste carries) is refused naming the field, like an empty name (it was a blank row, 201)."""
    async with crm_app(db) as (base, ids), logged_in(base, "anna") as anna:
        client = f"/api/clients/{ids['anna_client']}"
        for method, path, body, field in [
            ("POST", "/api/clients", {"name": "\u200b\u00ad"}, "name"),
            ("POST", "/api/leads", {"name": "\ufeff"}, "name"),
            ("PATCH", client, {"name": "\u200b"}, "name"),
            ("PATCH", client, {"contacts": [{"name": "\u2060", "phones": []}]}, "contacts.0.name"),
            (
                "POST",
                "/api/deals",
                {"kind": "client", "party_id": ids["anna_client"], "title": "\u200d"},
                "title",
            ),
        ]:
            async with anna.request(method, path, json=body) as r:
                assert r.status == 400, (path, body, await r.text())
                assert field in [f["field"] for f in (await _json(r)).get("fields") or []], await r.text()
        async with anna.patch(client, json={"name": "Иван\u200bов"}) as r:
            assert r.status == 200, await r.text()
