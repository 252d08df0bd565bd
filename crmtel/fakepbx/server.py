"""A fake Asterisk AMI server over real TCP that replays a recorded stream.

It speaks enough AMI for crmtel's client: banner, ``Login`` (plain and MD5 ``Challenge``), ``Ping``,
``CoreShowChannels`` (the channels still alive at the current point of the stream, computed from its own
Newchannel/Hangup), ``Logoff``, and ``Originate`` (recorded in ``originates``; answered with an error, or a
recorded answered or failed attempt rewritten for it: see :mod:`crmtel.fakepbx.originate`). The stream position is shared by all connections, like a real PBX whose
calls go on while a client is away. With ``timestamps`` on, every event carries ``Timestamp`` (as Asterisk
does with ``timestampevents = yes``) computed from the recording's times, so durations do not depend on the
replay speed or on how the bytes were chunked. With ``real_clock`` on (the simulator) the PBX's clock is the
real one instead: an event's Timestamp is the wall-clock time it is sent, never ahead of it and never going
back (speed only shortens the waits, so durations are the real ones at that speed).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
import secrets
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from crmtel.ami.protocol import Message, Parser, encode_message
from crmtel.fakepbx import originate
from crmtel.fakepbx.originate import Timed

log = logging.getLogger(__name__)

BANNER = b"Asterisk Call Manager/11.0.0\r\n"
# How long an unpaced stream may run before letting the connection's reader (the client's actions) in.
_YIELD_EVERY = 0.0005
# The header block that describes a channel, as Asterisk prints it in every channel event.
CHANNEL_FIELDS = (
    "Channel",
    "ChannelState",
    "ChannelStateDesc",
    "CallerIDNum",
    "CallerIDName",
    "ConnectedLineNum",
    "ConnectedLineName",
    "Language",
    "AccountCode",
    "Context",
    "Exten",
    "Priority",
    "Uniqueid",
    "Linkedid",
)


@dataclass(frozen=True, slots=True)
class Recorded:
    """One recorded message and its time (seconds since the recording's login)."""

    t: float
    headers: tuple[tuple[str, str], ...]


@dataclass(frozen=True, slots=True)
class Garbage:
    """Raw bytes sent as they are (for tests of bad input); ``t`` as for Recorded."""

    t: float
    data: bytes


StreamItem = Recorded | Garbage


def _is_login_response(headers: tuple[tuple[str, str], ...]) -> bool:
    return bool(headers) and headers[0] == ("Response", "Success")


# What Asterisk sends a session at login: in a recording they belong to the recorder's login (the server
# sends its own FullyBooted, with its own Uptime), not to the calls.
SESSION_EVENTS = frozenset({"FullyBooted", "SuccessfulAuth"})


def _is_session_event(headers: tuple[tuple[str, str], ...]) -> bool:
    return bool(headers) and headers[0][0] == "Event" and headers[0][1] in SESSION_EVENTS


def load_jsonl(path: Path) -> list[Recorded]:
    """Read a ``.jsonl`` trace; its banner, Login response and session events are dropped (the server's own)."""
    out: list[Recorded] = []
    for line in path.read_text(encoding="utf-8").splitlines():
        row = json.loads(line)
        if "headers" not in row:
            continue
        headers = tuple((str(k), str(v)) for k, v in row["headers"])
        if (not out and _is_login_response(headers)) or _is_session_event(headers):
            continue
        out.append(Recorded(float(row["t"]), headers))
    return out


def load_ami(path: Path) -> list[Recorded]:
    """Read a raw ``.ami`` trace (as ``load_jsonl``); times come from the sibling ``.jsonl`` when there is one."""
    parser = Parser()
    messages = parser.feed(path.read_bytes())
    times: list[float] = []
    sibling = path.with_suffix(".jsonl")
    if sibling.exists():
        rows = (json.loads(line) for line in sibling.read_text(encoding="utf-8").splitlines())
        times = [float(row["t"]) for row in rows if "headers" in row]
    out: list[Recorded] = []
    for i, msg in enumerate(messages):
        if (i == 0 and _is_login_response(msg.headers)) or _is_session_event(msg.headers):
            continue
        out.append(Recorded(times[i] if i < len(times) else 0.0, msg.headers))
    return out


def recording_epoch(stream: Sequence[StreamItem]) -> float | None:
    """Wall-clock time (epoch seconds) of the recording's t=0, from ``EventTV`` or a Linkedid."""
    for item in stream:
        if not isinstance(item, Recorded):
            continue
        msg = Message(item.headers)
        tv = msg.get("EventTV")
        if tv:
            with contextlib.suppress(ValueError):
                return datetime.strptime(tv, "%Y-%m-%dT%H:%M:%S.%f%z").timestamp() - item.t
        if msg.event == "Newchannel":
            linkedid = msg.get("Uniqueid") or ""
            with contextlib.suppress(ValueError):
                return float(linkedid) - item.t
    return None


def merge_streams(streams: Sequence[tuple[float, Sequence[StreamItem]]]) -> list[StreamItem]:
    """Interleave several streams by time; each is shifted by its offset (seconds)."""
    tagged: list[tuple[float, int, int, StreamItem]] = []
    for n, (offset, stream) in enumerate(streams):
        for i, item in enumerate(stream):
            shifted: StreamItem = (
                Recorded(item.t + offset, item.headers)
                if isinstance(item, Recorded)
                else Garbage(item.t + offset, item.data)
            )
            tagged.append((shifted.t, n, i, shifted))
    tagged.sort(key=lambda x: (x[0], x[1], x[2]))
    return [x[3] for x in tagged]


@dataclass
class _Channel:
    created: float
    fields: dict[str, str]
    application: str = ""
    data: str = ""
    bridge: str = ""


@dataclass
class ChannelBook:
    """The channels alive at the current point of the stream."""

    channels: dict[str, _Channel] = field(default_factory=dict)

    def apply(self, t: float, msg: Message) -> None:
        """Update the book with one streamed event."""
        headers = dict(reversed(msg.headers))
        event = headers.get("Event")
        uniqueid = headers.get("Uniqueid")
        if event is None or uniqueid is None:
            return
        if event == "Hangup":
            self.channels.pop(uniqueid, None)
            return
        chan = self.channels.get(uniqueid)
        if chan is None:
            if event != "Newchannel":
                return
            chan = self.channels[uniqueid] = _Channel(t, {})
        for name in CHANNEL_FIELDS:
            value = headers.get(name)
            if value is not None:
                chan.fields[name] = value
        if event == "Newexten":
            chan.application = headers.get("Application") or ""
            chan.data = headers.get("AppData") or ""
        elif event == "BridgeEnter":
            chan.bridge = headers.get("BridgeUniqueid") or ""
        elif event == "BridgeLeave":
            chan.bridge = ""

    def listing(self, now: float, action_id: str) -> list[tuple[tuple[str, str], ...]]:
        """CoreShowChannel events for every live channel, then the Complete event."""
        out: list[tuple[tuple[str, str], ...]] = []
        for chan in self.channels.values():
            seconds = max(0, int(now - chan.created))
            duration = f"{seconds // 3600:02d}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"
            out.append(
                (
                    ("Event", "CoreShowChannel"),
                    ("ActionID", action_id),
                    *((name, chan.fields.get(name, "")) for name in CHANNEL_FIELDS),
                    ("Application", chan.application),
                    ("ApplicationData", chan.data),
                    ("Duration", duration),
                    ("BridgeId", chan.bridge),
                )
            )
        out.append(
            (
                ("Event", "CoreShowChannelsComplete"),
                ("ActionID", action_id),
                ("EventList", "Complete"),
                ("ListItems", str(len(out))),
            )
        )
        return out


class FakeAmiServer:
    """Replays a stream to whoever logs in: one position, every event sent to every logged-in connection.

    As Asterisk does, each event goes to every session that logged in (not to one of them); the stream
    advances while at least one session listens (``advance`` lets calls happen with nobody told).
    """

    def __init__(
        self,
        stream: Sequence[StreamItem],
        *,
        username: str = "crmtel",
        secret: str = "secret",
        speed: float | None = None,
        chunk_size: int = 64 * 1024,
        timestamps: bool = True,
        epoch: float | None = None,
        drop_after: int | None = None,
        lose_on_drop: int = 0,
        pause_after: int | None = None,
        live: bool = False,
        wall: Callable[[], float] = time.time,
        real_clock: bool = False,
    ) -> None:
        self.stream = list(stream)
        # Live mode (the simulator): the stream never finishes, ``extend`` adds to it, and times are
        # absolute from ``start()`` instead of from each connection's first item.
        self.live = live
        self._more = asyncio.Event()
        self._origin = 0.0
        self._now_t = self.stream[0].t if self.stream else 0.0
        self.username = username
        self.secret = secret
        self.speed = speed
        self.chunk_size = max(1, chunk_size)
        self.timestamps = timestamps
        found = recording_epoch(self.stream)
        self.epoch = epoch if epoch is not None else (found if found is not None else 0.0)
        # The PBX's own clock (epoch seconds) when events carry no Timestamp; and when it booted, for
        # FullyBooted's Uptime (set by ``start``, again by ``restart``).
        self.wall = wall
        self.real_clock = real_clock
        self._last_stamp = 0.0
        self.booted: float | None = None
        self._port = 0
        # Test hook: logins accepted before the PBX has fully booted get their FullyBooted at ``finish_boot``.
        self.booting = False
        self._unbooted: set[_Session] = set()
        # Test hooks: drop the connection once after this many stream items, skipping the next
        # ``lose_on_drop`` items (the PBX went on while the client was away); or pause the stream there.
        self.drop_after = drop_after
        self.lose_on_drop = lose_on_drop
        self.pause_after = pause_after
        self.answer_pings = True
        # Test hook: answer CoreShowChannels with an error, as Asterisk does for a user without the privilege.
        self.refuse_listing = False
        # Test hook: called with (position, item) for every item the PBX gets past, sent or not (a test's
        # stand-in for what Asterisk does beside AMI, e.g. writing its CDR).
        self.on_item: Callable[[int, StreamItem], None] | None = None
        # Bench hook: called with (position, item) once a stream item has been written to every listener.
        self.on_sent: Callable[[int, StreamItem], None] | None = None
        # Originate: every request received, and how the next ones go: ``originate_error`` refuses them at
        # once (``Response: Error``); else ``originate_outcome`` "answered" plays the answered outbound call,
        # "busy", "no-answer", "declined" or "not-registered" the failed attempt recorded on a real Asterisk.
        self.originates: list[Message] = []
        self.originate_error: str | None = None
        self.originate_outcome = "answered"
        self.originate_speed: float | None = 20.0
        self._ids = originate.IdSource(int(time.time()))
        self.cursor = 0
        self._host = "127.0.0.1"
        self.logins = 0
        self.pings = 0
        self.finished = asyncio.Event()
        self._resume = asyncio.Event()
        self._book = ChannelBook()
        self._server: asyncio.Server | None = None
        self._handlers: set[asyncio.Task[None]] = set()
        self._writers: set[asyncio.StreamWriter] = set()
        # Sessions logged in, in login order: each gets every event. One pump task sends the stream to
        # all of them; ``_emit`` is held while an item is consumed and written to every listener, so a
        # listing (CoreShowChannels) taken under it matches what every client has been sent.
        self._listeners: dict[_Session, None] = {}
        self._listening = asyncio.Event()
        self._emit = asyncio.Lock()
        self._pump_task: asyncio.Task[None] | None = None
        if not self.stream and not live:
            self.finished.set()

    @property
    def port(self) -> int:
        """The TCP port the server listens on."""
        if self._server is None:
            raise RuntimeError("server not started")
        port: int = self._server.sockets[0].getsockname()[1]
        return port

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> None:
        """Listen on ``host:port`` (0: any free port)."""
        self._origin = asyncio.get_running_loop().time()
        if self.booted is None:
            self.booted = self.now()
        self._server = await asyncio.start_server(self._on_client, host, port)
        self._host, self._port = host, self.port

    def fully_booted(self) -> tuple[tuple[str, str], ...]:
        """The FullyBooted event as Asterisk 22 sends it (with its Uptime and LastReload)."""
        uptime = str(self.uptime)
        return (
            ("Event", "FullyBooted"),
            ("Privilege", "system,all"),
            ("Uptime", uptime),
            ("LastReload", uptime),
            ("Status", "Fully Booted"),
        )

    async def finish_boot(self) -> None:
        """A PBX started with ``booting``: it has booted now and tells every session logged in meanwhile."""
        self.booting = False
        waiting, self._unbooted = self._unbooted, set()
        for session in waiting:
            async with session.lock:
                with contextlib.suppress(ConnectionError):
                    await session.send(self.fully_booted(), event=True)

    def now(self) -> float:
        """The PBX's time (epoch seconds): the recording's when events are timestamped, else ``wall``."""
        if self.real_clock or not self.timestamps:
            return self.wall()
        return self.epoch + self.stream_time

    @property
    def uptime(self) -> int:
        """Whole seconds since the PBX (last) booted, as Asterisk's FullyBooted says."""
        return max(0, int(self.now() - (self.booted if self.booted is not None else self.now())))

    async def crash(self) -> None:
        """``kill -9`` of the PBX: every connection cut, no Hangup sent, nothing listening, its calls gone.

        What the stream still held never happens (those calls died with the PBX); ``restart`` brings it back.
        """
        await self.close()
        self._book = ChannelBook()
        self.cursor = len(self.stream)
        if not self.live:
            self.finished.set()

    async def restart(self, down_for: float = 0.0) -> None:
        """Boot again on the same port after ``down_for`` seconds of recording time (timestamped streams)."""
        self._now_t += down_for
        self.booted = self.now()
        await self.start(self._host, self._port)

    async def close(self) -> None:
        """Stop listening and close every connection."""
        if self._server is not None:
            self._server.close()
        for writer in list(self._writers):
            writer.transport.abort()
        # Handlers end on their own once their transport is gone; cancelling a start_server callback
        # task makes asyncio log a spurious error.
        if self._handlers:
            await asyncio.wait(list(self._handlers), timeout=5)
        if self._server is not None:
            await self._server.wait_closed()
            self._server = None
        if self._pump_task is not None:
            self._pump_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._pump_task
            self._pump_task = None

    def resume(self) -> None:
        """Continue a stream held by ``pause_after``."""
        self.pause_after = None
        self._resume.set()

    def drop_all(self) -> None:
        """Abort every open connection now (as a network failure would)."""
        for writer in list(self._writers):
            writer.transport.abort()

    @property
    def stream_time(self) -> float:
        """Recording time of the current stream position."""
        return self._now_t

    @property
    def clock(self) -> float:
        """Live mode: the stream time it is now."""
        return (asyncio.get_running_loop().time() - self._origin) * (self.speed or 1.0)

    def extend(self, items: Sequence[StreamItem]) -> None:
        """Live mode: merge more items into the part not yet sent (what was sent is forgotten)."""
        tail = [*self.stream[self.cursor :], *items]
        tail.sort(key=lambda item: item.t)
        self.stream = tail
        self.cursor = 0
        self._more.set()

    def originate_events(self, request: Message) -> list[Timed]:
        """What the PBX sends after accepting ``request``."""
        return originate.rewritten(request, originate.recorded(self.originate_outcome), self._ids)

    def _consume(self) -> StreamItem:
        item = self.stream[self.cursor]
        self.cursor += 1
        self._now_t = max(self._now_t, item.t)
        if isinstance(item, Recorded):
            self._book.apply(item.t, Message(item.headers))
        if self.on_item is not None:
            self.on_item(self.cursor - 1, item)
        return item

    def advance(self, count: int) -> None:
        """Let ``count`` items happen with nobody told (the calls go on while crmtel is down)."""
        for _ in range(count):
            if self.cursor >= len(self.stream):
                break
            self._consume()
        if self.cursor >= len(self.stream) and not self.live:
            self.finished.set()

    def _timestamp(self) -> str:
        if self.real_clock:
            return f"{self.real_now():.6f}"
        return f"{self.epoch + self.stream_time:.6f}"

    def real_now(self) -> float:
        """``real_clock``: the wall clock now, never before a time already sent (a clock stepped back waits)."""
        self._last_stamp = max(self._last_stamp, self.wall())
        return self._last_stamp

    # -- sending the stream to every listener ----------------------------------------------------------

    def _listen(self, session: _Session) -> None:
        """``session`` logged in: from now on it gets every event (the pump starts with the first one)."""
        self._listeners[session] = None
        self._listening.set()
        if self._pump_task is None or self._pump_task.done():
            self._pump_task = asyncio.create_task(self._pump(), name="fake-ami-stream")

    def _unlisten(self, session: _Session) -> None:
        self._listeners.pop(session, None)
        if not self._listeners:
            self._listening.clear()

    async def _send_all(self, data: bytes) -> None:
        """Write ``data`` to every listener (the caller holds ``_emit``); a broken one stops listening."""
        for session in list(self._listeners):
            async with session.lock:
                try:
                    await session.write(data)
                except (ConnectionError, RuntimeError):
                    self._unlisten(session)

    def _encoded(self, item: StreamItem) -> bytes:
        if isinstance(item, Garbage):
            return item.data
        headers = item.headers
        if self.timestamps:
            headers = _with_timestamp(headers, self._timestamp())
        return encode_message(headers)

    async def _pump(self) -> None:
        """Send the stream, paced, to every session logged in; wait while nobody listens."""
        loop = asyncio.get_running_loop()
        base_wall = loop.time()
        base_t = self.stream[self.cursor].t if self.cursor < len(self.stream) else 0.0
        next_yield = base_wall
        while True:
            if not self._listeners:
                await self._listening.wait()
                base_wall = loop.time()
                base_t = self.stream[self.cursor].t if self.cursor < len(self.stream) else 0.0
                continue
            if self.cursor >= len(self.stream):
                if not self.live:
                    return
                self._more.clear()
                await self._more.wait()
                continue
            if self.pause_after is not None and self.cursor >= self.pause_after:
                self._resume.clear()
                await self._resume.wait()
                if self.cursor < len(self.stream):
                    base_wall, base_t = loop.time(), self.stream[self.cursor].t
                continue
            item = self.stream[self.cursor]
            if self.live:
                delay = self._origin + item.t / (self.speed or 1.0) - loop.time()
            elif self.speed:
                delay = base_wall + (item.t - base_t) / self.speed - loop.time()
            else:
                delay = 0.0
            if delay > 0:
                # Wake up early when an extend() puts something sooner in front of this item.
                self._more.clear()
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(delay):
                        await self._more.wait()
                continue
            async with self._emit:
                item = self._consume()
                await self._send_all(self._encoded(item))
                if self.on_sent is not None:
                    self.on_sent(self.cursor - 1, item)
                if self.cursor >= len(self.stream) and not self.live:
                    self.finished.set()
                if self.drop_after is not None and self.cursor >= self.drop_after:
                    await self._drop()
            # A drain that does not block does not yield: without this the reader side would not run (and
            # actions would go unanswered) until the socket's buffer filled or the stream ended. Yielding
            # after every item would cost half the unpaced rate; every _YIELD_EVERY seconds is prompt enough.
            if loop.time() >= next_yield:
                await asyncio.sleep(0)
                next_yield = loop.time() + _YIELD_EVERY

    async def _drop(self) -> None:
        """The drop hook (caller holds ``_emit``): end every connection, skipping ``lose_on_drop`` items."""
        self.drop_after = None
        for _ in range(self.lose_on_drop):
            if self.cursor >= len(self.stream):
                break
            self._consume()
        if self.cursor >= len(self.stream):
            self.finished.set()
        for session in list(self._listeners):
            self._unlisten(session)
            async with session.lock:
                session.closed_for_writing = True
                if self.lose_on_drop:
                    session.writer.transport.abort()
                else:
                    # Half-close: what was sent still arrives, then EOF. A full close with the client's
                    # actions unread would make the kernel send RST, which can discard data in flight.
                    with contextlib.suppress(OSError, RuntimeError):
                        session.writer.write_eof()

    async def _on_client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._handlers.add(task)
        self._writers.add(writer)
        session = _Session(self, reader, writer)
        try:
            await session.run()
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            self._writers.discard(writer)
            self._handlers.discard(task)
            writer.transport.abort()


class _Session:
    """One client connection of the fake server.

    Every write happens under ``lock``, and whatever must reach the client contiguously (one stream item
    together with its effect on the channel book; an action's whole reply) is done under one hold of it,
    so a reply is never interleaved with stream events and a listing matches what the client has seen.
    """

    def __init__(self, server: FakeAmiServer, reader: asyncio.StreamReader, writer: asyncio.StreamWriter):
        self.server = server
        self.reader = reader
        self.writer = writer
        self.lock = asyncio.Lock()
        self.challenge: str | None = None
        # Originated calls being played on this connection.
        self.plays: set[asyncio.Task[None]] = set()
        # Set once the drop hook half-closed or aborted the connection: nothing more is written (a write
        # after ``write_eof`` raises RuntimeError).
        self.closed_for_writing = False

    def encode(self, headers: Sequence[tuple[str, str]], *, event: bool = False) -> bytes:
        if event and self.server.timestamps:
            headers = _with_timestamp(headers, self.server._timestamp())
        return encode_message(headers)

    async def write(self, data: bytes) -> None:
        """Write ``data`` and drain; the caller holds ``lock``."""
        if self.closed_for_writing:
            return
        size = self.server.chunk_size
        if size >= len(data):
            self.writer.write(data)
        else:
            for i in range(0, len(data), size):
                self.writer.write(data[i : i + size])
                # Yield so the reader side sees the pieces as separate reads where it can.
                await asyncio.sleep(0)
        await self.writer.drain()

    async def send(self, headers: Sequence[tuple[str, str]], *, event: bool = False) -> None:
        """Write one message; the caller holds ``lock``."""
        await self.write(self.encode(headers, event=event))

    async def reply(self, response: Sequence[tuple[str, str]], *events: Sequence[tuple[str, str]]) -> None:
        """Write an action's Response and the events that belong to it, in one piece."""
        async with self.lock:
            await self._reply(response, events)

    async def _reply(
        self, response: Sequence[tuple[str, str]], events: Iterable[Sequence[tuple[str, str]]]
    ) -> None:
        await self.write(self.encode(response) + b"".join(self.encode(e, event=True) for e in events))

    async def run(self) -> None:
        async with self.lock:
            await self.write(BANNER)
        parser = Parser(expect_banner=False)
        try:
            while True:
                data = await self.reader.read(4096)
                if not data:
                    return
                # After the drop hook's EOF, actions are still read (and counted) but ``write`` drops
                # their replies, as on a dead link, until the client closes the connection.
                for msg in parser.feed(data):
                    if not await self.handle(msg):
                        return
        finally:
            self.server._unlisten(self)
            tasks = list(self.plays)
            for task in tasks:
                task.cancel()
            for task in tasks:
                with contextlib.suppress(asyncio.CancelledError):
                    await task

    async def handle(self, msg: Message) -> bool:
        action = (msg.get("Action") or "").lower()
        aid = msg.action_id
        ids: tuple[tuple[str, str], ...] = (("ActionID", aid),) if aid is not None else ()
        server = self.server
        if action == "challenge":
            self.challenge = str(secrets.randbelow(10**9))
            await self.reply((("Response", "Success"), *ids, ("Challenge", self.challenge)))
        elif action == "login":
            if self._login_ok(msg):
                server.logins += 1
                accepted = (("Response", "Success"), *ids, ("Message", "Authentication accepted"))
                if server.booting:
                    # Still booting: Asterisk says FullyBooted to every session once it has booted.
                    server._unbooted.add(self)
                    await self.reply(accepted)
                else:
                    await self.reply(accepted, server.fully_booted())
                server._listen(self)
            else:
                await self.reply((("Response", "Error"), *ids, ("Message", "Authentication failed")))
                return False
        elif action == "ping":
            server.pings += 1
            if server.answer_pings:
                await self.reply(
                    (("Response", "Success"), *ids, ("Ping", "Pong"), ("Timestamp", server._timestamp()))
                )
        elif action == "coreshowchannels" and not server.refuse_listing:
            response = (
                ("Response", "Success"),
                *ids,
                ("EventList", "start"),
                ("Message", "Channels will follow"),
            )
            async with server._emit, self.lock:
                # Under ``_emit`` the book holds exactly the items every client has been sent (the pump
                # consumes and writes an item under it), as Asterisk lists the channels of the moment it
                # handles the action.
                await self._reply(response, server._book.listing(server.stream_time, aid or ""))
        elif action == "logoff":
            await self.reply((("Response", "Goodbye"), *ids, ("Message", "Thanks for all the fish.")))
            return False
        elif action == "coreshowchannels":
            await self.reply((("Response", "Error"), *ids, ("Message", "Permission denied")))
        elif action == "originate":
            await self.originate(msg, ids)
        else:
            await self.reply((("Response", "Error"), *ids, ("Message", "Invalid/unknown command")))
        return True

    async def originate(self, msg: Message, ids: tuple[tuple[str, str], ...]) -> None:
        """Accept (or refuse) an Originate and play what follows on this connection."""
        server = self.server
        server.originates.append(msg)
        if server.originate_error is not None:
            await self.reply((("Response", "Error"), *ids, ("Message", server.originate_error)))
            return
        if not msg.get("Channel") or (not msg.get("Exten") and not msg.get("Application")):
            await self.reply((("Response", "Error"), *ids, ("Message", "Channel and Exten are required")))
            return
        await self.reply((("Response", "Success"), *ids, ("Message", "Originate successfully queued")))
        task = asyncio.create_task(self._play(server.originate_events(msg)), name="fake-ami-originate")
        self.plays.add(task)
        task.add_done_callback(self.plays.discard)

    async def _play(self, events: Sequence[Timed]) -> None:
        # Timestamps from the recording's own times, so durations do not depend on the pacing (on a
        # real-clock PBX: the time each event is sent, like everything else it says).
        base = time.time()
        for (delay, headers), item in zip(
            originate.pace(events, self.server.originate_speed), events, strict=True
        ):
            if delay:
                await asyncio.sleep(delay)
            server = self.server
            async with server._emit:
                if self.closed_for_writing:
                    return
                server._book.apply(server.stream_time, Message(headers))
                if not server.timestamps:
                    stamped = tuple(headers)
                elif server.real_clock:
                    stamped = _with_timestamp(headers, server._timestamp())
                else:
                    stamped = _with_timestamp(headers, f"{base + item.t:.6f}")
                # The call's events go to every session, as Asterisk's do (not only the one that asked).
                await server._send_all(encode_message(stamped))

    def _login_ok(self, msg: Message) -> bool:
        server = self.server
        if msg.get("Username") != server.username:
            return False
        if (msg.get("AuthType") or "").lower() == "md5":
            if self.challenge is None:
                return False
            key = hashlib.md5((self.challenge + server.secret).encode(), usedforsecurity=False).hexdigest()
            return msg.get("Key") == key
        return msg.get("Secret") == server.secret


def _with_timestamp(headers: Sequence[tuple[str, str]], stamp: str) -> tuple[tuple[str, str], ...]:
    # Asterisk prints Timestamp right after Privilege (or after Event when there is none).
    out = list(headers)
    at = 2 if len(out) > 1 and out[1][0] == "Privilege" else 1
    out.insert(at, ("Timestamp", stamp))
    return tuple(out)
