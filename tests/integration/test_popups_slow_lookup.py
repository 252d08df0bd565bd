"""A caller's party lookup that takes long holds back no popup of another call: the call's end waits for its
party beside tracking, not in the AMI consumer (review28)."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from pathlib import Path

from pydantic import SecretStr

from crmtel.ami.client import AmiClient
from crmtel.app import migrate
from crmtel.calls.service import CallService
from crmtel.config import AmiSettings, CallsSettings
from crmtel.domain import (
    CallAnswered,
    CallEnded,
    CallEvent,
    CallRinging,
    LookupResult,
    PartyKind,
    PartyMatch,
)
from crmtel.fakepbx.server import Recorded, load_ami
from crmtel.store.calls import CallRepository
from crmtel.store.db import Database
from crmtel.store.parties import NewClient, PartyRepository
from tests.fixtures.fake_ami import wait_for
from tests.integration.test_ami_pipeline import serving

LIVE = (CallRinging, CallAnswered, CallEnded)


@dataclass
class GatedLookup:
    """The store's party read, held until the test opens the gate (a loaded store, a busy pool)."""

    gate: asyncio.Event = field(default_factory=asyncio.Event)
    asked: list[str] = field(default_factory=list)
    client_id: int = 7

    async def lookup(self, e164: str) -> LookupResult:
        self.asked.append(e164)
        await self.gate.wait()
        match = PartyMatch(PartyKind.CLIENT, self.client_id, "ООО Ромашка", 0, manager_id=None)
        return LookupResult(e164, (match,))


@dataclass
class Recording:
    events: list[CallEvent] = field(default_factory=list)

    async def publish(self, event: CallEvent) -> None:
        if isinstance(event, LIVE):
            self.events.append(event)

    def kinds(self, call_id: str) -> list[str]:
        return [type(e).__name__ for e in self.events if e.call_id == call_id]


def two_calls() -> list[Recorded]:
    """A caller who gives up, then (0.2 s after its hangup) another call that is answered."""
    first = [
        i for i in load_ami(Path("crmtel/fakepbx/data/direct-caller-gives-up.ami")) if isinstance(i, Recorded)
    ]
    second = [i for i in load_ami(Path("crmtel/fakepbx/data/direct-answered.ami")) if isinstance(i, Recorded)]
    start = next(i.t for i in second if dict(i.headers).get("Event") == "Newchannel")
    shift = first[-1].t + 0.2 - start
    return first + [Recorded(i.t + shift, i.headers) for i in second if i.t >= start]


async def test_a_slow_party_lookup_delays_no_other_calls_popup(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'crmtel.db'}"
    await migrate(url)
    db = Database(url)
    parties = GatedLookup()
    service = CallService(db, CallsSettings(), parties)
    seen = Recording()
    service.notifier = seen
    writer = asyncio.create_task(service.write_beside(), name="test-writer")
    try:
        async with serving(two_calls(), speed=2.0) as server:
            settings = AmiSettings(
                name="pbx1", port=server.port, username="crmtel", secret=SecretStr("secret"), auth="md5"
            )
            client = AmiClient(settings, service)
            runner = asyncio.create_task(client.run(), name="test-ami")
            try:
                # The first call rang and hung up while its lookup is held; the second call still rings and
                # is answered on time (before: its frames queued behind the first call's end, which waited).
                await wait_for(lambda: len({e.call_id for e in seen.events}) == 2, limit=30)
                await wait_for(lambda: any(isinstance(e, CallAnswered) for e in seen.events), limit=30)
                first = seen.events[0].call_id
                assert seen.kinds(first) == ["CallRinging"], "the first call's end did not wait for its party"
                parties.gate.set()
                await wait_for(lambda: sum(isinstance(e, CallEnded) for e in seen.events) == 2, limit=30)
            finally:
                parties.gate.set()  # never leave the client waiting on the held read
                await client.stop()
                runner.cancel()
                await asyncio.gather(runner, return_exceptions=True)
    finally:
        writer.cancel()
        await asyncio.gather(writer, return_exceptions=True)
        await service.aclose()
        await db.dispose()
    second = next(e.call_id for e in seen.events if e.call_id != first)
    assert seen.kinds(first) == ["CallRinging", "CallEnded"]
    assert seen.kinds(second) == ["CallRinging", "CallAnswered", "CallEnded"]
    ended = [e for e in seen.events if isinstance(e, CallEnded)]
    assert all(e.record.party_name == "ООО Ромашка" for e in ended), ended  # the ends carry the party found


async def test_the_stop_waits_for_an_end_held_by_its_party_lookup(tmp_path: Path) -> None:
    """A flush (the stop's last one too) waits for the held end's party lookup, then writes the end with its
    party; the end's popup carries it too."""
    url = f"sqlite+aiosqlite:///{tmp_path / 'crmtel.db'}"
    await migrate(url)
    db = Database(url)
    # A real client: the flush writes the end (and the missed call's task) with it.
    known = await PartyRepository(db).add_client(NewClient(name="ООО Ромашка", phones=("+79161110001",)))
    parties = GatedLookup(client_id=known.id)
    service = CallService(db, CallsSettings(), parties)
    seen = Recording()
    service.notifier = seen
    data = Path("crmtel/fakepbx/data/direct-caller-gives-up.ami")
    stream = [i for i in load_ami(data) if isinstance(i, Recorded)]
    try:
        async with serving(stream, speed=2.0) as server:
            settings = AmiSettings(
                name="pbx1", port=server.port, username="crmtel", secret=SecretStr("secret"), auth="md5"
            )
            client = AmiClient(settings, service)
            runner = asyncio.create_task(client.run(), name="test-ami")
            try:
                await wait_for(lambda: client.handled >= len(stream) - 1, limit=30)
                settling = asyncio.create_task(service.flush())
                await asyncio.sleep(0.05)
                assert not settling.done(), "nothing waited for the held lookup"
                assert [type(e).__name__ for e in seen.events] == ["CallRinging"]
                parties.gate.set()
                await asyncio.wait_for(settling, 30)
                ended = [e for e in seen.events if isinstance(e, CallEnded)]
                assert len(ended) == 1
                assert ended[0].record.party_name == "ООО Ромашка"
                (stored,) = await CallRepository(db).between()
                assert (stored.record.ended_at, stored.record.party_name) == (
                    ended[0].record.ended_at,
                    "ООО Ромашка",
                )
            finally:
                parties.gate.set()  # never leave the client waiting on the held read
                await client.stop()
                runner.cancel()
                await asyncio.gather(runner, return_exceptions=True)
    finally:
        await service.aclose()
        await db.dispose()
