"""Typed amounts in the manager's language reach the database exactly; API errors speak that language."""

from __future__ import annotations

from decimal import Decimal

import pytest

from crmtel.store.db import Database
from crmtel.store.deals import DealRepository
from crmtel.store.models import CallRow
from crmtel.store.parties import NewClient, PartyRepository
from tests.fixtures.csrf import page_like_session
from tests.integration.test_web_app import Rig, add_call, running_app

NBSP = "\u00a0"
NNBSP = "\u202f"


async def _client_call(rig: Rig, linkedid: str = "7.1") -> int:
    client = await PartyRepository(rig.db).add_client(NewClient(name="ООО Вектор", phones=("79161110001",)))
    call = await add_call(rig.db, linkedid=linkedid, rang=("101",), answered_by="101", caller="79161110001")
    async with rig.db.session() as session:
        row = await session.get(CallRow, call)
        assert row is not None
        row.party_kind, row.party_id = "client", client.id
    return client.id


@pytest.mark.parametrize(
    "typed", ["150 000,50", f"150{NBSP}000,50", f"150{NNBSP}000,50", "150000,50", "150000.50", 150000.5]
)
async def test_a_russian_amount_is_stored_as_the_exact_decimal(db: Database, typed: object) -> None:
    """``150 000,50`` (and its other spellings) posted by a Russian page is read back as 150000.50."""
    async with running_app(db) as rig, rig.browser("anna") as anna:
        client_id = await _client_call(rig)
        async with anna.post("/api/calls/pbx1:7.1/deals", json={"title": "Трубы", "amount": typed}) as r:
            assert r.status == 201, await r.text()
            assert (await r.json())["amount"] == "150000.50"
        (deal,) = await DealRepository(db).open_for(client_id=client_id, lead_id=None)
        assert deal.amount == Decimal("150000.50")
        async with anna.get("/api/calls/pbx1:7.1") as r:
            assert [d["amount"] for d in (await r.json())["deals"]] == ["150000.50"]


async def test_an_english_page_sends_its_own_grouping(db: Database) -> None:
    """For an English page ``150,000.50`` is the same amount; ``1,500`` is fifteen hundred there."""
    async with running_app(db) as rig, rig.browser("anna") as anna:
        await _client_call(rig)
        english = {"Accept-Language": "en-US"}
        for typed, stored in (("150,000.50", "150000.50"), ("1,500", "1500.00")):
            async with anna.post(
                "/api/calls/pbx1:7.1/deals", json={"title": "x", "amount": typed}, headers=english
            ) as r:
                assert r.status == 201, await r.text()
                assert (await r.json())["amount"] == stored


@pytest.mark.parametrize(
    ("typed", "code"),
    [
        ("сто рублей", "messages.amount_invalid"),
        ("1e5", "messages.amount_invalid"),
        ("-5", "messages.amount_range"),
        ("10 000 000 000 000", "messages.amount_range"),
        ("10,005", "messages.amount_decimals"),
    ],
)
async def test_a_bad_amount_is_a_400_in_the_managers_language(db: Database, typed: str, code: str) -> None:
    """Garbage, out-of-range or sub-kopeck amounts are refused with a Russian message naming the field."""
    async with running_app(db) as rig, rig.browser("anna") as anna:
        client_id = await _client_call(rig)
        async with anna.post("/api/calls/pbx1:7.1/deals", json={"title": "x", "amount": typed}) as r:
            assert r.status == 400
            body = await r.json()
        assert body["fields"][0]["field"] == "amount"
        assert (
            body["error"]
            == {
                "messages.amount_invalid": "Сумма должна быть числом, например 150 000,50",
                "messages.amount_range": "Сумма должна быть от 0 до 10 000 000 000 000",
                "messages.amount_decimals": "В сумме не больше двух знаков после запятой (копейки)",
            }[code]
        )
        assert await DealRepository(db).open_for(client_id=client_id, lead_id=None) == []


async def test_api_errors_follow_the_stored_choice_then_the_browser(db: Database) -> None:
    """Not-found and login errors come in the browser's language, or in the language the manager chose."""
    async with running_app(db) as rig, rig.browser("anna") as anna:
        async with anna.get("/api/calls/pbx1:404.1") as r:
            assert (r.status, (await r.json())["error"]) == (404, "Такого звонка нет")
        async with anna.get("/api/calls/pbx1:404.1", headers={"Accept-Language": "en"}) as r:
            assert (await r.json()) == {"error": "No such call", "code": "messages.call_not_found"}
        async with anna.put("/api/me/locale", json={"locale": "en"}) as r:
            assert r.status == 200
        async with anna.get("/api/calls/pbx1:404.1", headers={"Accept-Language": "ru"}) as r:
            assert (await r.json())["error"] == "No such call"
        async with page_like_session(base_url=rig.base) as anonymous:
            async with anonymous.get("/api/calls", headers={"Accept-Language": "ru-RU"}) as r:
                assert (r.status, (await r.json())["error"]) == (401, "Войдите в систему")
            async with anonymous.post(
                "/api/login", json={"login": "anna", "password": "nope"}, headers={"Accept-Language": "en"}
            ) as r:
                assert (r.status, (await r.json())["error"]) == (401, "Wrong login or password")


async def test_field_problems_are_explained_in_the_managers_language(db: Database) -> None:
    """pydantic's field errors reach a Russian page in Russian (with plurals) and an English one in English."""
    async with running_app(db) as rig, rig.browser("vera") as vera:
        await add_call(db, linkedid="8.1", rang=("103",), answered_by="103")
        url = "/api/calls/pbx1:8.1/notes"
        async with vera.post(url, json={"topic": 5}) as r:
            body = await r.json()
        assert (r.status, body["error"]) == (400, "Проверьте поля: тема: должно быть текстом")
        assert body["fields"] == [
            {"field": "topic", "message": "тема: должно быть текстом", "type": "string_type"}
        ]
        async with vera.post(url, json={"comment": "x" * 5001}) as r:
            assert (await r.json())["error"] == f"Проверьте поля: комментарий: не длиннее 5{NBSP}000 символов"
        async with vera.post(
            url, json={"topic": "x", "is_admin": True}, headers={"Accept-Language": "en"}
        ) as r:
            assert (await r.json())["error"] == "Check the fields: is_admin: unknown field"
        async with vera.post(url, data=b"{", headers={"Content-Type": "application/json"}) as r:
            body = await r.json()
        assert (body["error"], body["code"]) == ("Тело запроса — не корректный JSON", "messages.json_invalid")
        async with vera.get("/api/calls?limit=0", headers={"Accept-Language": "en"}) as r:
            assert (await r.json())["error"] == "Check the query parameters: limit: at least 1"
