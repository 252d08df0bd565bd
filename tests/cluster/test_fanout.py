"""The live-event stream through a real Redis: order, stale leaders' entries, and an outage of Redis itself."""

from __future__ import annotations

import asyncio
import shutil
import subprocess
from collections.abc import AsyncIterator, Callable, Coroutine, Iterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Any

import pytest
from redis.asyncio import Redis

from crmtel.cluster.codec import BadEvent, decode, encode
from crmtel.cluster.fanout import StreamConsumer, StreamPublisher
from crmtel.domain import CallAnswered, CallEnded, CallEvent, CallRecord, CallRinging, Direction, Outcome
from crmtel.push.hub import Hub
from tests.cluster.conftest import REDIS_URL
from tests.fixtures.daemon import free_port
from tests.fixtures.fake_ami import wait_for
from tests.fixtures.races import RACES_PROCESSES

T0 = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)


def ringing(linkedid: str, extension: str = "101", pbx: str = "pbx1") -> CallRinging:
    return CallRinging(
        call_id=f"{pbx}:{linkedid}",
        pbx=pbx,
        linkedid=linkedid,
        extension=extension,
        direction=Direction.INBOUND,
        caller_number="+79161110001",
        caller_name="O'Brien «Ромашка»",
        dialled="4951234567",
        queue=None,
        at=T0,
    )


def ended(linkedid: str) -> CallEnded:
    record = CallRecord(
        pbx="pbx1",
        linkedid=linkedid,
        direction=Direction.INBOUND,
        caller_number="+79161110001",
        caller_name="Иван",
        dialled=None,
        started_at=T0,
        rang=("101",),
        answered_by="101",
        outcome=Outcome.ANSWERED,
        talk_seconds=4.5,
        extra={"k": "v"},
    )
    return CallEnded(call_id=f"pbx1:{linkedid}", record=record, at=T0)


class Recorder:
    """A node's local notifier, noting what arrives."""

    def __init__(self) -> None:
        self.events: list[CallEvent] = []

    async def publish(self, event: CallEvent) -> None:
        self.events.append(event)


@asynccontextmanager
async def running(*coros: Callable[[], Coroutine[Any, Any, None]]) -> AsyncIterator[None]:
    tasks = [asyncio.create_task(c()) for c in coros]
    try:
        yield
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


def test_every_kind_of_live_event_survives_the_codec() -> None:
    """Ringing (with quotes and Cyrillic), answered and ended (a whole record) come back equal; junk is BadEvent."""
    for event in (ringing("1.1"), CallAnswered(call_id="pbx1:1.1", extension="101", at=T0), ended("1.1")):
        assert decode(encode(event)) == event
    for junk in (
        b"",
        b"{}",
        b'{"type": "CallRinging", "event": {"call_id": 1}}',
        b"\xff",
        b'{"type": "Nope"}',
    ):
        with pytest.raises(BadEvent):
            decode(junk)


async def test_events_reach_every_node_in_order_and_a_replaced_leaders_are_dropped(stream_name: str) -> None:
    """Two nodes read the leader's events in order; entries of an older epoch after a newer one are stale."""
    redis = Redis.from_url(REDIS_URL)
    epochs = {"pbx1": 1}
    leader = StreamPublisher(redis, stream_name, "a", epochs.get, maxlen=1000)
    nodes = [Recorder(), Recorder()]
    consumers = [StreamConsumer(redis, stream_name, n, Hub(), replay_seconds=60) for n in nodes]
    try:
        async with running(leader.run, *(c.run for c in consumers)):
            sent = [ringing(f"1.{i}") for i in range(50)]
            for event in sent:
                await leader.publish(event)
            await wait_for(lambda: all(len(n.events) == 50 for n in nodes))
            assert all(n.events == sent for n in nodes)

            successor = StreamPublisher(redis, stream_name, "b", {"pbx1": 2}.get, maxlen=1000)
            async with running(successor.run):
                await successor.publish(ringing("2.1"))
                await wait_for(lambda: all(len(n.events) == 51 for n in nodes))
                await leader.publish(ringing("1.99"))  # the old leader, not yet aware
                await successor.publish(ringing("2.2"))
                await wait_for(lambda: all(len(n.events) == 52 for n in nodes))
            assert [e.call_id for e in nodes[0].events[-2:]] == ["pbx1:2.1", "pbx1:2.2"]
            assert all(c.stale == 1 for c in consumers)
            # A node that does not lead a PBX publishes nothing of it.
            nobody = StreamPublisher(redis, stream_name, "c", lambda _pbx: None, maxlen=1000)
            await nobody.publish(ringing("3.1"))
            assert nobody.not_leading == 1
            assert nobody.pending == 0
    finally:
        await redis.aclose()


@pytest.fixture
def private_redis() -> Iterator[Callable[[], subprocess.Popen[bytes]]]:
    """Start (and restart) a Redis of this test's own on a free port, so it can be stopped."""
    binary = shutil.which("redis-server")
    if binary is None:
        pytest.skip("redis-server is not installed")
    port = free_port()
    started: list[subprocess.Popen[bytes]] = []

    def start() -> subprocess.Popen[bytes]:
        proc = subprocess.Popen(
            [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        started.append(proc)
        return proc

    start.port = port  # type: ignore[attr-defined]
    yield start
    for proc in started:
        proc.kill()
        proc.wait()


@RACES_PROCESSES  # races a real process (tests/fixtures/races.py)
async def test_a_node_that_loses_redis_reads_on_after_it_and_refreshes_its_browsers(
    private_redis: Callable[[], subprocess.Popen[bytes]],
) -> None:
    """Redis stops and comes back: what the leader sent meanwhile arrives in order; browsers are asked to reconnect."""
    server = private_redis()
    url = f"redis://127.0.0.1:{private_redis.port}/0"  # type: ignore[attr-defined]
    leader_redis = Redis.from_url(url, socket_timeout=1, socket_connect_timeout=1)
    node_redis = Redis.from_url(url, socket_timeout=2, socket_connect_timeout=1)
    await wait_for_ping(node_redis)
    hub = Hub()
    browser = hub.connect(1, ["101"])
    node = Recorder()
    publisher = StreamPublisher(leader_redis, "live", "a", {"pbx1": 1}.get, maxlen=1000)
    consumer = StreamConsumer(node_redis, "live", node, hub, replay_seconds=60)
    try:
        async with running(publisher.run, consumer.run):
            await publisher.publish(ringing("1.1"))
            await wait_for(lambda: len(node.events) == 1)
            server.kill()
            server.wait()
            await publisher.publish(ended("1.1"))
            await publisher.publish(ringing("1.2"))
            await wait_for(lambda: publisher.failures > 0 and not consumer.connected, limit=30)
            assert publisher.pending == 2
            private_redis()
            await wait_for(lambda: len(node.events) == 3, limit=30)
            assert node.events == [ringing("1.1"), ended("1.1"), ringing("1.2")]
            assert consumer.reconnects >= 1
            assert browser.stale, "the browser must be asked to reconnect for a fresh snapshot"
            assert await browser.next_frames() is None
    finally:
        await leader_redis.aclose()
        await node_redis.aclose()


async def wait_for_ping(redis: Redis, limit: float = 10.0) -> None:
    deadline = asyncio.get_running_loop().time() + limit
    while True:
        try:
            await redis.ping()
            return
        except OSError:
            pass
        except Exception:
            if asyncio.get_running_loop().time() > deadline:
                raise
        await asyncio.sleep(0.05)


async def test_a_burst_queued_while_the_leader_was_busy_goes_out_in_one_round_trip_in_order(
    stream_name: str,
) -> None:
    """300 events queued before the sender runs reach a node in order, in one round trip to Redis (one XADD
    per round trip left a busy leader seconds behind)."""
    redis = Redis.from_url(REDIS_URL)
    leader = StreamPublisher(redis, stream_name, "a", {"pbx1": 1}.get, maxlen=1000)
    node = Recorder()
    consumer = StreamConsumer(redis, stream_name, node, Hub(), replay_seconds=60)
    try:
        sent = [ringing(f"7.{i}") for i in range(300)]
        for event in sent:
            await leader.publish(event)
        assert leader.pending == 300
        async with running(leader.run, consumer.run):
            await wait_for(lambda: len(node.events) == 300)

        assert node.events == sent
        assert (leader.sent, leader.round_trips, leader.pending) == (300, 1, 0)
    finally:
        await redis.aclose()


class ReplyLosingProxy:
    """A TCP hop to Redis that passes the first MULTI/EXEC on and loses its reply (the connection then drops):
    Redis applied the batch, the leader never heard so."""

    def __init__(self, port: int) -> None:
        self._port = port
        self.armed = True
        self._hole = False
        self.server: asyncio.Server | None = None

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, upstream: bool) -> None:
        try:
            while data := await reader.read(65536):
                if not upstream and self._hole:
                    continue
                cut = upstream and self.armed and b"EXEC" in data
                if cut:
                    self.armed, self._hole = False, True
                writer.write(data)
                await writer.drain()
                if cut:
                    await asyncio.sleep(0.1)  # Redis answers into the hole
                    self._hole = False
                    return
        finally:
            writer.close()

    async def _handle(self, client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        redis_r, redis_w = await asyncio.open_connection("127.0.0.1", self._port)
        pipes = [
            asyncio.create_task(self._pipe(client_r, redis_w, True)),
            asyncio.create_task(self._pipe(redis_r, client_w, False)),
        ]
        _done, pending = await asyncio.wait(pipes, return_when=asyncio.FIRST_COMPLETED)
        for task in pending:
            task.cancel()
        client_w.close()
        redis_w.close()

    async def start(self) -> int:
        self.server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        return int(self.server.sockets[0].getsockname()[1])


async def test_a_batch_sent_again_after_a_lost_exec_reply_reaches_browsers_once(stream_name: str) -> None:
    """Redis applies the leader's MULTI/EXEC and the connection drops before the reply: the batch goes out again
    and is twice in the stream, but every node delivers each event once, in order (before: ringing, ended,
    ringing, ended — a finished call's card popped up again) (review28)."""
    url = Redis.from_url(REDIS_URL).connection_pool.connection_kwargs
    proxy = ReplyLosingProxy(int(url.get("port", 6379)))
    redis = Redis.from_url(REDIS_URL)
    via_proxy = Redis(host="127.0.0.1", port=await proxy.start(), db=int(url.get("db", 0)))
    leader = StreamPublisher(via_proxy, stream_name, "a", {"pbx1": 1}.get, maxlen=1000)
    node = Recorder()
    consumer = StreamConsumer(redis, stream_name, node, Hub(), replay_seconds=60)
    try:
        sent: list[CallEvent] = [ringing("9.1"), ended("9.1"), ringing("9.2")]
        for event in sent:
            await leader.publish(event)
        async with running(leader.run):
            await wait_for(lambda: not proxy.armed and leader.pending == 0, limit=30)
        assert await redis.xlen(stream_name) == 6, "the lost reply did not make the batch go out twice"
        async with running(consumer.run):
            await wait_for(lambda: consumer.received == 6, limit=30)
        assert node.events == sent
        assert consumer.duplicates == 3
    finally:
        await via_proxy.aclose()
        await redis.aclose()
        assert proxy.server is not None
        proxy.server.close()
