"""The whole pipeline over real TCP: fake AMI server -> client -> tracker -> database."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Sequence
from pathlib import Path

import pytest

from crmtel.ami.client import AmiClient
from crmtel.ami.protocol import Message
from crmtel.calls.service import CallService
from crmtel.config import CallsSettings
from crmtel.fakepbx.server import FakeAmiServer, StreamItem, load_ami, merge_streams
from crmtel.store.calls import CallRepository
from crmtel.store.db import Database
from crmtel.store.parties import PartyRepository
from tests.fixtures.fake_ami import assert_record_matches, running, settings_for, wait_for, wait_until
from tests.fixtures.traces import SCENARIOS, load_expected


@contextlib.asynccontextmanager
async def serving(stream: Sequence[StreamItem], **options: object) -> AsyncIterator[FakeAmiServer]:
    server = FakeAmiServer(stream, **options)  # type: ignore[arg-type]
    await server.start()
    try:
        yield server
    finally:
        await server.close()


def make_service(db: Database) -> CallService:
    return CallService(db, CallsSettings(), PartyRepository(db))


async def _all_ended(calls: CallRepository, linkedids: set[str]) -> bool:
    stored = {s.record.linkedid: s for s in await calls.between()}
    return linkedids <= set(stored) and all(stored[i].record.ended_at is not None for i in linkedids)


def _linkedids(stream: Sequence[StreamItem]) -> set[str]:
    out: set[str] = set()
    for item in stream:
        if hasattr(item, "headers"):
            msg = Message(item.headers)
            if msg.event == "Newchannel":
                out.add(msg.get("Linkedid") or "")
    return out


@pytest.mark.parametrize("chunk", [1, 7, 64 * 1024])
@pytest.mark.parametrize("scenario", SCENARIOS)
async def test_each_trace_over_tcp_yields_exactly_its_expected_record(
    db: Database, traces_dir: Path, scenario: str, chunk: int
) -> None:
    """Replayed through the fake server in any chunking, a trace leaves exactly its expected row."""
    expected = load_expected(scenario)
    calls = CallRepository(db)
    service = make_service(db)
    async with serving(load_ami(traces_dir / f"{scenario}.ami"), chunk_size=chunk) as server:
        client = AmiClient(settings_for(server), service)
        async with running(client):
            await wait_until(lambda: _all_ended(calls, {expected["linkedid"]}))
    stored = await calls.between()
    assert len(stored) == 1
    assert_record_matches(stored[0].record, expected)
    assert stored[0].live_state is None


def _all_traces(traces_dir: Path) -> list[StreamItem]:
    """The nine traces overlapping in time: several calls at once, as on a busy PBX."""
    return merge_streams([(i * 1.5, load_ami(traces_dir / f"{s}.ami")) for i, s in enumerate(SCENARIOS)])


async def test_dropped_connection_mid_calls_loses_and_duplicates_nothing(
    db: Database, traces_dir: Path
) -> None:
    """Connection drops in the middle of calls: after reconnect and resync every call is there once."""
    stream = _all_traces(traces_dir)
    expected = {load_expected(s)["linkedid"]: load_expected(s) for s in SCENARIOS}
    calls = CallRepository(db)
    service = make_service(db)
    async with serving(stream, drop_after=len(stream) // 3) as server:
        client = AmiClient(settings_for(server), service)
        async with running(client):
            await wait_until(lambda: _all_ended(calls, set(expected)), limit=20)
            assert server.logins == 2
    counts = await calls.count()
    assert set(counts) == {("pbx1", linkedid) for linkedid in expected}
    assert set(counts.values()) == {1}
    for stored in await calls.between():
        assert_record_matches(stored.record, expected[stored.record.linkedid])


async def test_events_lost_while_disconnected_still_end_every_call_once(
    db: Database, traces_dir: Path
) -> None:
    """Even when the PBX went on while we were away (events lost), resync closes calls, none twice."""
    stream = _all_traces(traces_dir)
    linkedids = _linkedids(stream)
    calls = CallRepository(db)
    service = make_service(db)
    async with serving(stream, drop_after=len(stream) // 2, lose_on_drop=150) as server:
        client = AmiClient(settings_for(server), service)
        async with running(client):
            await wait_until(lambda: _all_ended(calls, linkedids), limit=20)
    counts = await calls.count()
    assert set(counts) == {("pbx1", linkedid) for linkedid in linkedids}
    assert set(counts.values()) == {1}
    assert all(s.live_state is None for s in await calls.between())


async def test_restart_mid_call_without_clean_shutdown_loses_and_duplicates_nothing(
    db: Database, traces_dir: Path
) -> None:
    """A crmtel killed mid-call (no shutdown at all) is replaced by a new one that finishes every call."""
    stream = _all_traces(traces_dir)
    expected = {load_expected(s)["linkedid"]: load_expected(s) for s in SCENARIOS}
    calls = CallRepository(db)
    async with serving(stream, pause_after=len(stream) // 2) as server:
        first = make_service(db)
        client = AmiClient(settings_for(server), first)
        task = asyncio.create_task(client.run())
        await wait_until(lambda: _live_count(calls, minimum=1))
        # Let the first process catch up with everything sent before the pause (its last batch written).
        await wait_for(lambda: server.cursor == server.pause_after and client.idle and not first.pending)
        # kill -9: the process is gone; nothing is flushed, nothing is closed politely.
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        assert any(s.live_state is not None for s in await calls.between())
        second = make_service(db)
        assert await second.restore("pbx1") >= 1
        server.resume()
        async with running(AmiClient(settings_for(server), second)):
            await wait_until(lambda: _all_ended(calls, set(expected)), limit=20)
    counts = await calls.count()
    assert set(counts) == {("pbx1", linkedid) for linkedid in expected}
    assert set(counts.values()) == {1}
    for stored in await calls.between():
        assert_record_matches(stored.record, expected[stored.record.linkedid])


async def _live_count(calls: CallRepository, minimum: int) -> bool:
    return len(await calls.live("pbx1")) >= minimum


async def test_two_pbxes_with_the_same_linkedid_keep_two_calls(db: Database, traces_dir: Path) -> None:
    """Calls are keyed by (pbx, linkedid): two PBXs reporting the same Linkedid make two records."""
    expected = load_expected("direct-answered")
    stream = load_ami(traces_dir / "direct-answered.ami")
    calls = CallRepository(db)
    service = make_service(db)

    async def both_ended() -> bool:
        stored = await calls.between()
        return len(stored) == 2 and all(s.record.ended_at is not None for s in stored)

    async with serving(stream, chunk_size=7) as one, serving(stream) as two:
        first = AmiClient(settings_for(one, name="pbx1"), service)
        second = AmiClient(settings_for(two, name="pbx2"), service)
        async with running(first), running(second):
            await wait_until(both_ended)
    assert await calls.count() == {("pbx1", expected["linkedid"]): 1, ("pbx2", expected["linkedid"]): 1}
    for stored in await calls.between():
        assert_record_matches(stored.record, expected)
