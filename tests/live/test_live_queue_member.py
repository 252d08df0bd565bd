"""A manager's desk phone and browser as ONE queue member on a real Asterisk 22: the member is
Local/<ext>@crmtel-queue-member with its state from the pattern hint in [crmtel-hints] (both shipped in
deploy/asterisk/extensions_crmtel_webphone.conf); the queue sees it free, a queue call reaches the desk phone
through it, and the record is the manager's answered call."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.fixtures.databases import PostgresRun, SqliteRun
from tests.fixtures.races import RACES_PROCESSES
from tests.live.asterisk import Install, Queue
from tests.live.conftest import module_database
from tests.live.crmtel_side import CallRecord, Staff
from tests.live.rig import RigSpec, live_rig
from tests.live.sipp import Answers, Caller

pytestmark = RACES_PROCESSES

DID = "4950000171"
SPEC = RigSpec(
    staff=(Staff("anna", "Анна Смирнова", "171", password="pw-anna"),),
    queues=(Queue("q-both", ("Local/171@crmtel-queue-member",)),),
    dids={DID: "q-both"},
    default_queue="q-both",
    webphone=True,
)


@dataclass(frozen=True, slots=True)
class Seen:
    """What the PBX said about its hints and the queue, and the call crmtel stored."""

    hints: str
    queue: str
    record: CallRecord


async def _run(install: Install, folder: Path, database_url: str) -> Seen:
    async with live_rig(install, folder, database_url, SPEC) as rig:
        await rig.set_phones({"171": Answers(ring=1.0, talk=2.0)})
        queue = await asyncio.to_thread(rig.pbx.cli, "queue show q-both")
        placed = await rig.place(Caller("79161110171", "Клиент Очереди", DID, talk=None))
        linkedid = await rig.inbound_linkedid(placed)
        record = await rig.stored(linkedid)
        hints = await asyncio.to_thread(rig.pbx.cli, "core show hints")
        return Seen(hints, queue, record)


@pytest.fixture(scope="module")
def seen(
    live_install: Install, tmp_path_factory: pytest.TempPathFactory, _database_run: PostgresRun | SqliteRun
) -> Seen:
    folder = tmp_path_factory.mktemp("live-queue-member")
    return asyncio.run(_run(live_install, folder, module_database(_database_run, folder)))


def test_the_queue_watches_desk_phone_and_browser_through_one_hint(seen: Seen) -> None:
    """The pattern hint is made for 171 when the queue watches it, over both devices; the member is free (the
    desk phone is registered, the browser is not)."""
    [line] = [line for line in seen.hints.splitlines() if "171@crmtel-hints" in line]
    assert "PJSIP/171&PJSIP/99171" in line
    assert "Local/171@crmtel-queue-member" in seen.queue
    assert "(Not in use)" in seen.queue, seen.queue


def test_a_queue_call_through_the_member_is_the_managers_answered_call(seen: Seen) -> None:
    """The queue rings the member, [crmtel-queue-member] rings the desk phone (the browser is off), 171 answers:
    crmtel stores an answered inbound call of the queue, answered by 171 — never by the Local channel."""
    record = seen.record
    assert (record.direction, record.outcome, record.answered_by) == ("inbound", "answered", "171")
    assert record.queue == "q-both"
    assert "171" in record.rang
