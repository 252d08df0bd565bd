"""Popups never wait for the disk: another writer holding SQLite for 5 s delays no live event, nor reorders one."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from pydantic import SecretStr
from sqlalchemy import update

from crmtel.ami.client import AmiClient
from crmtel.ami.events import parse_event
from crmtel.ami.protocol import Message
from crmtel.app import migrate
from crmtel.calls import tracker
from crmtel.calls.service import CallService
from crmtel.calls.tracker.model import TrackerState
from crmtel.config import AmiSettings, CallsSettings
from crmtel.domain import CallAnswered, CallEnded, CallEvent, CallRinging
from crmtel.errors import StoreUnavailable
from crmtel.fakepbx.server import Recorded, load_ami
from crmtel.push.cards import StoreCards
from crmtel.push.hub import Hub
from crmtel.push.notifier import ManagerNames, Notifier
from crmtel.store.calls import CallRepository
from crmtel.store.db import Database
from crmtel.store.models import ClientRow
from crmtel.store.parties import PartyRepository
from tests.fixtures.fake_ami import wait_for, wait_until
from tests.fixtures.sqlite_lock import WriteLock
from tests.integration.test_ami_pipeline import serving

LOCK_SECONDS = 5.0
# The trace is played at twice its real speed: the whole call (ringing, answered, ended) within 2.8 s.
SPEED = 2.0
LIVE = (CallRinging, CallAnswered, CallEnded)


@dataclass(frozen=True, slots=True)
class Published:
    """One live event as the notifier got it."""

    kind: str
    call_id: str
    # How many AMI events the service had been handed when it published this one (its trigger is the last).
    frames: int
    at: float
    while_locked: bool


class CountingSink:
    """The call service as the AMI client's sink, counting the events it is handed."""

    def __init__(self, service: CallService) -> None:
        self.service = service
        self.seen: list[Message] = []

    async def on_event(self, pbx: str, message: Message, at: datetime) -> None:
        self.seen.append(message)
        await self.service.on_event(pbx, message, at)

    async def on_resync(self, pbx: str, channels: Sequence[Message], at: datetime) -> None:
        await self.service.on_resync(pbx, channels, at)

    async def on_idle(self, pbx: str) -> None:
        await self.service.on_idle(pbx)

    async def on_lost(self, pbx: str, at: datetime) -> None:
        await self.service.on_lost(pbx, at)


class RecordingNotifier:
    """What reaches the push side, and when."""

    def __init__(self, sink: CountingSink, lock: WriteLock) -> None:
        self.sink = sink
        self.lock = lock
        self.published: list[Published] = []

    async def publish(self, event: CallEvent) -> None:
        if isinstance(event, LIVE):
            self.published.append(
                Published(
                    type(event).__name__,
                    event.call_id,
                    len(self.sink.seen),
                    time.monotonic(),
                    not self.lock.released.is_set(),
                )
            )


def trigger_frames(messages: Sequence[Message], at: datetime) -> dict[tuple[str, str], int]:
    """For each live event of the pure tracker: how many events it had seen when it emitted it."""
    state = TrackerState("pbx1")
    out: dict[tuple[str, str], int] = {}
    for count, message in enumerate(messages, start=1):
        event = parse_event(message, at)
        if event is None:
            continue
        state, effects = tracker.reduce(state, event)
        for effect in effects:
            if isinstance(effect, LIVE):
                out.setdefault((type(effect).__name__, effect.call_id), count)
    return out


async def locked_store(tmp_path: Path) -> tuple[Database, WriteLock, list[Recorded]]:
    """A migrated SQLite store, the writer that will hold it, and the answered direct call's recorded frames."""
    path = tmp_path / "crmtel.db"
    url = f"sqlite+aiosqlite:///{path}"
    await migrate(url)
    stream = [
        item
        for item in load_ami(Path("crmtel/fakepbx/data/direct-answered.ami"))
        if isinstance(item, Recorded)
    ]
    return Database(url), WriteLock(path, LOCK_SECONDS), stream


async def test_a_locked_store_delays_no_popup_and_keeps_each_calls_events_in_order(tmp_path: Path) -> None:
    """Another writer holds SQLite for 5 s while a call rings, is answered and ends (2.8 s): every live event
    reaches the notifier while the lock is still held, on the very AMI frame that causes it (no later frame
    is needed to push it out), in the call's order; the call is stored once the lock is gone."""
    db, lock, stream = await locked_store(tmp_path)
    service = CallService(db, CallsSettings(), PartyRepository(db))
    sink = CountingSink(service)
    notifier = RecordingNotifier(sink, lock)
    service.notifier = notifier
    writer = asyncio.create_task(service.write_beside(), name="test-writer")
    try:
        async with serving(stream, speed=SPEED) as server:
            lock.start()
            settings = AmiSettings(
                name="pbx1", port=server.port, username="crmtel", secret=SecretStr("secret"), auth="md5"
            )
            client = AmiClient(settings, sink)
            runner = asyncio.create_task(client.run(), name="test-ami")
            try:
                await wait_for(lambda: any(p.kind == "CallEnded" for p in notifier.published), limit=30)
                ended_while_locked = not lock.released.is_set()
                await wait_for(lock.released.is_set, limit=30)

                async def stored() -> bool:
                    calls = await CallRepository(db).between()
                    return len(calls) == 1 and calls[0].record.ended_at is not None

                await wait_until(stored, limit=30)
            finally:
                await client.stop()
                runner.cancel()
                await asyncio.gather(runner, return_exceptions=True)
    finally:
        writer.cancel()
        await asyncio.gather(writer, return_exceptions=True)
        await db.dispose()

    assert ended_while_locked, "the call's end was published only after the other writer let go"
    kinds = [p.kind for p in notifier.published]
    assert kinds == ["CallRinging", "CallAnswered", "CallEnded"]
    assert all(p.while_locked for p in notifier.published), notifier.published
    frames = trigger_frames(sink.seen, datetime.now().astimezone())
    for p in notifier.published:
        assert p.frames == frames[(p.kind, p.call_id)], f"{p.kind} published a frame late"


class RecordingHub(Hub):
    """The real hub, noting for each live event reaching the pages how many AMI frames had been handed over and
    whether the other writer still held the store."""

    def __init__(self, sink: CountingSink, lock: WriteLock) -> None:
        super().__init__()
        self.sink = sink
        self.lock = lock
        self.applied: list[tuple[str, int, bool]] = []

    def apply(self, event: CallEvent, **kw: Any) -> Any:
        self.applied.append((type(event).__name__, len(self.sink.seen), not self.lock.released.is_set()))
        return super().apply(event, **kw)


async def page_write(db: Database) -> None:
    """A page's short write transaction (a note, a result, an edit), here waiting on the other writer's lock."""
    try:
        async with db.session() as session:
            await session.execute(update(ClientRow).where(ClientRow.id == -1).values(name="x"))
    except StoreUnavailable:
        pass  # its busy wait ran out: the page is told the store is busy


async def test_popups_reach_the_pages_while_page_writes_hold_every_pooled_connection(tmp_path: Path) -> None:
    """Another writer holds SQLite for 5 s and 40 pages' writes wait on it, holding every pooled connection;
    the names of who answers are due for a reload: the real notifier still sends each live event to the pages
    while the lock is still held (the answer waited 4 s for a pooled connection to
    read the managers' names, and the frames after it with it)."""
    db, lock, stream = await locked_store(tmp_path)
    service = CallService(db, CallsSettings(), PartyRepository(db))
    sink = CountingSink(service)
    hub = RecordingHub(sink, lock)
    names = ManagerNames(db, ttl=0.5)
    await names.name_of("101")  # read at start, as crmtel.app does; due again half a second later
    writer = asyncio.create_task(service.write_beside(), name="test-writer")
    pages: list[asyncio.Task[None]] = []
    async with Notifier(hub, StoreCards(db), names) as notifier:
        service.notifier = notifier
        try:
            async with serving(stream, speed=SPEED) as server:
                lock.start()
                pages = [asyncio.create_task(page_write(db), name="test-page") for _ in range(40)]
                await wait_for(lambda: db.engine.pool.checkedout() >= 15)  # type: ignore[attr-defined]
                settings = AmiSettings(
                    name="pbx1", port=server.port, username="crmtel", secret=SecretStr("secret"), auth="md5"
                )
                client = AmiClient(settings, sink)
                runner = asyncio.create_task(client.run(), name="test-ami")
                try:
                    await wait_for(lambda: any(k == "CallEnded" for k, *_ in hub.applied), limit=60)
                finally:
                    await client.stop()
                    runner.cancel()
                    await asyncio.gather(runner, return_exceptions=True)
        finally:
            writer.cancel()
            await asyncio.gather(writer, *pages, return_exceptions=True)
            await names.aclose()
            await db.dispose()
    assert [kind for kind, *_ in hub.applied] == ["CallRinging", "CallAnswered", "CallEnded"]
    # (Each on its own frame is pinned above; the ringing card may wait its 10 ms here, while frames go on.)
    for kind, _seen, locked in hub.applied:
        assert locked, f"{kind} reached the pages only after the other writer let go"
