"""One AMI connection per PBX: connect, log in, watch, resync, reconnect; events go to a sink in order.

Why not panoramisk's ``Manager``/``AMIProtocol`` for the connection itself: panoramisk 1.4 decodes each TCP
read on its own with ``errors="ignore"`` (a Cyrillic name split across two reads loses its bytes), starts
callbacks with ``ensure_future`` and reconnects with ``call_later`` (tasks nobody owns or awaits), and has no
MD5 ``Challenge`` login. So this module opens the socket with asyncio streams, frames and decodes with
:mod:`crmtel.ami.protocol`, and owns every task it starts (reader, watchdog, consumer); from panoramisk it
uses the action-id generator. ``bench/ami_throughput.py`` measures panoramisk's own parser side by side.

Events are put on a bounded queue by the reader and handed to the sink by one consumer task, so the
watchdog measures the network, not the speed of the database. A ``CoreShowChannels`` listing after every
(re)connect is delivered to the sink as one resync; events that arrive while the listing is in progress
are held back and delivered after it, so the snapshot never overwrites newer news.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import random
from collections.abc import Callable, Coroutine, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

from panoramisk.utils import IdGenerator

from crmtel.ami.protocol import Message, Parser, encode_action
from crmtel.config import AmiSettings
from crmtel.errors import CrmtelError

log = logging.getLogger(__name__)


class AmiError(CrmtelError):
    """The AMI connection failed or the PBX refused something."""


class ConnectionLost(AmiError):
    """The TCP connection closed or broke."""


class LoginFailed(AmiError):
    """The PBX refused the configured user."""


class WatchdogTimeout(AmiError):
    """The PBX did not answer a Ping in time: the connection is considered dead."""


class AmiSink(Protocol):
    """Receives one PBX's events in order; every call may be slow, none may be lost."""

    async def on_event(self, pbx: str, message: Message, at: datetime) -> None:
        """One event, with the time it happened (``Timestamp`` header) or was received."""

    async def on_resync(self, pbx: str, channels: Sequence[Message], at: datetime) -> None:
        """The channels alive right after a (re)connect (``CoreShowChannel`` events)."""

    async def on_idle(self, pbx: str) -> None:
        """The queue ran dry (or a batch is full): a good moment to write out pending work."""


def utcnow() -> datetime:
    """The current time in UTC."""
    return datetime.now(UTC)


def event_time(message: Message, received: datetime) -> datetime:
    """When an event happened: Asterisk's ``Timestamp`` (``timestampevents = yes``) or the receive time."""
    stamp = message.get("Timestamp")
    if stamp:
        try:
            return datetime.fromtimestamp(float(stamp), UTC)
        except (ValueError, OverflowError, OSError):
            log.warning("ami event with a bad Timestamp %.40r: receive time used", stamp)
    return received


@dataclass(frozen=True, slots=True)
class _Resync:
    channels: tuple[Message, ...]
    at: datetime


@dataclass
class _Pending:
    future: asyncio.Future[list[Message]]
    is_list: bool
    items: list[Message] = field(default_factory=list)


class _Connection:
    """The state of one TCP connection; discarded when it breaks."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self.parser = Parser()
        self.pending: dict[str, _Pending] = {}
        self.holding: list[tuple[Message, datetime]] | None = None
        self.banner: asyncio.Future[str] = asyncio.get_running_loop().create_future()

    def fail_pending(self, err: Exception) -> None:
        for pending in self.pending.values():
            if not pending.future.done():
                pending.future.set_exception(err)
        self.pending.clear()


class AmiClient:
    """Keeps one PBX connected and feeds its events, in order, to a sink."""

    def __init__(
        self,
        settings: AmiSettings,
        sink: AmiSink,
        *,
        clock: Callable[[], datetime] = utcnow,
        max_queue: int = 10_000,
        batch: int = 500,
        flush_interval: float = 0.05,
        connect_timeout: float = 5.0,
        action_timeout: float = 10.0,
    ) -> None:
        self.settings = settings
        self.pbx = settings.name
        self.sink = sink
        self.clock = clock
        self.batch = batch
        self.flush_interval = flush_interval
        self.connect_timeout = connect_timeout
        self.action_timeout = action_timeout
        self.connected = asyncio.Event()
        self.connections = 0
        self.resyncs = 0
        self.received = 0
        self.handled = 0
        self._queue: asyncio.Queue[tuple[Message, datetime] | _Resync] = asyncio.Queue(max_queue)
        self._ids = IdGenerator("crmtel")
        self._conn: _Connection | None = None
        self._busy = False

    @property
    def idle(self) -> bool:
        """Nothing queued and nothing being handled."""
        return self._queue.empty() and not self._busy

    async def run(self) -> None:
        """Connect and keep connected until cancelled; then close everything this client started."""
        async with asyncio.TaskGroup() as group:
            group.create_task(self._consume(), name=f"ami-consume-{self.pbx}")
            group.create_task(self._connect_loop(), name=f"ami-connect-{self.pbx}")

    def drop(self) -> None:
        """Abort the current connection (it will be re-established); for operators and tests."""
        if self._conn is not None:
            self._conn.writer.transport.abort()

    async def _connect_loop(self) -> None:
        attempt = 0
        while True:
            before = self.connections
            try:
                await self._session()
            except (OSError, TimeoutError, AmiError) as err:
                log.warning("ami %s: connection ended: %s: %s", self.pbx, err.__class__.__name__, err)
            if self.connections > before:
                attempt = 0
            s = self.settings
            delay = min(s.reconnect_max, s.reconnect_min * (2**attempt)) * random.uniform(0.9, 1.1)
            attempt = min(attempt + 1, 30)
            log.info("ami %s: reconnecting in %.1f s", self.pbx, delay)
            await asyncio.sleep(delay)

    async def _session(self) -> None:
        """One connection, from connect until it fails (it always ends with an exception)."""
        s = self.settings
        # asyncio.timeout, not wait_for: on 3.11 wait_for can swallow a cancellation that races a result.
        async with asyncio.timeout(self.connect_timeout):
            reader, writer = await asyncio.open_connection(s.host, s.port)
        conn = _Connection(reader, writer)
        self._conn = conn
        tasks: set[asyncio.Task[None]] = set()
        try:
            reader_task = asyncio.create_task(self._read(conn), name=f"ami-read-{self.pbx}")
            tasks.add(reader_task)
            first: set[asyncio.Future[Any]] = {conn.banner, reader_task}
            await asyncio.wait(first, timeout=self.action_timeout, return_when=asyncio.FIRST_COMPLETED)
            if not conn.banner.done():
                if reader_task.done():
                    reader_task.result()
                raise ConnectionLost("no AMI banner")
            await self._login(conn)
            self.connections += 1
            log.info("ami %s: logged in to %s:%d", self.pbx, s.host, s.port)
            tasks.add(asyncio.create_task(self._watchdog(conn), name=f"ami-watchdog-{self.pbx}"))
            await self._resync(conn)
            self.connected.set()
            done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
            for task in done:
                task.result()
            raise ConnectionLost("connection closed")
        finally:
            self.connected.clear()
            self._conn = None
            for task in tasks:
                task.cancel()
            for task in tasks:
                with contextlib.suppress(asyncio.CancelledError, AmiError, OSError):
                    await task
            conn.fail_pending(ConnectionLost("connection closed"))
            writer.transport.abort()

    async def _read(self, conn: _Connection) -> None:
        try:
            while True:
                data = await conn.reader.read(65536)
                if not data:
                    raise ConnectionLost("closed by the PBX")
                for message in conn.parser.feed(data):
                    await self._dispatch(conn, message)
                if not conn.banner.done() and conn.parser.banner is not None:
                    conn.banner.set_result(conn.parser.banner)
        except OSError as err:
            conn.fail_pending(ConnectionLost(str(err)))
            raise ConnectionLost(str(err)) from err
        except AmiError as err:
            conn.fail_pending(err)
            raise

    async def _dispatch(self, conn: _Connection, message: Message) -> None:
        aid = message.action_id
        pending = conn.pending.get(aid) if aid is not None else None
        if pending is not None and aid is not None:
            if not pending.is_list:
                conn.pending.pop(aid)
                if not pending.future.done():
                    pending.future.set_result([message])
            elif message.response is not None:
                if message.response.lower() != "success":
                    conn.pending.pop(aid)
                    pending.future.set_exception(AmiError(message.get("Message") or "action failed"))
                elif conn.holding is None:
                    # The listing starts here: every event before it is older than the snapshot and
                    # already queued; events from now on may be newer and wait until it is applied.
                    conn.holding = []
            elif (message.get("EventList") or "").lower() == "complete":
                conn.pending.pop(aid)
                pending.items.append(message)
                if not pending.future.done():
                    pending.future.set_result(pending.items)
            else:
                pending.items.append(message)
            return
        if message.event is None:
            log.debug("ami %s: unmatched response skipped: %r", self.pbx, message.headers[:3])
            return
        self.received += 1
        item = (message, event_time(message, self.clock()))
        if conn.holding is not None:
            conn.holding.append(item)
        elif not self._queue.full():
            self._queue.put_nowait(item)
        else:
            await self._queue.put(item)

    async def _action(
        self,
        conn: _Connection,
        name: str,
        fields: Sequence[tuple[str, str]] = (),
        *,
        is_list: bool = False,
        limit: float | None = None,
    ) -> list[Message]:
        aid = str(self._ids())
        future: asyncio.Future[list[Message]] = asyncio.get_running_loop().create_future()
        conn.pending[aid] = _Pending(future, is_list)
        try:
            conn.writer.write(encode_action(name, fields, action_id=aid))
            await conn.writer.drain()
            async with asyncio.timeout(limit or self.action_timeout):
                return await future
        except OSError as err:
            raise ConnectionLost(str(err)) from err
        finally:
            conn.pending.pop(aid, None)

    async def _login(self, conn: _Connection) -> None:
        s = self.settings
        secret = s.secret.get_secret_value()
        if s.auth == "md5":
            (challenge,) = await self._action(conn, "Challenge", [("AuthType", "MD5")])
            if challenge.response != "Success" or not challenge.get("Challenge"):
                raise LoginFailed(challenge.get("Message") or "challenge refused")
            key = hashlib.md5(
                ((challenge.get("Challenge") or "") + secret).encode(), usedforsecurity=False
            ).hexdigest()
            fields = [("AuthType", "MD5"), ("Username", s.username), ("Key", key), ("Events", "on")]
        else:
            fields = [("Username", s.username), ("Secret", secret), ("Events", "on")]
        (reply,) = await self._action(conn, "Login", fields)
        if reply.response != "Success":
            raise LoginFailed(reply.get("Message") or "login refused")

    async def _watchdog(self, conn: _Connection) -> None:
        s = self.settings
        while True:
            await asyncio.sleep(s.ping_interval)
            try:
                await self._action(conn, "Ping", limit=s.ping_timeout)
            except TimeoutError:
                if self._queue.full():
                    # The reader is waiting for the consumer, not for the network: not a dead link.
                    continue
                log.warning("ami %s: no Pong within %.1f s: reconnecting", self.pbx, s.ping_timeout)
                raise WatchdogTimeout("no reply to Ping") from None

    async def _resync(self, conn: _Connection) -> None:
        try:
            listing = await self._action(conn, "CoreShowChannels", is_list=True)
        except ConnectionLost:
            raise
        except (AmiError, TimeoutError) as err:
            # A PBX that refuses the listing (AMI user without the ``reporting`` write class) still
            # streams events: keep the connection, without the resync.
            log.error("ami %s: CoreShowChannels failed, no resync: %s", self.pbx, err or "timeout")
            listing = None
        try:
            if listing is not None:
                channels = tuple(m for m in listing if m.event == "CoreShowChannel")
                at = event_time(listing[-1], self.clock()) if listing else self.clock()
                self.resyncs += 1
                await self._queue.put(_Resync(channels, at))
        finally:
            # Deliver what arrived meanwhile; the reader may append while we wait on a full queue.
            held = conn.holding or []
            i = 0
            while i < len(held):
                await self._queue.put(held[i])
                i += 1
            conn.holding = None

    async def _consume(self) -> None:
        # Group commit: the sink is told to write out when ``batch`` items were handled, or when the queue
        # ran dry and ``flush_interval`` has passed since the last write (a timer catches a quiet line).
        loop = asyncio.get_running_loop()
        since_flush = 0
        last_flush = loop.time()
        while True:
            try:
                item = self._queue.get_nowait()
            except asyncio.QueueEmpty:
                if since_flush:
                    wait = max(0.0, last_flush + self.flush_interval - loop.time())
                    try:
                        async with asyncio.timeout(wait):
                            item = await self._queue.get()
                    except TimeoutError:
                        since_flush, last_flush = 0, loop.time()
                        await self._flush()
                        continue
                else:
                    item = await self._queue.get()
            self._busy = True
            try:
                if isinstance(item, _Resync):
                    await self._guarded(self.sink.on_resync(self.pbx, item.channels, item.at), "resync")
                else:
                    # Inlined rather than through _guarded: this runs for every event.
                    try:
                        await self.sink.on_event(self.pbx, item[0], item[1])
                    except Exception:  # a bad event or a failing consumer must never stop the stream
                        log.exception("ami %s: event handler failed on %s; skipped", self.pbx, item[0].event)
                self.handled += 1
                since_flush += 1
                if since_flush >= self.batch or (
                    self._queue.empty() and loop.time() - last_flush >= self.flush_interval
                ):
                    since_flush, last_flush = 0, loop.time()
                    await self._flush()
            finally:
                self._busy = False

    async def _flush(self) -> None:
        self._busy = True
        try:
            await self._guarded(self.sink.on_idle(self.pbx), "flush")
        finally:
            self._busy = False

    async def _guarded(self, call: Coroutine[Any, Any, None], what: str) -> None:
        try:
            await call
        except Exception:  # a bad event or a failing consumer must never stop the stream
            log.exception("ami %s: %s handler failed; skipped", self.pbx, what)
