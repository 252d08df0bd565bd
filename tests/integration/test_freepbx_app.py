"""crmtel as the composition root builds it for a FreePBX PBX: WebRTC devices, Local legs, dated recordings.

A recorded call rewritten to FreePBX's channel names is served by the fake AMI server over TCP to the app started
by ``crmtel.app.start`` with ``flavour = "freepbx"``: the WebRTC phone ``PJSIP/99102`` answering is stored as 102,
and Boris (102) plays the recording from its ``YYYY/MM/DD`` folder over HTTP.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import aiohttp
from pydantic import SecretStr

from crmtel.app import start
from crmtel.config import CallsSettings, LogSettings, RoutingSettings, Settings, WebSettings
from crmtel.fakepbx.server import FakeAmiServer, Recorded
from crmtel.store.calls import CallRepository
from crmtel.store.db import Database
from tests.fixtures.csrf import page_like_session
from tests.fixtures.fake_ami import settings_for
from tests.fixtures.freepbx import queue_members_from_queue, rename, through_local
from tests.fixtures.traces import load_expected, load_messages
from tests.integration.test_web_app import PASSWORD, seed_managers

SCENARIO = "direct-noanswer-then-queue"
SPOOL = "/var/spool/asterisk/monitor"
DAY = "2026/11/23"


def _freepbx_stream() -> list[Recorded]:
    """103 rung through Local/103@from-internal, then the queue answered on 102's WebRTC phone; dated recording."""
    messages = queue_members_from_queue(through_local(load_messages(SCENARIO), "103"))
    messages = rename(messages, "PJSIP/102-", "PJSIP/99102-")
    messages = rename(messages, f"{SPOOL}/in-", f"{SPOOL}/{DAY}/in-")
    return [Recorded(item.t, item.message.headers) for item in messages]


async def test_freepbx_flavour_maps_webrtc_devices_and_serves_dated_recordings(
    database_url: str, tmp_path: Path
) -> None:
    """flavour=freepbx: 99102 is stored as 102, and the recording in monitor/YYYY/MM/DD plays for 102 only."""
    expected = load_expected(SCENARIO)
    name = Path(expected["recording_file"]).name
    spool = tmp_path / "monitor"
    (spool / DAY).mkdir(parents=True)
    (spool / DAY / name).write_bytes(b"RIFF-freepbx")
    db = Database(database_url)
    try:
        await seed_managers(db)
        server = FakeAmiServer(_freepbx_stream(), secret="secret")
        await server.start()
        try:
            settings = Settings(
                database_url=database_url,
                ami=settings_for(server, secret=SecretStr("secret"), flavour="freepbx"),
                calls=CallsSettings(recording_url_template="https://pbx.example/monitor/{relpath}"),
                routing=RoutingSettings(agi_host="127.0.0.1", agi_port=0),
                web=WebSettings(host="127.0.0.1", port=0, recordings_dir=spool),
                log=LogSettings(level="warning"),
            )
            async with start(settings) as running:
                calls = CallRepository(db)
                deadline = time.monotonic() + 15
                while True:
                    stored = [s for s in await calls.between() if s.record.ended_at is not None]
                    if stored:
                        break
                    assert time.monotonic() < deadline, "the call never ended"
                    await asyncio.sleep(0.05)
                (call,) = stored
                record = call.record
                assert record.answered_by == "102"
                assert list(record.rang) == expected["rang"]
                assert record.recording_url == f"https://pbx.example/monitor/{DAY}/{name}"
                path = f"api/calls/pbx1:{record.linkedid}/recording"
                for login, status in (("boris", 200), ("anna", 404)):
                    jar = aiohttp.CookieJar(unsafe=True)
                    async with page_like_session(base_url=running.web_url, cookie_jar=jar) as http:
                        body = {"login": login, "password": PASSWORD}
                        async with http.post("/api/login", json=body) as r:
                            assert r.status == 200
                        async with http.get("/" + path) as r:
                            assert r.status == status, login
                            if status == 200:
                                assert await r.read() == b"RIFF-freepbx"
        finally:
            await server.close()
    finally:
        await db.dispose()
