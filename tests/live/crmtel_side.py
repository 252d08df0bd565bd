"""The crmtel side of the live tier: its config, its CRM data, and what it stored and pushed.

The one module of the tier that imports crmtel's own packages (store repositories, the domain types), so a move
inside crmtel is followed here once. crmtel itself always runs as ``crmtel run`` in a process of its own.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import aiohttp

from crmtel.config import WebphoneSettings
from crmtel.domain import CallRecord, QueueVisit
from crmtel.store.callbacks import CallbackRepository, TaskView
from crmtel.store.calls import CallRepository
from crmtel.store.db import Database
from crmtel.store.managers import ManagerRepository
from crmtel.store.parties import NewClient, PartyRepository
from crmtel.webphone.models import Endpoint, SipCredential
from crmtel.webphone.service import digest_ha1, pjsip_endpoints
from tests.fixtures.daemon import write_config

__all__ = ["CallRecord", "QueueVisit", "TaskView"]


@dataclass(frozen=True, slots=True)
class Staff:
    """A manager and the desk phone (extension) they answer; ``password`` only for those who log in."""

    login: str
    name: str
    extension: str
    password: str | None = None
    # Their mobile (E.164), as `crmtel manager mobile` stores it.
    mobile: str | None = None


@dataclass(frozen=True, slots=True)
class Customer:
    """A CRM client calling in: a personal manager (login) or none, last month's turnover or none."""

    name: str
    phone: str
    manager: str | None = None
    turnover: Decimal | None = None


def freepbx_webphone(extension: str, name: str, secret: str, realm: str = "crmtel") -> tuple[str, str]:
    """crmtel's generated FreePBX endpoints file for one manager, with a secret the test knows (a sync draws
    and forgets it), and the digest hash the page gets (what JsSIP registers with)."""
    device = "99" + extension
    ha1 = digest_ha1(device, realm, secret)
    settings = WebphoneSettings(enabled=True, ws_url="ws://127.0.0.1:8088/ws", realm=realm)
    endpoint = Endpoint(SipCredential(1, device, realm, ha1), extension, name, "manager")
    return pjsip_endpoints([endpoint], settings, flavour="freepbx"), ha1


def last_month(today: date) -> date:
    """The first day of the month before ``today`` (turnover counts for last month only)."""
    first = today.replace(day=1)
    return (
        first.replace(year=first.year - 1, month=12)
        if first.month == 1
        else first.replace(month=first.month - 1)
    )


async def seed(database_url: str, staff: Sequence[Staff], customers: Sequence[Customer]) -> None:
    """Managers and clients in crmtel's store, as an admin's import would leave them."""
    db = Database(database_url)
    try:
        managers = ManagerRepository(db)
        ids: dict[str, int] = {}
        for person in staff:
            saved = await managers.save(
                login=person.login, name=person.name, extensions=(person.extension,), password=person.password
            )
            ids[person.login] = saved.id
            if person.mobile is not None:
                await managers.set_mobile(saved.id, person.mobile)
        parties = PartyRepository(db, "RU")
        month = last_month(datetime.now(UTC).date())
        for customer in customers:
            await parties.add_client(
                NewClient(
                    name=customer.name,
                    phones=(customer.phone,),
                    manager_id=ids[customer.manager] if customer.manager else None,
                    turnover=customer.turnover,
                    turnover_month=month if customer.turnover is not None else None,
                )
            )
    finally:
        await db.dispose()


# [ami.originate] ring_seconds of a rig: how long click-to-call rings the manager's phone.
ORIGINATE_RING_SECONDS = 8


def crmtel_config(
    path: Path,
    *,
    database_url: str,
    ami_port: int,
    ami_secret: str,
    web_port: int,
    agi_port: int,
    master_csv: Path,
    recordings_dir: Path,
    default_queue: str,
    dids: Mapping[str, str],
    queue_owners: Mapping[str, str],
    default_owner: str | None,
    ring_seconds: int = 5,
    originate_ring_seconds: int = ORIGINATE_RING_SECONDS,
    webphone: tuple[str, Path] | None = None,
    mobile: Mapping[str, object] | None = None,
    outgoing_callerid: str | None = None,
) -> Path:
    """crmtel's TOML config for a live PBX (what an admin writes into /etc/crmtel/crmtel.toml)."""
    ami: dict[str, object] = {
        "name": "pbx1",
        "host": "127.0.0.1",
        "port": ami_port,
        "username": "crmtel",
        "secret": ami_secret,
        "auth": "md5",
        "ping_interval": 2.0,
        "ping_timeout": 2.0,
        "reconnect_min": 0.2,
        "reconnect_max": 1.0,
        "cdr": f"csv:{master_csv}",
        # cdr_timezone left out: the PBX runs on this host, in its zone (as the config's comment says).
        "cdr_margin": 120.0,
    }
    lines_extra: list[str] = []
    sections: dict[str, Any] = {
        "ami": ami,
        "routing": {
            "agi_host": "127.0.0.1",
            "agi_port": agi_port,
            "default_queue": default_queue,
            "ring_seconds": ring_seconds,
            "timezone": "Europe/Moscow",
        },
        "web": {"host": "127.0.0.1", "port": web_port, "recordings_dir": str(recordings_dir)},
        "log": {"level": "info", "json_output": False},
        "i18n": {"language": "en"},
    }
    if mobile:
        sections["mobile"] = dict(mobile)
    calls: dict[str, object] = {"callback_due_minutes": 30}
    if default_owner:
        calls["default_owner"] = default_owner
    sections["calls"] = calls
    write_config(path, sections, database_url=database_url)
    # Nested tables write_config does not make: click-to-call, queue owners, per-DID default queues.
    lines_extra.append("[ami.originate]")
    lines_extra.append('context = "crmtel-originate"')
    lines_extra.append(f"ring_seconds = {originate_ring_seconds}")
    lines_extra.append('dial_rules = [{ prefix = "+7", replace = "8" }]')
    if outgoing_callerid:
        lines_extra.append(f'outgoing_callerid = "{outgoing_callerid}"')
    if queue_owners:
        lines_extra.append("[calls.queue_owners]")
        lines_extra += [f'{queue} = "{login}"' for queue, login in queue_owners.items()]
    for did, queue in dids.items():
        lines_extra.append(f"[routing.dids.{did}]")
        lines_extra.append(f'default_queue = "{queue}"')
    if webphone is not None:
        # The browser phone: the PBX's ws:// on the loopback, endpoints written into the PBX's etc/ (the test
        # reloads res_pjsip itself, as deploy/systemd/crmtel-webphone.path does on a server).
        ws_url, endpoints_file = webphone
        lines_extra += [
            "[webphone]",
            "enabled = true",
            f'ws_url = "{ws_url}"',
            f'endpoints_file = "{endpoints_file}"',
            "reload = false",
            "register_seconds = 60",
        ]
    with path.open("a", encoding="utf-8") as out:
        out.write("\n".join(lines_extra) + "\n")
    return path


async def stored_call(database_url: str, pbx: str, linkedid: str) -> CallRecord | None:
    """The record crmtel stored for a call, or None."""
    db = Database(database_url)
    try:
        stored = await CallRepository(db).get(pbx, linkedid)
    finally:
        await db.dispose()
    return None if stored is None else stored.record


async def all_calls(database_url: str) -> list[CallRecord]:
    """Every record crmtel stored, oldest first."""
    db = Database(database_url)
    try:
        return [s.record for s in await CallRepository(db).between()]
    finally:
        await db.dispose()


async def queue_waits(database_url: str) -> dict[str, tuple[QueueVisit, ...]]:
    """Every stored call's queue waits (what the queue report counts), by Linkedid."""
    db = Database(database_url)
    try:
        repo = CallRepository(db)
        keys = [(s.record.pbx, s.record.linkedid) for s in await repo.between()]
        return {key[1]: stored.record.queue_visits for key, stored in (await repo.by_keys(keys)).items()}
    finally:
        await db.dispose()


async def calls_of_click(database_url: str, originate_id: str) -> list[CallRecord]:
    """The records a click-to-call produced."""
    db = Database(database_url)
    try:
        return [s.record for s in await CallRepository(db).by_originate(originate_id)]
    finally:
        await db.dispose()


async def tasks(database_url: str) -> list[TaskView]:
    """Every callback task, open and closed."""
    db = Database(database_url)
    try:
        return await CallbackRepository(db).tasks(status=None)
    finally:
        await db.dispose()


async def manager_logins(database_url: str) -> dict[int, str]:
    """Every manager's login by id (to name the owner crmtel booked a call to)."""
    db = Database(database_url)
    try:
        return {m.id: m.login for m in await ManagerRepository(db).all()}
    finally:
        await db.dispose()


async def wait_stored(database_url: str, pbx: str, linkedid: str, limit: float = 30.0) -> CallRecord:
    """The record of an ended call, once crmtel has written it."""
    deadline = time.monotonic() + limit
    while True:
        record = await stored_call(database_url, pbx, linkedid)
        if record is not None and record.ended_at is not None:
            return record
        if time.monotonic() > deadline:
            raise AssertionError(
                f"crmtel stored no ended call {pbx}:{linkedid} within {limit} s (have {record})"
            )
        await asyncio.sleep(0.2)


@dataclass
class Browser:
    """A manager's page as the websocket sees it: every message, with the time it arrived."""

    login: str
    received: list[tuple[float, dict[str, Any]]] = field(default_factory=list)

    def of_type(self, kind: str) -> list[dict[str, Any]]:
        """Messages of one type."""
        return [m for _t, m in self.received if m.get("type") == kind]


@contextlib.asynccontextmanager
async def logged_in(
    base_url: str, login: str, password: str
) -> AsyncIterator[tuple[aiohttp.ClientSession, Browser]]:
    """A logged-in session with its websocket read in the background into a ``Browser``."""
    browser = Browser(login)
    async with aiohttp.ClientSession(base_url, cookie_jar=aiohttp.CookieJar(unsafe=True)) as http:
        async with http.post("/api/login", json={"login": login, "password": password}) as response:
            assert response.status == 200, await response.text()
        ws = await http.ws_connect("/ws", origin=base_url.rstrip("/"))
        hello = await ws.receive_json(timeout=10)
        assert hello["type"] == "hello", hello

        async def read() -> None:
            async for msg in ws:
                if msg.type == aiohttp.WSMsgType.TEXT:
                    browser.received.append((time.time(), json.loads(msg.data)))

        reader = asyncio.create_task(read(), name=f"live-ws-{login}")
        try:
            yield http, browser
        finally:
            await ws.close()
            reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await reader


async def click_to_call(
    http: aiohttp.ClientSession,
    browser: Browser,
    number: str,
    until: set[str],
    *,
    via: str | None = None,
    limit: float = 60.0,
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The page's click-to-call (``via`` "mobile" or none: the desk phone): the 202 answer, then the click's
    dial.result messages until one of ``until`` came."""
    csrf = next((c.value for c in http.cookie_jar if c.key == "crmtel_csrf"), None)
    headers = {"X-CSRF-Token": csrf} if csrf else {}
    body = {"number": number, **({"via": via} if via else {})}
    async with http.post("/api/dial", json=body, headers=headers) as response:
        accepted: dict[str, Any] = await response.json()
        assert response.status == 202, accepted
    originate_id = accepted["originate_id"]
    deadline = time.monotonic() + limit
    while True:
        got = [m for m in browser.of_type("dial.result") if m["originate_id"] == originate_id]
        if any(m["status"] in until for m in got):
            return accepted, got
        if time.monotonic() > deadline:
            raise AssertionError(f"no dial.result in {until} for {originate_id} within {limit} s: {got}")
        await asyncio.sleep(0.1)
