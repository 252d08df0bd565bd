"""`config check` for the browser phone: the address, the Asterisk version, and a real WebSocket handshake
against servers that lack /ws, TLS or the SIP subprotocol (and one that has them)."""

from __future__ import annotations

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from crmtel.config import Settings, WebphoneSettings
from crmtel.configcheck.origins import Origins
from crmtel.configcheck.webphone import address_problems, connect_problems, version_problem


def _settings(url: str) -> Settings:
    # No PBX: only the WebSocket part of the probe runs.
    return Settings.model_validate(
        {"ami": {"enabled": False}, "webphone": WebphoneSettings(enabled=True, ws_url=url)}
    )


@pytest.mark.parametrize(
    ("version", "bad"),
    [
        ("22.10.1", False),
        ("22.7.0", False),
        ("22.6.0", True),
        ("22.0.0-rc1", True),
        ("20.17.0", False),
        ("20.16.0", True),
        ("certified-20.7-cert5", True),
        ("21.12.0", True),
        ("18.26.4", True),
        ("23.0.0", False),
        ("GIT-master-abc", True),
    ],
)
def test_asterisk_versions_with_working_webrtc_audio(version: str, bad: bool) -> None:
    """22.7+ and 20.17+ carry the browser phone; 22.6/20.16 (broken audio), 21 and older do not."""
    assert (version_problem(version) is not None) is bad


def test_plain_ws_is_refused_away_from_the_loopback() -> None:
    """ws://pbx.example.com cannot be opened from an https page; ws://127.0.0.1 (a test) is fine."""
    (problem,) = address_problems(_settings("ws://pbx.example.com:8088/ws"), Origins())
    assert "wss://" in str(problem)
    assert address_problems(_settings("ws://127.0.0.1:8088/ws"), Origins()) == []
    assert address_problems(_settings("wss://pbx.example.com:8089/ws"), Origins()) == []


async def _serve(app: web.Application) -> TestServer:
    server = TestServer(app, host="127.0.0.1", port=0)
    await server.start_server()
    return server


async def test_a_server_without_ws_is_reported_as_missing_the_module() -> None:
    """HTTP answers but /ws is a 404: res_http_websocket is named."""
    server = await _serve(web.Application())
    try:
        url = f"ws://127.0.0.1:{server.port}/ws"
        (problem,) = await connect_problems(_settings(url), Origins())
        assert "res_http_websocket" in str(problem)
    finally:
        await server.close()


async def test_a_websocket_without_sip_is_reported_as_missing_the_transport() -> None:
    """/ws exists but does not agree to the "sip" subprotocol: res_pjsip_transport_websocket is named."""

    async def plain(request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        await ws.close()
        return ws

    app = web.Application()
    app.router.add_get("/ws", plain)
    server = await _serve(app)
    try:
        (problem,) = await connect_problems(_settings(f"ws://127.0.0.1:{server.port}/ws"), Origins())
        assert "res_pjsip_transport_websocket" in str(problem)
    finally:
        await server.close()


async def test_wss_to_a_plain_http_port_is_reported_as_no_tls() -> None:
    """wss:// to a server without TLS: the check says TLS is missing."""

    async def sip(request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse(protocols=("sip",))
        await ws.prepare(request)
        await ws.close()
        return ws

    app = web.Application()
    app.router.add_get("/ws", sip)
    server = await _serve(app)
    try:
        url = f"wss://127.0.0.1:{server.port}/ws"
        (problem,) = await connect_problems(_settings(url), Origins())
        assert "TLS" in str(problem)
        assert await connect_problems(_settings(f"ws://127.0.0.1:{server.port}/ws"), Origins()) == []
    finally:
        await server.close()


async def test_nothing_listening_is_reported() -> None:
    """A closed port: the check says it cannot reach the address."""
    (problem,) = await connect_problems(_settings("ws://127.0.0.1:9/ws"), Origins())
    assert "cannot reach" in str(problem)
