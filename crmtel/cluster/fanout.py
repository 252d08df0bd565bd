"""Live call events from the leader of each PBX to every node's browsers, through one Redis stream.

A stream rather than pub/sub: a node that loses Redis reads on from the last entry it had once Redis is back,
so it misses nothing, and then asks its browsers to reconnect for a fresh snapshot. The leader queues what it
could not send (bounded) and sends it in order when Redis answers again; tracking never waits for Redis.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections import deque
from collections.abc import Callable
from typing import Protocol, cast

import structlog
from redis.asyncio import Redis
from redis.exceptions import RedisError

from crmtel.cluster.codec import BadEvent, decode, encode, pbx_of
from crmtel.domain import CallEvent

log = structlog.get_logger(__name__)

FIELD_EVENT = b"e"
FIELD_NODE = b"n"
FIELD_SENT = b"t"
FIELD_PBX = b"p"
FIELD_EPOCH = b"g"
# "<publisher>:<n>": the publisher's own counter, given when the event is queued. A batch sent again after a
# reply that never came (Redis applied the MULTI/EXEC, the connection dropped) is in the stream twice; the
# consumers drop the second copy by this.
FIELD_SEQ = b"s"

Epochs = Callable[[str], int | None]
# XREAD's reply without decode_responses: [[stream, [(entry id, {field: value})]]].
_Reply = list[tuple[bytes, list[tuple[bytes, dict[bytes, bytes]]]]]


def _cancelled_inside(err: BaseException | None = None) -> None:
    """Re-raise a cancellation the Redis client swallowed (redis-py's retry turns a cancelled blocking read
    into an error, or into another read): otherwise the loop would go on and the task never end."""
    task = asyncio.current_task()
    if task is not None and task.cancelling():
        raise asyncio.CancelledError from err


class LocalNotifier(Protocol):
    """Where a node's copy of each live event goes (the push notifier feeding its browsers)."""

    async def publish(self, event: CallEvent) -> None:
        """Deliver one live event to this node's browsers."""
        ...


class Refreshable(Protocol):
    """The node's browsers, which can be asked to reconnect for a fresh snapshot."""

    def refresh_all(self) -> int:
        """Ask every browser to reconnect; returns how many were asked."""
        ...


class StreamPublisher:
    """The leader's notifier: every live event is appended to the stream, in order, without blocking."""

    def __init__(
        self,
        redis: Redis,
        stream: str,
        node: str,
        epochs: Epochs,
        *,
        maxlen: int,
        backlog: int = 10_000,
        batch: int = 500,
    ) -> None:
        self._redis = redis
        self._epochs = epochs
        self._stream = stream
        self._node = node.encode()
        self._maxlen = maxlen
        self._pending: deque[dict[bytes, bytes]] = deque()
        self._backlog = backlog
        self._batch = batch
        # The events of the round trip under way (``pending`` counts them until Redis took them).
        self._in_flight: list[dict[bytes, bytes]] = []
        self._wakeup = asyncio.Event()
        self._instance = uuid.uuid4().hex[:12]
        self._seq = 0
        self.sent = 0
        self.round_trips = 0
        self.dropped = 0
        self.failures = 0
        self.not_leading = 0

    @property
    def pending(self) -> int:
        """Events waiting for Redis."""
        return len(self._pending) + len(self._in_flight)

    async def publish(self, event: CallEvent) -> None:
        """Queue the event for the stream (the sender task writes it), tagged with the PBX's epoch."""
        pbx = pbx_of(event)
        epoch = self._epochs(pbx)
        if epoch is None:
            # This node has just lost the PBX: the new leader speaks for it now.
            self.not_leading += 1
            return
        self._seq += 1
        if len(self._pending) >= self._backlog:
            self._pending.popleft()
            self.dropped += 1
            log.warning("cluster.fanout_backlog_full", dropped=self.dropped)
        self._pending.append(
            {
                FIELD_EVENT: encode(event),
                FIELD_NODE: self._node,
                FIELD_PBX: pbx.encode(),
                FIELD_EPOCH: str(epoch).encode(),
                FIELD_SEQ: f"{self._instance}:{self._seq}".encode(),
                FIELD_SENT: b"",
            }
        )
        self._wakeup.set()

    async def run(self) -> None:
        """Send queued events until cancelled; while Redis is down, retry every second."""
        while True:
            await self._wakeup.wait()
            self._wakeup.clear()
            while self._pending:
                # Everything queued goes in one round trip (MULTI/EXEC: all of it or none, in order). One XADD
                # per round trip made a busy leader fall seconds behind: each waited for a turn of its loop.
                batch = self._in_flight = [
                    self._pending.popleft() for _ in range(min(self._batch, len(self._pending)))
                ]
                stamp = repr(time.time()).encode()
                sent = False
                try:
                    async with self._redis.pipeline(transaction=True) as pipe:
                        for fields in batch:
                            fields[FIELD_SENT] = stamp
                            pipe.xadd(self._stream, fields, maxlen=self._maxlen, approximate=True)  # type: ignore[arg-type]
                        await pipe.execute()
                    sent = True
                except (RedisError, OSError) as err:
                    _cancelled_inside(err)
                    self.failures += 1
                    if self.failures == 1 or self.failures % 60 == 0:
                        log.warning("cluster.fanout_unavailable", error=str(err), waiting=self.pending)
                finally:
                    if not sent:  # failed or cancelled: back in front, in order, to be sent again
                        self._pending.extendleft(reversed(batch))
                        self._in_flight = []
                if not sent:
                    await asyncio.sleep(1.0)
                    continue
                self._in_flight = []
                self.sent += len(batch)
                self.round_trips += 1


class StreamConsumer:
    """Every node's reader of the stream: each event goes to the local notifier, in stream order."""

    def __init__(
        self,
        redis: Redis,
        stream: str,
        sink: LocalNotifier,
        browsers: Refreshable,
        *,
        replay_seconds: float = 3600.0,
        batch: int = 500,
    ) -> None:
        self._redis = redis
        self._stream = stream
        self._sink = sink
        self._browsers = browsers
        self._replay = replay_seconds
        self._batch = batch
        self.received = 0
        self.reconnects = 0
        self.lag_seconds = 0.0
        self.connected = False
        self.stale = 0
        # The highest epoch seen per PBX: entries of an older one come from a leader that was replaced.
        self._epochs: dict[bytes, int] = {}
        # Per PBX, the publisher and counter of the last entry delivered: a second copy of it is dropped.
        self._last: dict[bytes, tuple[bytes, int]] = {}
        self.duplicates = 0

    async def run(self) -> None:
        """Read until cancelled: first the recent history (calls live now), then new entries as they come."""
        # Stream ids are milliseconds: start an hour back, so calls already in progress are known.
        last = f"{int((time.time() - self._replay) * 1000)}-0".encode()
        lost = False
        while True:
            try:
                if not self.connected:
                    await self._redis.ping()  # so /healthz knows at once, not after a blocked read
                    self.connected = True
                reply = await self._redis.xread({self._stream: last}, count=self._batch, block=1000)
                _cancelled_inside()
            except (RedisError, OSError) as err:
                _cancelled_inside(err)
                if self.connected or not lost:
                    log.warning("cluster.fanout_lost", error=str(err))
                self.connected, lost = False, True
                await asyncio.sleep(1.0)
                continue
            if lost:
                # Back after an outage: what was missed has just been read; pages start again from it.
                self.reconnects += 1
                lost = False
                asked = self._browsers.refresh_all()
                log.info("cluster.fanout_back", browsers_refreshed=asked)
            for _stream, entries in cast(_Reply, reply or []):
                for entry_id, fields in entries:
                    last = entry_id
                    await self._deliver(fields)

    async def _deliver(self, fields: dict[bytes, bytes]) -> None:
        self.received += 1
        try:
            event = decode(fields[FIELD_EVENT])
            pbx, epoch = fields[FIELD_PBX], int(fields[FIELD_EPOCH])
        except (BadEvent, KeyError, ValueError) as err:
            log.warning("cluster.fanout_bad_entry", error=str(err))
            return
        if epoch < self._epochs.get(pbx, 0):
            self.stale += 1
            return
        self._epochs[pbx] = epoch
        publisher, _, counter = fields.get(FIELD_SEQ, b"").partition(b":")
        if counter.isdigit():  # entries of a node without it (a rolling upgrade) are delivered as they are
            seq = int(counter)
            last = self._last.get(pbx)
            if last is not None and last[0] == publisher and seq <= last[1]:
                self.duplicates += 1
                return
            self._last[pbx] = (publisher, seq)
        with contextlib.suppress(ValueError):
            self.lag_seconds = max(0.0, time.time() - float(fields.get(FIELD_SENT, b"0")))
        await self._sink.publish(event)
