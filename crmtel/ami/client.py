"""One AMI connection per PBX: connect, log in, watch, resync, reconnect; events go to a sink in order.

From panoramisk (1.4): the TCP connection is its ``AMIProtocol`` (subclassed in :mod:`crmtel.ami.connection`,
opened with ``loop.create_connection``), and every action is a panoramisk ``Action`` sent with the protocol's
``send``: its action id, its ``future``, and its ``add_message`` logic, which decides when a reply or a list
(the ``CoreShowChannels`` EventList) is complete. Login (plain secret, or MD5 ``Challenge``), Ping,
CoreShowChannels and Logoff all go that way.

crmtel owns what panoramisk 1.4 gets wrong or does not do:

- framing and decoding: ``data_received`` feeds :class:`crmtel.ami.protocol.Parser`, which decodes a message
  only when it is whole (panoramisk decodes each TCP read with ``errors="ignore"``: a Cyrillic name split
  across two reads loses its bytes), and an exception while handling one message skips that message instead
  of closing the connection;
- the watchdog: Ping with a timeout, and the reply checked (panoramisk's ``ping`` never looks at it);
- reconnect with backoff, and the resync after each login (panoramisk's ``Manager`` reconnects with
  ``call_later`` and re-sends queued actions; its ``factory`` is never set here);
- task ownership: the consumer, the connect loop and the watchdog are created here and cancelled and awaited
  on shutdown (panoramisk starts callbacks with ``ensure_future``, owned by nobody);
- the bounded event queue and its consumer. Events are queued by ``data_received`` and handed to the sink by
  one consumer task, so the watchdog measures the network, not the speed of the database. When the queue is
  full the connection stops reading (TCP pushes back on the PBX) until the consumer has caught up.
- the FastAGI server is not here but in :mod:`crmtel.routing.agi`, for the same reason (panoramisk's
  ``fast_agi`` can spin on a client that disconnects early).

A ``CoreShowChannels`` listing after every (re)connect is delivered to the sink as one resync; events that
arrive while the listing is in progress are held back and delivered after it, so the snapshot never
overwrites newer news. ``bench/ami_throughput.py`` measures panoramisk's own parser side by side.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import random
import time
from collections import deque
from collections.abc import Callable, Coroutine, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

from crmtel.ami.connection import AmiConnection, AmiError, ConnectionLost, make_action, replies
from crmtel.ami.protocol import Message
from crmtel.config import AmiSettings
from crmtel.memory import Trimmer

__all__ = [
    "AmiClient",
    "AmiError",
    "AmiSink",
    "ConnectionLost",
    "LoginFailed",
    "PbxShuttingDown",
    "WatchdogTimeout",
    "event_time",
    "utcnow",
]

log = logging.getLogger(__name__)

# The longest wait between two logins the PBX refused (the wait doubles from ``login_retry``).
LOGIN_RETRY_MAX = 600.0


class LoginFailed(AmiError):
    """The PBX refused the configured user."""


class PbxShuttingDown(AmiError):
    """The PBX answered an action with "Asterisk is shutting down": it is going away, not refusing anyone."""


# What Asterisk (manager.c) answers to every action, Login and Challenge included, while it shuts down or
# restarts. Not a refused login: the PBX is back within seconds and must be logged in to at once.
SHUTTING_DOWN = "Asterisk is shutting down"


def _refusal(reply: Message, default: str) -> AmiError:
    message = reply.get("Message") or default
    return PbxShuttingDown(message) if message == SHUTTING_DOWN else LoginFailed(message)


class WatchdogTimeout(AmiError):
    """The PBX did not answer a Ping in time (or answered it with an error): the connection is considered dead."""


class AmiSink(Protocol):
    """Receives one PBX's events in order; every call may be slow, none may be lost."""

    async def on_event(self, pbx: str, message: Message, at: datetime) -> None:
        """One event, with the time it happened (``Timestamp`` header) or was received."""

    async def on_resync(self, pbx: str, channels: Sequence[Message], at: datetime) -> None:
        """The channels alive right after a (re)connect (``CoreShowChannel`` events)."""

    async def on_idle(self, pbx: str) -> None:
        """The queue ran dry (or a batch is full): a good moment to write out pending work."""

    async def on_lost(self, pbx: str, at: datetime) -> None:
        """The logged-in connection ended at ``at`` (not on a clean stop); every event before it came first."""


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


@dataclass(frozen=True, slots=True)
class _Lost:
    at: datetime


# How long a failed Originate's reply waits for the end of the channel it made (Asterisk 22 sends the
# OriginateResponse a millisecond before that channel's DialEnd and Hangup, which say why it failed).
ORIGINATE_AFTERMATH = 2.0
# The longest the consumer handles queued events without letting the rest of the loop run.
_SLICE_SECONDS = 0.005


@dataclass(eq=False, slots=True)
class _ChannelWatch:
    """The channel an Originate made, known by the first ``Variable`` the Originate sets on it (Asterisk sets
    them as it creates the channel, before dialling it), and that channel's DialEnd and Hangup."""

    variable: tuple[str, str]
    ended: asyncio.Future[None]
    uniqueid: str | None = None
    events: list[Message] = field(default_factory=list)

    def feed(self, message: Message) -> None:
        event = message.event
        if self.uniqueid is None:
            if event == "VarSet" and (message.get("Variable"), message.get("Value")) == self.variable:
                self.uniqueid = message.get("Uniqueid")
            return
        if (
            (event == "DialEnd" and message.get("DestUniqueid") == self.uniqueid)
            or (event == "Hangup" and message.get("Uniqueid") == self.uniqueid)
            # The "via my mobile" dialplan's word on why the mobile did not take the call.
            or (
                event == "VarSet"
                and message.get("Uniqueid") == self.uniqueid
                and message.get("Variable") == "CRMTEL_DIAL_RESULT"
            )
        ):
            self.events.append(message)
            if event == "Hangup" and not self.ended.done():
                self.ended.set_result(None)


def _first_variable(fields: Sequence[tuple[str, str]]) -> tuple[str, str] | None:
    for key, value in fields:
        if key.lower() == "variable":
            name, sep, val = value.partition("=")
            if sep and name:
                return name, val
    return None


_Item = tuple[Message, datetime] | _Resync | _Lost


class AmiClient:
    """Keeps one PBX connected and feeds its events, in order, to a sink."""

    def __init__(
        self,
        settings: AmiSettings,
        sink: AmiSink,
        *,
        clock: Callable[[], datetime] = utcnow,
        max_queue: int = 10_000,
        max_queue_bytes: int = 32 << 20,
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
        # Counters (read by /metrics): successful logins; connection attempts after the first; attempts that
        # never reached the PBX (refused, unreachable, timed out); logins the PBX refused.
        self.connections = 0
        self.reconnects = 0
        self.connect_failures = 0
        self.login_failures = 0
        # Why the last attempt or connection ended (for /healthz); None until something went wrong.
        self.last_error: str | None = None
        # time.monotonic() of the last event read (for /healthz); None before the first.
        self.last_event_at: float | None = None
        self.resyncs = 0
        self.received = 0
        self.handled = 0
        # The bounded queue: over ``max_queue`` items the connection stops reading (TCP pushes back on the
        # PBX) until the consumer has worked it down to half.
        self._max_queue = max(1, max_queue)
        # … and the same in bytes: 10,000 events of thousands of headers each would be gigabytes.
        self._max_bytes = max(1, max_queue_bytes)
        self._bytes = 0
        self._trimmer = Trimmer()
        self._items: deque[_Item] = deque()
        self._wakeup = asyncio.Event()
        self._conn: AmiConnection | None = None
        # While a CoreShowChannels listing is in progress: its action id, and the events held back.
        self._listing: str | None = None
        self._holding: list[tuple[Message, datetime]] | None = None
        self._busy = False
        # Whether this PBX says FullyBooted at login (the AMI user has the ``system`` class), and this
        # session's one: the resync after a reconnect waits for it (see ``_await_boot``).
        self._says_booted = False
        self._boot: asyncio.Future[None] | None = None
        # Originates waiting for the end of the channel they made.
        self._watches: set[_ChannelWatch] = set()
        # Set by ``stop``: read no more, hand what was received to the sink, then ``run`` returns.
        self._stopping = False
        self._connect_task: asyncio.Task[None] | None = None
        self._consume_task: asyncio.Task[None] | None = None

    @property
    def state(self) -> str:
        """``connected``, ``login_failed``, ``unreachable`` or ``connecting`` (no addresses, no secrets)."""
        if self.connected.is_set():
            return "connected"
        if self.last_error is None:
            return "connecting"
        return "login_failed" if self.last_error.startswith("login refused") else "unreachable"

    @property
    def idle(self) -> bool:
        """Nothing queued and nothing being handled."""
        return not self._items and not self._busy

    async def run(self) -> None:
        """Connect and keep connected until cancelled; then close everything this client started.

        It may run again later (a cluster node leading the PBX once more): what an earlier run left queued
        is stale by then and dropped; the resync after connecting brings the tracker up to date.
        """
        self._items.clear()
        self._bytes = 0
        self._stopping = False
        try:
            async with asyncio.TaskGroup() as group:
                self._consume_task = group.create_task(self._consume(), name=f"ami-consume-{self.pbx}")
                self._connect_task = group.create_task(self._connect_loop(), name=f"ami-connect-{self.pbx}")
        finally:
            self._consume_task = self._connect_task = None

    async def stop(self) -> None:
        """Stop reading and hand every event already received to the sink; ``run`` then returns.

        The AMI session is logged off first: Asterisk answers the Logoff after every event it sent before,
        so those are all queued when reading stops. The consumer works the queue down, has the sink write
        it out (``on_idle``) and ends. A client that is not running returns at once.
        """
        connect, consume = self._connect_task, self._consume_task
        if connect is None or consume is None:
            return
        self._stopping = True
        conn = self._conn
        if conn is not None and self.connected.is_set() and not conn.closed and not conn.paused:
            await self._logoff(conn)
        connect.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await connect
        self._wakeup.set()
        await asyncio.shield(consume)

    async def reconcile_every(self, interval: float) -> None:
        """Check the live calls against the PBX (``CoreShowChannels``) every ``interval`` seconds, forever.

        A call whose Hangup never came (a lost event, a PBX restart) is closed by the next check instead of
        staying live for ever. Owned by the composition root; skipped while not connected.
        """
        while True:
            await asyncio.sleep(interval)
            conn = self._conn
            if conn is None or not self.connected.is_set() or self._listing is not None:
                continue
            try:
                await self._resync(conn)
            except (AmiError, OSError, TimeoutError) as err:
                log.warning("ami %s: periodic CoreShowChannels failed: %s", self.pbx, err or "timeout")

    async def probe(
        self, actions: Sequence[tuple[str, Sequence[tuple[str, str]]]] = ()
    ) -> list[list[Message]]:
        """Connect, log in, send ``actions`` one by one, log off (``config check --connect``, one-shot commands).

        Returns each action's reply. Raises LoginFailed when the PBX refuses the user, OSError/TimeoutError/
        AmiError when it cannot be reached.
        """
        conn = await self._connect()
        try:
            await self._banner(conn)
            await self._login(conn)
            answers = [
                await self._action(conn, make_action(name, fields), as_list=None) for name, fields in actions
            ]
            await self._logoff(conn)
            return answers
        finally:
            conn.abort()
            self._items.clear()

    async def _connect(self) -> AmiConnection:
        s = self.settings
        loop = asyncio.get_running_loop()
        # asyncio.timeout, not wait_for: on 3.11 wait_for can swallow a cancellation that races a result.
        async with asyncio.timeout(self.connect_timeout):
            _, conn = await loop.create_connection(
                lambda: AmiConnection(self._on_event, self._on_reply), s.host, s.port
            )
        return conn

    async def _banner(self, conn: AmiConnection) -> None:
        first: set[asyncio.Future[str]] = {conn.banner, conn.lost}
        await asyncio.wait(first, timeout=self.action_timeout, return_when=asyncio.FIRST_COMPLETED)
        if not conn.banner.done():
            raise ConnectionLost(conn.lost.result() if conn.lost.done() else "no AMI banner")

    async def request(
        self, name: str, fields: Sequence[tuple[str, str]] = (), *, limit: float | None = None
    ) -> list[Message]:
        """Send one action on the live connection and wait for its reply and the events that complete it.

        panoramisk decides when it is complete: an async ``Originate`` ("successfully queued") waits for
        its ``OriginateResponse`` event; a refusal (``Response: Error``) is the whole answer.
        """
        conn = self._conn
        if conn is None or conn.closed or not self.connected.is_set():
            raise ConnectionLost(f"PBX {self.pbx} is not connected")
        action = make_action(name, fields)
        variable = _first_variable(fields) if name.lower() == "originate" else None
        if variable is None:
            return await self._action(conn, action, as_list=None, limit=limit)
        return await self._originate(conn, action, variable, limit)

    async def _originate(
        self, conn: AmiConnection, action: Any, variable: tuple[str, str], limit: float | None
    ) -> list[Message]:
        """An Originate's reply; when it failed, followed by the DialEnd and Hangup of the channel it made.

        Asterisk 22's ``OriginateResponse`` says ``Reason: 0`` for a busy or declined phone: only that
        channel's ``DialEnd BUSY`` and ``Hangup`` cause 17 (21 declined) after it tell why.
        """
        watch = _ChannelWatch(variable, asyncio.get_running_loop().create_future())
        self._watches.add(watch)
        try:
            replies = await self._action(conn, action, as_list=None, limit=limit)
            failed = any(
                m.event == "OriginateResponse" and (m.get("Response") or "").lower() == "failure"
                for m in replies
            )
            if failed and watch.uniqueid is not None and not watch.ended.done():
                waiting: set[asyncio.Future[Any]] = {watch.ended, conn.lost}
                await asyncio.wait(waiting, timeout=ORIGINATE_AFTERMATH, return_when=asyncio.FIRST_COMPLETED)
            return [*replies, *watch.events]
        finally:
            self._watches.discard(watch)

    def drop(self) -> None:
        """Abort the current connection (it will be re-established); for operators and tests."""
        if self._conn is not None:
            self._conn.abort()

    async def _connect_loop(self) -> None:
        attempt = 0
        refused = 0
        reason = ""
        while True:
            before = self.connections
            try:
                await self._session()
            except LoginFailed as err:
                # Not a network error: retrying quickly only fills the PBX's security log and can get the
                # address banned (fail2ban); the admin has to fix the username or the secret.
                self.login_failures += 1
                self.last_error = f"login refused: {err}"
                reason = str(err)
                refused += 1
            except (OSError, TimeoutError, AmiError) as err:
                if isinstance(err, OSError | TimeoutError) and self.connections == before:
                    self.connect_failures += 1
                self.last_error = f"{err.__class__.__name__}: {err}" if str(err) else err.__class__.__name__
                log.warning("ami %s: connection ended: %s", self.pbx, self.last_error)
                refused = 0
            if self.connections > before:
                attempt = 0
            s = self.settings
            if refused:
                delay = min(LOGIN_RETRY_MAX, s.login_retry * 2 ** (refused - 1))
                log.error(
                    "ami %s: login refused for user %r at %s:%d (%s): check the AMI username and secret in "
                    "crmtel's config and in manager.conf; next try in %.1f s",
                    self.pbx, s.username, s.host, s.port, reason, delay,
                )  # fmt: skip
            else:
                delay = min(s.reconnect_max, s.reconnect_min * (2**attempt)) * random.uniform(0.9, 1.1)
                attempt = min(attempt + 1, 30)
                log.info("ami %s: reconnecting in %.1f s", self.pbx, delay)
            await asyncio.sleep(delay)
            self.reconnects += 1

    async def _session(self) -> None:
        """One connection, from connect until it fails (it always ends with an exception)."""
        s = self.settings
        conn = await self._connect()
        self._conn = conn
        self._listing = None
        self._holding = None
        self._boot = asyncio.get_running_loop().create_future()
        self._bytes = sum(item[0].cost for item in self._items if isinstance(item, tuple))
        tasks: set[asyncio.Task[None]] = set()
        logged_in = False
        try:
            await self._banner(conn)
            await self._login(conn)
            logged_in = True
            self.connections += 1
            self.last_error = None
            log.info("ami %s: logged in to %s:%d", self.pbx, s.host, s.port)
            tasks.add(asyncio.create_task(self._watchdog(conn), name=f"ami-watchdog-{self.pbx}"))
            await self._await_boot(conn)
            await self._resync(conn)
            self.connected.set()
            watched: set[asyncio.Future[Any]] = {*tasks, conn.lost}
            done, _ = await asyncio.wait(watched, return_when=asyncio.FIRST_COMPLETED)
            for task in done:
                if task is not conn.lost:
                    task.result()
            raise ConnectionLost(conn.lost.result() if conn.lost.done() else "connection closed")
        except asyncio.CancelledError:
            if logged_in and not conn.closed and not self._stopping:  # ``stop`` logged off already
                await self._logoff(conn)
            logged_in = False  # a clean stop, not a lost PBX
            raise
        finally:
            if logged_in and not self._stopping:  # crmtel stopping (it logged off) is no lost PBX
                # In stream order, after every event this connection delivered: the PBX was last seen now.
                self._push(_Lost(self.clock()))
            self.connected.clear()
            self._conn = None
            for task in tasks:
                task.cancel()
            for task in tasks:
                with contextlib.suppress(asyncio.CancelledError, AmiError, OSError):
                    await task
            conn.abort()

    @property
    def queued_bytes(self) -> int:
        """Memory held by queued (and held-back) events, roughly."""
        return self._bytes

    def _full(self) -> bool:
        return len(self._items) >= self._max_queue or self._bytes >= self._max_bytes

    def _push(self, item: _Item) -> None:
        self._items.append(item)
        if isinstance(item, tuple):
            self._bytes += item[0].cost
            self._trimmer.note(self._bytes)
        if self._full() and self._conn is not None:
            self._conn.pause()
        self._wakeup.set()

    def _on_event(self, message: Message) -> None:
        """An event from the connection (called from its ``data_received``, in wire order)."""
        if self._boot is not None and not self._boot.done() and message.event == "FullyBooted":
            self._says_booted = True
            self._boot.set_result(None)
        if self._watches:
            for watch in self._watches:
                watch.feed(message)
        self.received += 1
        self.last_event_at = time.monotonic()
        item = (message, event_time(message, self.clock()))
        if self._holding is not None:
            # Held back during a resync: bounded like the queue (reading pauses, the listing still ends).
            self._holding.append(item)
            self._bytes += message.cost
            if (len(self._holding) >= self._max_queue or self._bytes >= self._max_bytes) and self._conn:
                self._conn.pause()
        else:
            self._push(item)

    def _on_reply(self, action_id: str, message: Message) -> None:
        """A reply to one of our actions, just before panoramisk's ``handle_message`` sees it."""
        response = message.response
        if action_id == self._listing and self._holding is None and response is not None:  # noqa: SIM102
            if response.lower() == "success":
                # The listing starts here: every event before it is older than the snapshot and
                # already queued; events from now on may be newer and wait until it is applied.
                self._holding = []

    async def _action(
        self, conn: AmiConnection, action: Any, *, as_list: bool | None = False, limit: float | None = None
    ) -> list[Message]:
        """Send a panoramisk ``Action`` and wait for its reply (or, for a list, all its messages)."""
        try:
            future = conn.send_action(action, as_list=as_list)
            async with asyncio.timeout(limit or self.action_timeout):
                return replies(await future)
        finally:
            conn.forget(action)

    async def _login(self, conn: AmiConnection) -> None:
        s = self.settings
        secret = s.secret.get_secret_value()
        if s.auth == "md5":
            (challenge,) = await self._action(conn, make_action("Challenge", [("AuthType", "MD5")]))
            if challenge.response != "Success" or not challenge.get("Challenge"):
                raise _refusal(challenge, "challenge refused")
            key = hashlib.md5(
                ((challenge.get("Challenge") or "") + secret).encode(), usedforsecurity=False
            ).hexdigest()
            fields = [("AuthType", "MD5"), ("Username", s.username), ("Key", key), ("Events", "on")]
        else:
            fields = [("Username", s.username), ("Secret", secret), ("Events", "on")]
        (reply,) = await self._action(conn, make_action("Login", fields))
        if reply.response != "Success":
            raise _refusal(reply, "login refused")

    async def _logoff(self, conn: AmiConnection) -> None:
        """Say goodbye on a clean stop (bounded: a PBX that does not answer is simply closed)."""
        with contextlib.suppress(AmiError, TimeoutError, OSError):
            await self._action(conn, make_action("Logoff"), limit=min(1.0, self.action_timeout))

    async def _watchdog(self, conn: AmiConnection) -> None:
        # Not panoramisk's ping: that one sends Ping and never looks at what (or whether) the PBX answers.
        s = self.settings
        while True:
            await asyncio.sleep(s.ping_interval)
            try:
                (reply,) = await self._action(conn, make_action("Ping"), limit=s.ping_timeout)
            except TimeoutError:
                if conn.paused:
                    # The reader is waiting for the consumer, not for the network: not a dead link.
                    continue
                log.warning("ami %s: no Pong within %.1f s: reconnecting", self.pbx, s.ping_timeout)
                raise WatchdogTimeout("no reply to Ping") from None
            # Asterisk answers ``Response: Success`` + ``Ping: Pong`` (1.4 answered ``Response: Pong``).
            if (reply.response or "").lower() not in {"success", "pong"}:
                log.warning("ami %s: Ping answered with %.80r: reconnecting", self.pbx, reply.headers[:3])
                raise WatchdogTimeout(f"Ping answered {reply.response!r}: {reply.get('Message')}")

    async def _await_boot(self, conn: AmiConnection) -> None:
        """Before the listing, this login's FullyBooted (from a PBX that sends one; bounded).

        Its Uptime tells the tracker whether the PBX restarted while crmtel was away, which decides when the
        calls the listing no longer shows ended. Asterisk sends it right after the login's reply, or (still
        booting) once it has booted; a PBX that never sent one is not waited for.
        """
        boot = self._boot
        if not self._says_booted or boot is None:
            return
        waiting: set[asyncio.Future[Any]] = {boot, conn.lost}
        await asyncio.wait(waiting, timeout=self.action_timeout, return_when=asyncio.FIRST_COMPLETED)
        if not boot.done():
            log.warning("ami %s: no FullyBooted after login: resync without the PBX's uptime", self.pbx)

    async def _resync(self, conn: AmiConnection) -> None:
        action = make_action("CoreShowChannels")
        self._listing = action.id
        try:
            try:
                # as_list=None: panoramisk tells a list (``EventList: start``) from a refusal by the reply.
                listing: list[Message] | None = await self._action(conn, action, as_list=None)
            except ConnectionLost:
                raise
            except (AmiError, TimeoutError) as err:
                listing = None
                log.error("ami %s: CoreShowChannels failed, no resync: %s", self.pbx, err or "timeout")
            if listing and (listing[0].response or "").lower() != "success":
                # A PBX that refuses the listing (AMI user without the ``reporting`` write class) still
                # streams events: keep the connection, without the resync.
                log.error(
                    "ami %s: CoreShowChannels refused, no resync: %s", self.pbx, listing[0].get("Message")
                )
                listing = None
            if listing is not None:
                channels = tuple(m for m in listing if m.event == "CoreShowChannel")
                at = event_time(listing[-1], self.clock()) if listing else self.clock()
                self.resyncs += 1
                self._push(_Resync(channels, at))
        finally:
            # Deliver what arrived meanwhile, after the snapshot; from now on events are queued directly.
            self._listing = None
            held, self._holding = self._holding or [], None
            for item in held:
                self._bytes -= item[0].cost  # counted again as it is queued
                self._push(item)

    async def _next(self) -> _Item | None:
        """Wait for the next queued item (None: stopping, and nothing is left)."""
        while not self._items:
            if self._stopping:
                return None
            self._wakeup.clear()
            await self._wakeup.wait()
        return self._take()

    def _take(self) -> _Item:
        item = self._items.popleft()
        if isinstance(item, tuple):
            self._bytes -= item[0].cost
        conn = self._conn
        if (
            conn is not None
            and conn.paused
            and self._holding is None
            and len(self._items) <= self._max_queue // 2
            and self._bytes <= self._max_bytes // 2
        ):
            conn.resume()
        return item

    async def _consume(self) -> None:
        # Group commit: the sink is told to write out when ``batch`` items were handled, or when the queue
        # ran dry and ``flush_interval`` has passed since the last write (a timer catches a quiet line).
        loop = asyncio.get_running_loop()
        since_flush = 0
        last_flush = loop.time()
        give_way_at = last_flush + _SLICE_SECONDS
        items = self._items
        while True:
            if self._stopping and not items:
                # Stopping, and everything received has been handled: write it out and end.
                await self._flush()
                return
            if items:
                item = self._take()
            elif since_flush:
                self._trimmer.note(self._bytes)
                wait = max(0.0, last_flush + self.flush_interval - loop.time())
                try:
                    async with asyncio.timeout(wait):
                        next_item = await self._next()
                except TimeoutError:
                    since_flush, last_flush = 0, loop.time()
                    await self._flush()
                    continue
                if next_item is None:
                    continue
                item = next_item
            else:
                self._trimmer.note(self._bytes)
                next_item = await self._next()
                if next_item is None:
                    continue
                item = next_item
            self._busy = True
            try:
                if isinstance(item, _Resync):
                    await self._guarded(self.sink.on_resync(self.pbx, item.channels, item.at), "resync")
                elif isinstance(item, _Lost):
                    await self._guarded(self.sink.on_lost(self.pbx, item.at), "connection lost")
                else:
                    # Inlined rather than through _guarded: this runs for every event.
                    try:
                        await self.sink.on_event(self.pbx, item[0], item[1])
                    except Exception:  # a bad event or a failing consumer must never stop the stream
                        log.exception("ami %s: event handler failed on %s; skipped", self.pbx, item[0].event)
                    self.handled += 1
                    if items and loop.time() >= give_way_at:
                        # A backlog is worked off in slices: what the events produced (the popups sent on,
                        # the websockets, the cluster lease's health check) runs between them.
                        await asyncio.sleep(0)
                        give_way_at = loop.time() + _SLICE_SECONDS
                since_flush += 1
                if since_flush >= self.batch or (
                    not items and loop.time() - last_flush >= self.flush_interval
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
