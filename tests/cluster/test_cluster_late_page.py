"""A page opened on a standby node while its phone rings (no node read the card: no page watched it) gets the
snapshot, then the card once, then the answer and the end, in that order (review28k of e8d9464)."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import aiohttp

from crmtel.fakepbx.server import load_ami
from crmtel.store.db import Database
from crmtel.store.leases import LeaseRepository
from crmtel.store.managers import ManagerRepository
from crmtel.store.parties import NewClient, PartyRepository
from tests.cluster.nodes import start_nodes, wait_leader
from tests.fixtures.csrf import page_like_session
from tests.fixtures.daemon import DaemonPool
from tests.fixtures.races import RACES_PROCESSES
from tests.integration.test_ami_pipeline import serving

pytestmark = RACES_PROCESSES

# direct-answered.ami: frame 35 is 101's DialBegin, 48 its DialEnd — held after 40, the phone rings.
RINGING = 40


async def _next(ws: aiohttp.ClientWebSocketResponse) -> dict[str, Any]:
    while True:
        msg = await ws.receive(timeout=15)
        assert msg.type is aiohttp.WSMsgType.TEXT, msg
        data: dict[str, Any] = json.loads(msg.data)
        if data["type"] != "pong":
            return data


async def test_a_page_opened_on_a_standby_mid_ring_gets_the_card_once_before_the_answer(
    pool: DaemonPool, db: Database, database_url: str, traces_dir: Path, tmp_path: Path, stream_name: str
) -> None:
    """Anna opens her page on a node that does not follow the PBX while her phone rings."""
    await ManagerRepository(db).save(
        login="anna", name="Анна Смирнова", extensions=("101",), password="pw-anna-1"
    )
    await PartyRepository(db).add_client(NewClient(name="ООО Ромашка", phones=("+79161110001",)))
    stream = load_ami(traces_dir / "direct-answered.ami")
    async with serving(stream, pause_after=RINGING, speed=1.0) as server:
        nodes = await start_nodes(pool, tmp_path, database_url, server.port, stream_name)
        leader, _epoch = await wait_leader(LeaseRepository(db))
        standby = next(name for name in nodes if name != leader)
        base = nodes[standby][1].web_url
        async with page_like_session(base_url=base, cookie_jar=aiohttp.CookieJar(unsafe=True)) as page:
            async with page.post("/api/login", json={"login": "anna", "password": "pw-anna-1"}) as r:
                assert r.status == 200, await r.text()
            # Wait until the standby has heard the ringing: a page opened earlier would watch it from the start.
            for _ in range(150):
                ws = await page.ws_connect("/ws")
                hello = await _next(ws)
                if hello["live"]:
                    break
                await ws.close()
                await asyncio.sleep(0.1)
            else:
                raise AssertionError("the standby never heard the call ring")
            seen = [await _next(ws)]
            if seen[0]["card"] is None:
                seen.append(await _next(ws))
            server.resume()
            while seen[-1]["type"] != "call.ended":
                seen.append(await _next(ws))
            await ws.close()
        kinds = [m["type"] for m in seen]
        cards = [m["card"] for m in seen if m["type"] in ("call.ringing", "call.card") and m["card"]]
        assert kinds[0] == "call.ringing"
        assert kinds[-2:] == ["call.answered", "call.ended"], kinds
        assert kinds.count("call.card") <= 1, kinds
        assert [c["name"] for c in cards] == ["ООО Ромашка"], seen
        assert seen[-2]["card"] == cards[0], "the answer carries another card"
        for daemon, _ports in nodes.values():
            assert await daemon.terminate(limit=10) == 0, daemon.describe()
