"""API tokens as an integration and an admin use them: made by `crmtel token`, sent as Authorization: Bearer,
acting as their manager within their scopes, refused with a clear JSON error when wrong, revoked, expired,
out of scope or their manager deactivated, and never kept in clear."""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp
import pytest
import structlog
from aiohttp.test_utils import TestServer
from sqlalchemy import select, text

from crmtel.apitokens.models import PREFIX, ROUTE_SCOPES, Scope
from crmtel.apitokens.service import ApiTokens
from crmtel.app import start
from crmtel.config import WebSettings
from crmtel.domain import Role
from crmtel.errors import CrmtelError
from crmtel.openapi.document import ROUTES, SESSION, document
from crmtel.push import web as push_web
from crmtel.push.hub import Hub
from crmtel.push.web import create_app
from crmtel.store.api_tokens import ApiTokenRepository
from crmtel.store.db import Database
from crmtel.store.managers import ManagerRepository
from crmtel.store.models import ApiTokenRow
from tests.fixtures.daemon import app_settings
from tests.fixtures.openapi_check import ANSWERS
from tests.integration.test_cli_admin import run
from tests.integration.test_crm_api import crm_app, logged_in


async def _create(
    database_url: str,
    capsys: pytest.CaptureFixture[str],
    manager: str,
    *scopes: str,
    extra: tuple[str, ...] = (),
) -> str:
    argv = ["token", "create", "--manager", manager, *(a for s in scopes for a in ("--scope", s)), *extra]
    assert await run(argv, database_url) == 0
    out = capsys.readouterr().out.strip().splitlines()[-1]  # (logs of the app may come before it)
    assert re.fullmatch(r"crmtel_[A-Za-z0-9_-]{43}", out), out
    return out


@asynccontextmanager
async def _second_node(database_url: str) -> AsyncIterator[str]:
    """Another node's web app on the same database, with its own connections and its own memory."""
    other_db = Database(database_url)
    server = TestServer(create_app(WebSettings(port=0), db=other_db, hub=Hub()), host="127.0.0.1", port=0)
    await server.start_server()
    try:
        yield str(server.make_url("/"))
    finally:
        await server.close()
        await other_db.dispose()


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def _call(
    http: aiohttp.ClientSession, method: str, url: str, token: str, body: Any = None
) -> tuple[int, Any, aiohttp.ClientResponse]:
    async with http.request(method, url, headers=_bearer(token), json=body) as r:
        return r.status, await r.json(), r


async def test_a_token_acts_as_its_manager_within_scope_and_is_stored_only_as_a_hash(
    db: Database, database_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """Anna's crm:read token lists Anna's clients only, Boris's client is a 404 like a missing one, its last use
    is recorded, and the table holds SHA-256 of the token and its first four characters, never the token."""
    async with (
        crm_app(db) as (base, ids),
        aiohttp.ClientSession(base_url=base, middlewares=(ANSWERS.middleware(),)) as http,
    ):
        token = await _create(database_url, capsys, "anna", "crm:read", extra=("--name", "zapier"))
        status, body, _ = await _call(http, "GET", "/api/clients", token)
        assert status == 200, body
        names = {item["name"] for item in body["items"]}
        assert "ИП Петров" in names
        assert "ООО «Вектор»" not in names
        status, body, _ = await _call(http, "GET", f"/api/clients/{ids['boris_client']}", token)
        assert status == 404, body
        status, body, _ = await _call(http, "GET", f"/api/clients/{ids['anna_client']}", token)
        assert status == 200
        assert body["name"] == "ИП Петров"
        status, me, _ = await _call(http, "GET", "/api/me", token)
        assert status == 200
        assert me["login"] == "anna"
        assert me["scopes"] == ["crm:read"]
        assert "csrf_token" not in me

    async with db.session() as session:
        rows = (await session.execute(select(ApiTokenRow))).scalars().all()
        raw = (await session.execute(text("SELECT * FROM api_tokens"))).all()
    assert len(rows) == 1
    assert rows[0].token_hash == hashlib.sha256(token.encode()).hexdigest()
    assert rows[0].hint == token[: len(PREFIX) + 4]
    assert rows[0].last_used_at is not None
    assert rows[0].name == "zapier"
    secret = token[len(PREFIX) :]
    assert all(secret not in str(v) and secret[:20] not in str(v) for v in raw[0]), raw

    assert await run(["token", "list", "--format", "json"], database_url) == 0
    (described,) = json.loads(capsys.readouterr().out)
    assert described["manager"] == "anna"
    assert described["scopes"] == ["crm:read"]
    assert described["state"] == "active"
    assert described["hint"] == token[: len(PREFIX) + 4]
    assert described["last_used_at"] is not None
    assert secret[:20] not in json.dumps(described)
    assert await run(["token", "list"], database_url) == 0
    listed = capsys.readouterr().out
    assert "anna" in listed
    assert "zapier" in listed
    assert "crm:read" in listed
    assert "active" in listed
    assert secret not in listed
    assert secret[:20] not in listed


async def test_revoked_wrong_expired_and_malformed_tokens_are_401_with_a_clear_error(
    db: Database, database_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """A revoked token is refused on the very next request on every node (the check reads the store: a second
    node with its own connections refuses it too); a made-up, an expired, a malformed and an empty one are 401
    with their own code and WWW-Authenticate: Bearer."""
    async with (
        crm_app(db) as (base, _ids),
        _second_node(database_url) as base_b,
        aiohttp.ClientSession(base_url=base, middlewares=(ANSWERS.middleware(),)) as http,
        aiohttp.ClientSession(base_url=base_b) as http_b,
    ):
        token = await _create(database_url, capsys, "anna", "crm:read")
        assert (await _call(http, "GET", "/api/clients", token))[0] == 200
        assert (await _call(http_b, "GET", "/api/me", token))[0] == 200
        token_id = (await ApiTokenRepository(db).list())[0].id
        assert await run(["token", "revoke", str(token_id)], database_url) == 0
        status, body, response = await _call(http, "GET", "/api/clients", token)
        assert (status, body["code"]) == (401, "messages.token_revoked"), body
        status_b, body_b, _ = await _call(http_b, "GET", "/api/me", token)
        assert (status_b, body_b["code"]) == (401, "messages.token_revoked"), body_b
        assert body["error"]
        assert response.headers["WWW-Authenticate"].startswith("Bearer")
        with pytest.raises(CrmtelError, match="no active token"):
            await run(["token", "revoke", str(token_id)], database_url)

        made_up = PREFIX + "A" * 43
        status, body, _ = await _call(http, "GET", "/api/clients", made_up)
        assert (status, body["code"]) == (401, "messages.token_invalid")
        for malformed in ("", "x", token + "x", "crmtel_" + "ä" * 43, "Z" * 5000):
            async with http.get("/api/clients", headers={"Authorization": f"Bearer {malformed}"}) as r:
                assert r.status == 401, malformed
                assert (await r.json())["code"] == "messages.token_invalid"

        manager = await ManagerRepository(db).by_login("anna")
        assert manager is not None
        past = datetime.now(UTC) - timedelta(days=400)
        expired = await ApiTokens(ApiTokenRepository(db), clock=lambda: past).issue(
            manager.id, "old", frozenset({Scope.CRM_READ}), past + timedelta(days=30)
        )
        status, body, _ = await _call(http, "GET", "/api/clients", expired.secret)
        assert (status, body["code"]) == (401, "messages.token_expired")
        async with http.get(
            "/api/clients", headers={**_bearer(expired.secret), "Accept-Language": "ru"}
        ) as r:
            assert (await r.json())["error"] == "Срок действия API-токена истёк"


async def test_scopes_limit_routes_and_writes_need_no_csrf_but_cookies_grant_nothing(
    db: Database, database_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """A crm:read token cannot write (403 naming crm:write) nor read calls; a crm:write one writes without a CSRF
    token, even with a foreign Origin; page-only routes are 403 for any token; a logged-in session's cookie
    sent along with a read-only token does not let the token write."""
    async with crm_app(db) as (base, _ids), logged_in(base, "anna") as page:
        reader = await _create(database_url, capsys, "anna", "crm:read")
        writer = await _create(database_url, capsys, "anna", "crm:write,crm:read")
        status, body, response = await _call(page, "POST", "/api/clients", reader, {"name": "Новый"})
        assert (status, body["code"], body["scope"]) == (403, "messages.token_scope", "crm:write"), body
        assert "insufficient_scope" in response.headers["WWW-Authenticate"]
        assert "crm:write" in body["error"]
        status, body, _ = await _call(page, "GET", "/api/calls", reader)
        assert (status, body["scope"]) == (403, "calls:read")
        status, body, _ = await _call(page, "PUT", "/api/me/locale", writer, {"locale": "en"})
        assert (status, body["code"]) == (403, "messages.token_route")

        async with (
            aiohttp.ClientSession(base_url=base, middlewares=(ANSWERS.middleware(),)) as bare,
            bare.post(
                "/api/clients",
                json={"name": "ООО «Токен»", "phones": [{"number": "+74957654321"}]},
                headers={**_bearer(writer), "Origin": "https://elsewhere.example"},
            ) as r,
        ):
            assert r.status in (200, 201), await r.text()
            created = await r.json()
        status, card, _ = await _call(page, "GET", f"/api/clients/{created['id']}", writer)
        anna = await ManagerRepository(db).by_login("anna")
        assert anna is not None
        assert status == 200
        assert card["manager_id"] == anna.id

        # The page's own session still works as before; the bearer header decides alone when present.
        async with page.get("/api/me") as r:
            assert r.status == 200
            assert "csrf_token" in await r.json()
        async with page.post("/api/clients", json={"name": "Через страницу"}, headers=_bearer(reader)) as r:
            assert r.status == 403


async def test_a_deactivated_managers_tokens_stop_at_once(
    db: Database, database_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """`crmtel manager deactivate` stops the manager's tokens on the next request; a new one cannot be made."""
    async with (
        crm_app(db) as (base, _ids),
        aiohttp.ClientSession(base_url=base, middlewares=(ANSWERS.middleware(),)) as http,
    ):
        token = await _create(database_url, capsys, "boris", "crm:read")
        assert (await _call(http, "GET", "/api/clients", token))[0] == 200
        assert await run(["manager", "deactivate", "boris"], database_url) == 0
        status, body, _ = await _call(http, "GET", "/api/clients", token)
        assert (status, body["code"]) == (401, "messages.token_manager_inactive")
    for login, scope, why in (
        ("boris", "crm:read", "deactivated"),
        ("anna", "nope", "unknown scope"),
        ("ghost", "crm:read", "no manager"),
    ):
        with pytest.raises(CrmtelError, match=why):
            await run(["token", "create", "--manager", login, "--scope", scope], database_url)


async def test_the_token_never_reaches_the_logs(
    db: Database,
    database_url: str,
    capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Accepted, refused and revoked requests log nothing that contains the token or its secret part."""
    async with (
        crm_app(db) as (base, _ids),
        aiohttp.ClientSession(base_url=base, middlewares=(ANSWERS.middleware(),)) as http,
    ):
        token = await _create(database_url, capsys, "anna", "crm:read")
        with structlog.testing.capture_logs() as events:
            # crmtel's loggers are cached on first use (crmtel.logging): one an earlier test in this process
            # already used would log past the capture, so the module's logger is taken afresh inside it.
            monkeypatch.setattr(push_web, "log", structlog.get_logger("crmtel.push.web"))
            await _call(http, "GET", "/api/clients", token)
            await _call(http, "POST", "/api/clients", token, {"name": "x"})
            await _call(http, "GET", "/api/clients", token[:-1] + ("A" if token[-1] != "A" else "B"))
            assert await run(["token", "revoke", "1"], database_url) == 0
            await _call(http, "GET", "/api/clients", token)
    secret = token[len(PREFIX) :]
    assert any(e.get("event") == "push.token_refused" for e in events)
    assert secret[:12] not in repr(events)
    assert secret[:12] not in caplog.text
    captured = capsys.readouterr()
    assert secret[:12] not in captured.out + captured.err


def test_every_session_route_has_a_decision_for_tokens_and_the_document_says_it() -> None:
    """Each scope-bearing route is a real session route; the OpenAPI document lists api_token with that scope."""
    session_routes = {key for key, (_tag, _summary, who) in ROUTES.items() if who == SESSION}
    assert set(ROUTE_SCOPES) <= session_routes
    paths = document()["paths"]
    for (method, path), scope in ROUTE_SCOPES.items():
        security = paths[path][method.lower()]["security"]
        assert {"api_token": [] if scope == "any" else [scope]} in security, (method, path)
    for method, path in session_routes - set(ROUTE_SCOPES):
        assert all("api_token" not in req for req in paths[path][method.lower()]["security"])
    assert {s.value for s in Scope} == {s for s in ROUTE_SCOPES.values() if s != "any"}


async def test_a_reports_token_reads_the_reports_of_the_running_crmtel(
    db: Database, database_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """On crmtel as `crmtel run` builds it: a reports:read token gets a head's report as JSON and the board's
    data; a crm:read token is refused there (403 naming reports:read) but lists clients."""
    settings = app_settings(
        database_url,
    )
    async with start(settings) as running, aiohttp.ClientSession(base_url=running.web_url) as http:
        await ManagerRepository(db).save(login="head", name="Head", role=Role.HEAD)
        reports = await _create(database_url, capsys, "head", "reports:read")
        crm = await _create(database_url, capsys, "head", "crm:read")
        async with http.get("/reports/calls-vs-deals.json", headers=_bearer(reports)) as r:
            assert r.status == 200, await r.text()
            assert r.content_type == "application/json"
        async with http.get("/api/board", headers=_bearer(reports)) as r:
            assert r.status == 200, await r.text()
        async with http.get("/reports/queues.csv", headers=_bearer(crm)) as r:
            assert r.status == 403
            assert (await r.json())["scope"] == "reports:read"
        async with http.get("/api/clients", headers=_bearer(crm)) as r:
            assert r.status == 200
