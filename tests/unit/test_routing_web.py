"""HTTP ``GET /route``: who may ask, and the JSON and text answers."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from urllib.parse import parse_qs

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from pydantic import SecretStr

from crmtel.routing.models import Decision, RouteKind, RuleCheck
from crmtel.routing.web import create_app

Client = TestClient[web.Request, web.Application]

DECISION = Decision(
    kind=RouteKind.EXTENSION,
    target="101",
    fallback_queue="wholesale",
    reason="personal manager Анна (ext 101) & co",
    rules=(RuleCheck("personal manager", True, "Анна"),),
    caller_name="ООО «Ромашка»",
)


@dataclass
class FakeRouter:
    decision: Decision | None = DECISION
    asked: list[tuple[str | None, str | None]] = field(default_factory=list)

    async def route(self, caller: str | None, did: str | None) -> Decision | None:
        self.asked.append((caller, did))
        return self.decision


@pytest.fixture
def router() -> FakeRouter:
    return FakeRouter()


@pytest.fixture
async def client(router: FakeRouter) -> AsyncIterator[Client]:
    app = create_app(router, SecretStr("s3cret"))
    async with TestClient(TestServer(app, host="127.0.0.1")) as c:
        yield c


async def test_local_request_gets_json_decision(client: Client, router: FakeRouter) -> None:
    """A request from localhost gets the decision as JSON, caller and DID passed through."""
    resp = await client.get("/route", params={"caller": "+79161110001", "did": "4951234567"})
    assert resp.status == 200
    body = await resp.json()
    assert (body["kind"], body["target"], body["fallback_queue"]) == ("extension", "101", "wholesale")
    assert body["rules"] == [{"rule": "personal manager", "applied": True, "detail": "Анна"}]
    assert router.asked == [("+79161110001", "4951234567")]


async def test_text_format_is_hash_compatible(client: Client) -> None:
    """format=text answers URL-encoded key=value pairs (CURLOPT(hashcompat) for HASH())."""
    resp = await client.get("/route", params={"caller": "1", "format": "text"})
    body = await resp.text()
    assert "+" not in body  # spaces are %20: Asterisk's hashcompat=yes does not decode '+'
    fields = parse_qs(body)
    assert fields["kind"] == ["extension"]
    assert fields["reason"] == ["personal manager Анна (ext 101) & co"]
    assert fields["caller_name"] == ["ООО «Ромашка»"]


async def test_proxied_request_needs_token(client: Client, router: FakeRouter) -> None:
    """Through a reverse proxy the socket is local, but without a token the request is refused."""
    resp = await client.get("/route", params={"caller": "1"}, headers={"X-Forwarded-For": "203.0.113.9"})
    assert resp.status == 401
    assert router.asked == []


@pytest.mark.parametrize(
    ("header", "status"),
    [("Bearer s3cret", 200), ("Bearer wrong", 401), ("Basic s3cret", 401), ("bearer s3cret", 200), ("", 401)],
)
async def test_bearer_token(client: Client, header: str, status: int) -> None:
    """A non-local request is answered only with the exact bearer token."""
    headers = {"Forwarded": "for=203.0.113.9"}
    if header:
        headers["Authorization"] = header
    resp = await client.get("/route", params={"caller": "1"}, headers=headers)
    assert resp.status == status


async def test_no_token_configured_refuses_remote(router: FakeRouter) -> None:
    """With no token configured, only local requests are answered (an empty token never matches)."""
    async with TestClient(TestServer(create_app(router, SecretStr("")), host="127.0.0.1")) as c:
        resp = await c.get("/route", headers={"X-Real-IP": "10.0.0.1", "Authorization": "Bearer "})
        assert resp.status == 401


async def test_no_decision_is_503(client: Client, router: FakeRouter) -> None:
    """When the service fails open the answer is 503 (empty text body) so the dialplan uses its default."""
    router.decision = None
    text = await client.get("/route", params={"caller": "1", "format": "text"})
    assert (text.status, await text.text()) == (503, "")
    js = await client.get("/route", params={"caller": "1"})
    assert js.status == 503


async def test_overlong_parameters_rejected(client: Client, router: FakeRouter) -> None:
    """Overlong caller or DID values are a 400, never passed on."""
    resp = await client.get("/route", params={"caller": "9" * 65})
    assert resp.status == 400
    assert router.asked == []
