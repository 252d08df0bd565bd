"""The hub: extension subscriptions, heads watching everyone, bounded mailboxes, reconnect snapshots."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from crmtel.domain import CallAnswered
from crmtel.push.hub import Connection, Hub
from tests.unit.test_push_live import CID, T0, ring


async def take(conn: Connection) -> list[dict[str, Any]]:
    """Whatever is queued right now (empty if nothing)."""
    try:
        async with asyncio.timeout(0.01):
            frames = await conn.next_frames()
    except TimeoutError:
        return []
    return [json.loads(f) for f in frames or []]


async def test_only_watchers_of_the_ringing_extension_and_heads_receive_it() -> None:
    """A ring at 102 reaches 102's page and the head's, not 101's."""
    hub = Hub()
    anna = hub.connect(1, ["101"])
    boris = hub.connect(2, ["102"])
    head = hub.connect(3, [], everyone=True)
    hub.apply(ring("102"))
    assert await take(anna) == []
    assert [m["type"] for m in await take(boris)] == ["call.ringing"]
    assert [m["extension"] for m in await take(head)] == ["102"]


async def test_a_full_mailbox_drops_that_browser_without_touching_the_others() -> None:
    """A browser that stops reading overflows its bounded queue and is unsubscribed; others keep receiving."""
    hub = Hub(queue_size=3)
    slow = hub.connect(1, ["102"])
    fast = hub.connect(2, ["102"])
    for i in range(5):
        hub.apply(ring("102", call_id=f"pbx1:{i}"))
        assert len(await take(fast)) == 1
    assert slow.overflowed
    assert await slow.next_frames() is None
    assert hub.connections == 1


async def test_reconnecting_browser_gets_calls_in_progress_first() -> None:
    """A page that connects mid-call is sent the ringing card and the answer before anything newer."""
    hub = Hub()
    hub.apply(ring("102"))
    hub.apply(ring("103"))
    hub.apply(CallAnswered(call_id=CID, extension="103", at=T0))
    vera = hub.connect(3, ["103"])
    boris = hub.connect(2, ["102"])
    assert [m["type"] for m in await take(vera)] == ["call.ringing", "call.answered"]
    assert await take(boris) == []


async def test_disconnect_is_idempotent_and_wakes_the_sender() -> None:
    """Disconnecting twice is fine, and a sender waiting for frames is released with None."""
    hub = Hub()
    conn = hub.connect(1, ["101"])
    waiter = asyncio.ensure_future(conn.next_frames())
    await asyncio.sleep(0)
    hub.disconnect(conn)
    hub.disconnect(conn)
    assert await waiter is None
    assert hub.connections == 0


def test_a_browser_queue_is_bounded_in_bytes_as_well_as_frames() -> None:
    """Frames within the count limit but beyond limit_bytes overflow the browser (it reconnects later)."""
    conn = Connection(1, ["101"], everyone=False, limit=256, limit_bytes=100_000)
    assert all(conn.offer("x" * 30_000) for _ in range(3))
    assert not conn.offer("x" * 30_000)
    assert conn.overflowed
