"""A call recorded the FreePBX way (``monitor/YYYY/MM/DD/<name>``) plays from crmtel and from its {relpath} link."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta
from pathlib import Path

import aiohttp
from aiohttp import web
from aiohttp.test_utils import TestServer
from sqlalchemy import select

from crmtel.calls.service import CallService
from crmtel.config import CallsSettings
from crmtel.recordings import locate
from crmtel.store.db import Database
from crmtel.store.models import CallRow
from crmtel.store.parties import PartyRepository
from tests.fixtures.freepbx import rename, through_local
from tests.fixtures.traces import BASE_TIME, load_messages
from tests.integration.test_web_app import running_app

SPOOL = "/var/spool/asterisk/monitor"
NAME = "in-4951234567-1795462037.14.wav"
# The trace's call started 2026-11-23 (UTC and Moscow alike): FreePBX's date folder of that day.
DAY = "2026/11/23"
WAVE = b"RIFF\x24\x00\x00\x00WAVEfmt freepbx-recording"


@asynccontextmanager
async def _static(root: Path) -> AsyncIterator[str]:
    """A plain web server over the spool folder, as an admin would put nginx in front of it."""
    app = web.Application()
    app.router.add_static("/monitor/", root)
    server = TestServer(app, host="127.0.0.1", port=0)
    await server.start_server()
    try:
        yield str(server.make_url("/monitor/"))
    finally:
        await server.close()


async def _replay_freepbx_call(db: Database, template: str) -> CallRow:
    """direct-answered as FreePBX runs it: through Local/101@from-internal, recorded into the day's folder."""
    messages = through_local(load_messages("direct-answered"), "101")
    messages = rename(messages, f"{SPOOL}/in-", f"{SPOOL}/{DAY}/in-")
    service = CallService(
        db,
        CallsSettings(recording_url_template=template, create_leads_for_unknown=False),
        PartyRepository(db),
        device_prefixes={"pbx1": ("99",)},
        recordings_dir=SPOOL,
    )
    for item in messages:
        await service.on_event("pbx1", item.message, BASE_TIME + timedelta(seconds=item.t))
    await service.flush()
    async with db.session() as session:
        return (await session.execute(select(CallRow))).scalar_one()


async def test_freepbx_recording_plays_from_its_date_folder_and_its_relpath_link(
    db: Database, tmp_path: Path
) -> None:
    """The stored MixMonitor path keeps FreePBX's date folder; the API and the {relpath} link both serve the file."""
    spool = tmp_path / "monitor"
    (spool / DAY).mkdir(parents=True)
    (spool / DAY / NAME).write_bytes(WAVE)
    # A file of the same name outside the date folder must not be the one served.
    (spool / NAME).write_bytes(b"wrong file")
    async with _static(spool) as base:
        row = await _replay_freepbx_call(db, base + "{relpath}")
        assert row.recording_file == f"{SPOOL}/{DAY}/{NAME}"
        assert row.answered_by == "101"
        assert row.recording_url == f"{base}{DAY}/{NAME}"
        async with aiohttp.ClientSession() as http, http.get(row.recording_url) as r:
            assert r.status == 200
            assert await r.read() == WAVE
    async with running_app(db, recordings_dir=spool) as rig:
        async with rig.browser("anna") as anna, anna.get(f"/api/calls/pbx1:{row.linkedid}/recording") as r:
            assert r.status == 200
            assert await r.read() == WAVE
        async with rig.browser("vera") as vera, vera.get(f"/api/calls/pbx1:{row.linkedid}/recording") as r:
            assert r.status == 404
        async with rig.browser() as stranger, stranger.get(f"/api/calls/pbx1:{row.linkedid}/recording") as r:
            assert r.status == 401


def test_a_bare_cdr_name_is_found_in_the_call_s_date_folder(tmp_path: Path) -> None:
    """FreePBX's CDR keeps only the basename: the file is looked up in the day's folder (±1 day for time zones)."""
    spool = tmp_path / "monitor"
    (spool / DAY).mkdir(parents=True)
    (spool / DAY / NAME).write_bytes(WAVE)
    assert locate(spool, NAME) is None
    assert locate(spool, NAME, BASE_TIME) == (spool / DAY / NAME).resolve()
    # 00:30 on the 24th in UTC is still the 23rd on a PBX at UTC-3.
    assert locate(spool, NAME, BASE_TIME.replace(day=24, hour=0, minute=30)) == (spool / DAY / NAME).resolve()
    assert locate(spool, NAME, BASE_TIME.replace(day=26)) is None
    assert locate(spool, "../" + NAME, BASE_TIME) is None
