"""A PBX's CDR passes run only while something serves that PBX (a cluster node: inside its leadership term)."""

from __future__ import annotations

import asyncio
from datetime import timedelta

from crmtel.calls.service import CallService
from crmtel.cdr.service import CdrService
from crmtel.config import CallsSettings
from crmtel.store.calls import CallRepository
from crmtel.store.db import Database
from crmtel.store.parties import PartyRepository
from crmtel.store.watermarks import WatermarkRepository
from tests.fixtures.fake_ami import wait_until
from tests.fixtures.traces import BASE_TIME, load_messages


async def _live_call_left_behind(db: Database, pbx: str) -> None:
    """A call stored as live by an earlier run that no longer follows it (an orphan for the next pass)."""
    earlier = CallService(db, CallsSettings(), PartyRepository(db))
    for item in load_messages("direct-answered"):
        if item.t <= 3.0:
            await earlier.on_event(pbx, item.message, BASE_TIME + timedelta(seconds=item.t))
    await earlier.flush()


async def _live(db: Database, pbx: str) -> int:
    return len(await CallRepository(db).live(pbx))


async def test_a_pbxs_pass_runs_only_once_something_serves_that_pbx(
    db: Database,
) -> None:
    """pbx2's pass is asked for while only pbx1 is served: it does not run (its orphan stays live); once a
    term serves pbx2 it runs and closes the orphan."""
    await _live_call_left_behind(db, "pbx2")
    calls = CallService(db, CallsSettings(), PartyRepository(db))
    cdr = CdrService(calls, WatermarkRepository(db), {}, {})
    at = BASE_TIME + timedelta(hours=1)
    pbx1 = asyncio.create_task(cdr.serve("pbx1"))
    try:
        cdr.resynced("pbx2", at)
        cdr.resynced("pbx1", at)
        for _ in range(20):
            await asyncio.sleep(0)
        assert await _live(db, "pbx2") == 1, "no term serves pbx2: its pass must not run"

        pbx2 = asyncio.create_task(cdr.serve("pbx2"))

        async def orphan_closed() -> bool:
            return await _live(db, "pbx2") == 0

        await wait_until(orphan_closed)
        await asyncio.wait_for(cdr.idle(), 10)
        pbx2.cancel()
        await asyncio.gather(pbx2, return_exceptions=True)
    finally:
        pbx1.cancel()
        await asyncio.gather(pbx1, return_exceptions=True)
