"""Malformed requests over real HTTP get a JSON 4xx naming the problem, never a 500 (issue 13)."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from crmtel.app import Running, start
from crmtel.config import load_settings
from crmtel.store.db import Database
from crmtel.store.notes import NoteRepository
from tests.fixtures.csrf import page_like_session
from tests.integration.test_web_app import PASSWORD, add_call, running_app, seed_managers

NOTES = "/api/calls/pbx1:2.2/notes"
# English messages (the default language is Russian; the browser's language picks English here).
JSON = {"Content-Type": "application/json", "Accept-Language": "en"}


async def _post_raw(session: aiohttp.ClientSession, url: str, raw: bytes) -> tuple[int, dict[str, Any]]:
    async with session.post(url, data=raw, headers=JSON) as r:
        assert r.content_type == "application/json", await r.text()
        return r.status, await r.json()


@pytest.mark.parametrize(
    ("raw", "status", "says"),
    [
        (b'{"comment": ' + b"[" * 5000 + b"]" * 5000 + b"}", 400, "not valid JSON"),
        (b'{"comment": ' + b"[" * 17 + b"]" * 17 + b"}", 400, "nested deeper than 16"),
        (b'{"comment": "' + b"x" * 70_000 + b'"}', 413, "too large"),
        (b'{"comment": "\\ud800 lone surrogate"}', 400, "not valid JSON"),
        (b'{"comment": "\xff\xfe invalid utf-8"}', 400, "not valid JSON"),
        (b'{"comment": NaN}', 400, "not valid JSON"),
        (b'{"topic": 5}', 400, "topic"),
        (b'{"topic": "x", "is_admin": true}', 400, "is_admin"),
        (b'{"comment": "' + b"x" * 5001 + b'"}', 400, "comment"),
        (b'["topic"]', 400, "JSON object"),
        (b"{}", 400, "Write a topic"),
    ],
    ids=[
        "deep-5000",
        "deep-17",
        "too-big",
        "lone-surrogate",
        "bad-utf8",
        "nan",
        "wrong-type",
        "unknown-field",
        "too-long",
        "not-object",
        "empty",
    ],
)
async def test_a_malformed_note_is_a_json_4xx_and_stores_nothing(
    db: Database, raw: bytes, status: int, says: str
) -> None:
    """Too deep, too big, undecodable, mistyped or unknown-field bodies each get their own 4xx and message."""
    async with running_app(db) as rig, rig.browser("vera") as vera:
        call = await add_call(db, linkedid="2.2", rang=("103",), answered_by="103")
        got, body = await _post_raw(vera, NOTES, raw)
        assert got == status, body
        assert says in body["error"]
        assert await NoteRepository(db).for_call(call) == []


async def test_field_errors_name_the_field_without_echoing_the_input(db: Database) -> None:
    """A mistyped field is listed by name with pydantic's message; the hostile value is not sent back."""
    async with running_app(db) as rig, rig.browser("vera") as vera:
        await add_call(db, linkedid="2.2", rang=("103",), answered_by="103")
        got, body = await _post_raw(vera, NOTES, b'{"topic": ["<script>"], "x": "<script>"}')
        assert got == 400
        assert {f["field"] for f in body["fields"]} == {"topic", "x"}
        assert "<script>" not in str(body)


@pytest.mark.parametrize(
    "query",
    [
        "before=100000000000000000000000000000",
        "before=-1",
        "before=abc",
        "limit=0",
        "limit=1e9",
        "before=1&before=2",
        "sort=name",
        "before=" + "9" * 5000,
    ],
)
async def test_out_of_range_or_unknown_query_values_are_400(db: Database, query: str) -> None:
    """``?before=`` beyond 64 bits, non-numbers, bad limits, repeated or unknown keys: 400, not OverflowError."""
    async with (
        running_app(db) as rig,
        rig.browser("vera") as vera,
        vera.get(f"/api/calls?{query}", headers={"Accept-Language": "en"}) as r,
    ):
        assert r.status == 400
        assert "query" in (await r.json())["error"]


@pytest.mark.parametrize(
    "body",
    [
        {"due_at": "2026-13-45T10:00:00+03:00"},
        {"due_at": "2026-12-01T10:00:00"},
        {"due_at": "9999-12-31T23:59:59+00:00"},
        {"due_at": 17},
        {"due_minutes": True},
        {"due_minutes": 10**30},
        {"due_minutes": "soon"},
    ],
)
async def test_bad_dates_and_numbers_for_a_callback_are_400(db: Database, body: dict[str, Any]) -> None:
    """Impossible, zone-less, far-future or mistyped due dates and minute counts are refused with 400."""
    async with running_app(db) as rig, rig.browser("vera") as vera:
        await add_call(db, linkedid="2.2", rang=("103",), answered_by="103")
        async with vera.post("/api/calls/pbx1:2.2/tasks", json=body, headers={"Accept-Language": "en"}) as r:
            assert r.status == 400, await r.text()
            assert "due" in (await r.json())["error"]


@pytest.mark.parametrize("amount", ["1e999", "NaN", "-1", "10000000000000", "twelve", [1]])
async def test_bad_deal_amounts_are_400(db: Database, amount: object) -> None:
    """Infinite, NaN, negative, too large, non-numeric or mistyped amounts are refused with 400."""
    async with running_app(db) as rig, rig.browser("vera") as vera:
        await add_call(db, linkedid="2.2", rang=("103",), answered_by="103")
        async with vera.post("/api/calls/pbx1:2.2/deals", json={"title": "t", "amount": amount}) as r:
            assert r.status == 400, await r.text()
            assert [f["field"] for f in (await r.json())["fields"]] == ["amount"]


async def test_malformed_logins_are_400_and_a_good_one_still_works(db: Database) -> None:
    """Login bodies with wrong types, lone surrogates or extra fields are 400; a correct login then succeeds."""
    async with running_app(db) as rig, rig.browser() as anon:
        for raw in (
            b'{"login": ["vera"], "password": "x"}',
            b'{"login": "\\udfff", "password": "x"}',
            b'{"login": "vera", "password": "x", "remember": 1}',
            b'{"login": "vera"}',
        ):
            got, body = await _post_raw(anon, "/api/login", raw)
            assert got == 400, (raw, body)
        async with anon.post("/api/login", json={"login": "vera", "password": PASSWORD}) as r:
            assert r.status == 200


# --- every route of the full app, as the composition root mounts it ---------------------------------------

HOSTILE_BODIES = [
    b"[" * 100_000,
    b'{"a": "\\ud800"}',
    b'{"title": "\\udc00", "name": "\\ud83d", "login": "\\ud800", "password": "\\ud800"}',
    b"\xff\xfe\x00garbage",
    b'{"amount": 1e999, "due_at": "0000-00-00", "due_minutes": -1, "limit": 99999999999999999999}',
    b"9" * 5000,
]
HOSTILE_QUERY = (
    "before=99999999999999999999999999&limit=-5&from=9999-12-31&to=0001-01-01&caller=%ED%A0%80"
    "&did=%00&format=%FF&manager=%F0%9F&team=" + "x" * 2000
)
PATH_VALUES = ["pbx1:2.2", "%ED%A0%80", "9" * 40, "..%2F..%2Fetc%2Fpasswd"]


@pytest.fixture
async def daemon(database_url: str, tmp_path: Path) -> AsyncIterator[Running]:
    settings = load_settings(
        database_url=database_url,
        ami={"enabled": False},
        web={"port": 0, "recordings_dir": str(tmp_path)},
        routing={"agi_port": 0},
    )
    async with start(settings) as running:
        yield running


def _concrete_paths(app: web.Application) -> list[tuple[str, str]]:
    found: list[tuple[str, str]] = []
    for route in app.router.routes():
        info = route.resource.get_info() if route.resource is not None else {}
        template = info.get("formatter") or info.get("path") or info.get("prefix")
        if not isinstance(template, str) or template in ("/api/logout", "/api/login"):
            continue
        for value in PATH_VALUES if "{" in template else [""]:
            found.append((route.method, re.sub(r"\{[^}]+\}", value, template)))
    return found


async def test_no_route_of_the_running_app_answers_hostile_input_with_a_500(
    daemon: Running, db: Database
) -> None:
    """Every mounted route, given hostile bodies, queries and path values, answers below 500."""
    await seed_managers(db)
    await add_call(db, linkedid="2.2", rang=("103",), answered_by="103")
    paths = _concrete_paths(daemon.app)
    assert len(paths) > 10
    failures: list[str] = []
    async with page_like_session(base_url=daemon.web_url, cookie_jar=aiohttp.CookieJar(unsafe=True)) as s:
        async with s.post("/api/login", json={"login": "head", "password": PASSWORD}) as r:
            assert r.status == 200
        for method, path in paths:
            if method == "*":
                continue
            bodies = HOSTILE_BODIES if method in ("POST", "PUT", "PATCH") else [b""]
            for raw in bodies:
                for query in ("", HOSTILE_QUERY):
                    url = f"{path}?{query}" if query else path
                    async with s.request(method, url, data=raw, headers=JSON) as r:
                        await r.read()
                        if r.status >= 500:
                            failures.append(f"{method} {url[:80]} {raw[:30]!r} -> {r.status}")
    assert failures == []
