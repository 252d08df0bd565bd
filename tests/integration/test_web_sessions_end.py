"""A manager's sessions end with logout, a new password, deactivation or a lost extension — and so do their pages."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import aiohttp
import pytest

from crmtel.push.web import SESSION_ENDED
from crmtel.store.db import Database
from crmtel.store.managers import ManagerRepository
from tests.integration.test_web_app import Rig, nothing_arrives, receive, running_app
from tests.unit.test_push_live import ring

Ending = Callable[[Rig, aiohttp.ClientSession], Awaitable[None]]


async def _logout(rig: Rig, _browser: aiohttp.ClientSession) -> None:
    token = next(c.value for c in _browser.cookie_jar if c.key == "crmtel_session")
    # Another tab (another client, same cookie) logs out.
    async with rig.browser() as other:
        other.cookie_jar.update_cookies({"crmtel_session": token})
        async with other.get("/api/me") as r:
            csrf = (await r.json())["csrf_token"]
        async with other.post("/api/logout", headers={"X-CSRF-Token": csrf}) as r:
            assert r.status == 200


async def _passwd(rig: Rig, _browser: aiohttp.ClientSession) -> None:
    assert await ManagerRepository(rig.db).set_password("anna", "a brand new one")


async def _deactivate(rig: Rig, _browser: aiohttp.ClientSession) -> None:
    assert await ManagerRepository(rig.db).set_active("anna", False)


async def _extension_taken(rig: Rig, _browser: aiohttp.ClientSession) -> None:
    await ManagerRepository(rig.db).save(login="boris", name="Boris Orlov", extensions=("102", "101"))


@pytest.mark.parametrize(
    "ending",
    [_logout, _passwd, _deactivate, _extension_taken],
    ids=["logout", "passwd", "deactivate", "extension"],
)
async def test_an_ended_session_gets_401_and_its_open_websocket_is_closed(
    ending: Ending, db: Database
) -> None:
    """The old cookie gets 401 and Anna's open page is closed by the session check (code 4401), then receives nothing.

    How soon is the check's interval ([web] session_check_seconds, 0.5 s): the cluster test prints the figure; a test
    waits on the close itself, never on a wall-clock budget a loaded machine can miss.
    """
    async with running_app(db) as rig, rig.browser("anna") as anna:
        ws = await anna.ws_connect("/ws")
        assert (await receive(ws))["type"] == "hello"
        await ending(rig, anna)
        msg = await ws.receive(timeout=30.0)
        assert msg.type is aiohttp.WSMsgType.CLOSE, msg
        assert msg.data == SESSION_ENDED
        await rig.notifier.publish(ring("101"))
        await rig.notifier.idle()
        assert rig.hub.connections == 0
        async with anna.get("/api/me") as r:
            assert r.status == 401


async def test_a_gained_extension_reconnects_the_page_and_its_calls_arrive(db: Database) -> None:
    """Boris is given 101 as well: his page is asked to reconnect, and after it does a ring at 101 reaches him."""
    async with running_app(db) as rig, rig.browser("boris") as boris:
        ws = await boris.ws_connect("/ws")
        assert (await receive(ws))["type"] == "hello"
        await ManagerRepository(db).save(login="boris", name="Boris Orlov", extensions=("102", "103"))
        msg = await ws.receive(timeout=30.0)
        assert msg.type is aiohttp.WSMsgType.CLOSE
        assert msg.data == aiohttp.WSCloseCode.TRY_AGAIN_LATER
        async with boris.get("/api/me") as r:
            assert r.status == 200, "gaining an extension ends no session"
        ws = await boris.ws_connect("/ws")
        hello = await receive(ws)
        assert hello["manager"]["extensions"] == ["102", "103"]
        await rig.notifier.publish(ring("103"))
        assert (await receive(ws))["extension"] == "103"
        assert await nothing_arrives(ws)
        await ws.close()
