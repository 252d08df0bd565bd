"""A manager's sessions end with logout, a new password, deactivation or a lost extension — and so do their pages."""

from __future__ import annotations

import tempfile
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import aiohttp
import pytest

from crmtel.exchange.importbase import ImportKind
from crmtel.exchange.importer import import_file
from crmtel.push.web import SESSION_ENDED
from crmtel.store.db import Database
from crmtel.store.managers import ManagerRepository
from crmtel.store.sessions import SessionRepository
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


async def _import(rig: Rig, rows: str) -> None:
    """``crmtel import managers`` of a file with these rows (after the header)."""
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "managers.csv"
        path.write_text("login,name,extensions,active,password\n" + rows, encoding="utf-8")
        report = await import_file(rig.db, ImportKind.MANAGERS, path)
    assert report.updated >= 1, report


async def _import_extension_removed(rig: Rig, _browser: aiohttp.ClientSession) -> None:
    await _import(rig, "anna,Анна Смирнова,104,yes,\n")


async def _import_extension_moved(rig: Rig, _browser: aiohttp.ClientSession) -> None:
    await _import(rig, 'anna,Анна Смирнова,,yes,\nboris,Boris Orlov,"102,101",yes,\n')


async def _import_deactivated(rig: Rig, _browser: aiohttp.ClientSession) -> None:
    await _import(rig, "anna,Анна Смирнова,101,no,\n")


async def _import_passwd(rig: Rig, _browser: aiohttp.ClientSession) -> None:
    await _import(rig, "anna,Анна Смирнова,101,yes,a brand new one\n")


@pytest.mark.parametrize(
    "ending",
    [
        _logout,
        _passwd,
        _deactivate,
        _extension_taken,
        _import_extension_removed,
        _import_extension_moved,
        _import_deactivated,
        _import_passwd,
    ],
    ids=[
        "logout",
        "passwd",
        "deactivate",
        "extension",
        "import-extension-removed",
        "import-extension-moved",
        "import-deactivated",
        "import-passwd",
    ],
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


async def test_an_import_that_changes_nothing_of_hers_keeps_her_page(db: Database) -> None:
    """Re-importing Anna as she is (and renaming Boris) ends none of her sessions: her page still gets her calls."""
    async with running_app(db) as rig, rig.browser("anna") as anna:
        ws = await anna.ws_connect("/ws")
        assert (await receive(ws))["type"] == "hello"
        await _import(rig, "anna,Анна Смирнова,101,yes,\nboris,Boris Orlov Jr,102,yes,\n")
        await rig.notifier.publish(ring("101"))
        assert (await receive(ws))["extension"] == "101"
        async with anna.get("/api/me") as r:
            assert r.status == 200
        await ws.close()


@pytest.mark.parametrize(
    ("rows", "ends"),
    [
        ("anna,Анна Смирнова,104,yes,\n", True),
        ('anna,Анна Смирнова,,yes,\nboris,Boris Orlov,"102,101",yes,\n', True),
        ("anna,Анна Смирнова,101,no,\n", True),
        ("anna,Анна Смирнова,101,yes,a brand new one\n", True),
        ('anna,Анна Смирнова,"101,105",yes,\n', False),
        ("anna,Anna Smirnova,101,yes,\n", False),
    ],
    ids=["extension-removed", "extension-moved", "deactivated", "passwd", "extension-gained", "renamed"],
)
async def test_an_import_ends_the_sessions_a_manager_command_would_end_even_with_no_page_open(
    db: Database, rows: str, ends: bool
) -> None:
    """``crmtel import managers`` deletes Anna's session rows in its own transaction exactly when ``crmtel
    manager`` would (an extension taken away, deactivation, a new password) — no open page or running node needed."""
    async with running_app(db) as rig:
        sessions = SessionRepository(db)
        now = datetime.now(UTC)
        await sessions.save("anna-laptop", 1, now + timedelta(days=1), now)
        await sessions.save("boris-desk", 2, now + timedelta(days=1), now)
        await _import(rig, rows)
        assert await sessions.alive(["anna-laptop", "boris-desk"], now) == (
            {"boris-desk"} if ends else {"anna-laptop", "boris-desk"}
        )
