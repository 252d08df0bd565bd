"""FastAGI route server: Asterisk runs ``AGI(agi://127.0.0.1:4573/route,CALLER,DID)``, we set variables.

Protocol (Asterisk ``res_agi.c``): Asterisk connects, sends ``agi_*: value`` lines ending with a blank line,
then waits for commands; every command line gets one reply line (``200 result=1``). ``HANGUP`` may arrive
instead when the caller hangs up. Closing the socket ends the AGI application and the dialplan goes on.

Fail-open contract: when anything is wrong (slow store, garbage, unknown script) the server sends nothing and
closes, so the dialplan sees empty ``CRMTEL_*`` variables and uses its own default queue.
``CRMTEL_ROUTE_KIND`` is sent last, as a commit marker: a half-finished exchange never looks like a route.

Hostile clients: Asterisk writes its whole environment at once, and a connection's buffered lines are all
parsed in one step, so a connection that has sent some header lines but not the blank one — or nothing at all
for ``stall_grace`` seconds — is stalling us. Every connection gets a short ``header_timeout``; when a newcomer
finds the server full (or its source address holding ``max_pending_per_address`` unfinished connections), the
oldest stalled connection of the address holding the most of them is dropped to make room. A connection that
has not had the chance to be read yet is never dropped: the server may then run over its limit, up to twice
``max_connections``, before it refuses a newcomer (and the dialplan falls back). So 1,000 silent or half-sent
connections cannot keep a well-formed request from being answered in time.
"""

from __future__ import annotations

import asyncio
import fcntl
import resource
import struct
import termios
import unicodedata
from collections import Counter
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from types import TracebackType

import structlog

from crmtel.routing.models import Decision
from crmtel.routing.service import Router

_log = structlog.get_logger(__name__)

SCRIPT = "route"
# [crmtel-webphone] asks before a browser phone dials out: AGI(agi://HOST:PORT/webphone-dial,EXTENSION,NUMBER)
# sets CRMTEL_WEBPHONE_ALLOWED to 1 or 0. Fail closed: no answer leaves it empty and the dialplan refuses.
WEBPHONE_SCRIPT = "webphone-dial"
MAX_LINE = 1024
MAX_HEADER_BYTES = 16 * 1024
MAX_HEADER_LINES = 128
# Asterisk reads a command into a 2 KiB buffer: keep every value far below that.
MAX_VALUE_CHARS = 200
_UNSET = frozenset({"", "unknown"})


class AgiProtocolError(Exception):
    """The peer did not speak FastAGI (bad header line, too long, too many lines)."""


@dataclass(frozen=True, slots=True)
class AgiRequest:
    """The AGI environment Asterisk sent, with the fields routing needs."""

    env: Mapping[str, str]

    def _get(self, key: str) -> str | None:
        value = self.env.get(key, "").strip()
        return None if value.lower() in _UNSET else value

    @property
    def script(self) -> str:
        """The script path without slashes or query (``route`` for ``agi://host/route``)."""
        return self.env.get("agi_network_script", "").split("?", 1)[0].strip("/")

    @property
    def caller(self) -> str | None:
        """The caller: the first AGI argument, else the channel's caller id."""
        return self._get("agi_arg_1") or self._get("agi_callerid")

    @property
    def did(self) -> str | None:
        """The dialled number: the second AGI argument, else the DNID, else the extension."""
        return self._get("agi_arg_2") or self._get("agi_dnid") or self._get("agi_extension")


def parse_env_line(line: bytes) -> tuple[str, str]:
    """One ``agi_name: value`` line (without its line end) as a pair; anything else is a protocol error."""
    text = line.decode("utf-8", errors="replace")
    name, sep, value = text.partition(":")
    if not sep or not name.startswith("agi_") or not name.isascii() or not name.replace("_", "").isalnum():
        raise AgiProtocolError(f"not an AGI environment line: {text[:60]!r}")
    return name, value.strip()


async def read_env(reader: asyncio.StreamReader, progress: _Pending | None = None) -> AgiRequest:
    """Read the environment up to its blank line, bounded in lines and bytes (the caller adds a timeout)."""
    env: dict[str, str] = {}
    total = 0
    while True:
        try:
            raw = await reader.readuntil(b"\n")
        except asyncio.IncompleteReadError as err:
            raise AgiProtocolError("connection closed inside the AGI environment") from err
        except asyncio.LimitOverrunError as err:
            raise AgiProtocolError("AGI environment line too long") from err
        total += len(raw)
        line = raw.rstrip(b"\r\n")
        if not line:
            if not env:
                raise AgiProtocolError("empty AGI environment")
            return AgiRequest(env)
        if total > MAX_HEADER_BYTES or len(env) >= MAX_HEADER_LINES:
            raise AgiProtocolError("AGI environment too large")
        name, value = parse_env_line(line)
        env[name] = value
        if progress is not None:
            progress.lines += 1


def quote(value: str | None, limit: int = MAX_VALUE_CHARS) -> str:
    """A double-quoted AGI argument that no input can break: no quotes, backslashes or control chars."""
    text = (value or "").replace('"', "'")
    cleaned = "".join(" " if unicodedata.category(c).startswith("C") or c == "\\" else c for c in text)
    return '"' + " ".join(cleaned.split())[:limit] + '"'


def variables(decision: Decision) -> list[tuple[str, str]]:
    """The channel variables a decision sets, in sending order (``CRMTEL_ROUTE_KIND`` last)."""
    return [
        ("CRMTEL_FALLBACK_QUEUE", decision.fallback_queue),
        ("CRMTEL_ROUTE_TARGET", decision.target),
        ("CRMTEL_ROUTE_REASON", decision.reason),
        ("CRMTEL_CALLER_NAME", decision.caller_name or ""),
        ("CRMTEL_ROUTE_KIND", decision.kind.value),
    ]


@dataclass(slots=True)
class _Pending:
    """A connection whose header block is not complete yet."""

    address: str
    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter
    since: float
    lines: int = 0

    def stalled(self, now: float, grace: float) -> bool:
        """Whether this connection is holding us up rather than merely not read yet.

        Stalled: nothing is waiting to be read (in the kernel or our buffer beyond a partial line), and it has
        sent header lines without the blank one, or nothing at all for ``grace`` seconds. A connection whose
        bytes simply have not been read yet — the loop is busy — is never stalled.
        """
        if _unread_bytes(self.writer) > 0:
            return False
        if self.lines > 0:
            return True
        buffered = len(getattr(self.reader, "_buffer", b""))
        return buffered == 0 and now - self.since > grace


def _unread_bytes(writer: asyncio.StreamWriter) -> int:
    sock = writer.get_extra_info("socket")
    if sock is None:
        return 0
    try:
        raw = fcntl.ioctl(sock.fileno(), termios.FIONREAD, b"\0\0\0\0")
    except OSError:
        return 0
    return int(struct.unpack("i", raw)[0])


class AgiServer:
    """Owns the listening socket and one task per connection; ``stop`` cancels and awaits them all."""

    def __init__(
        self,
        router: Router,
        host: str = "127.0.0.1",
        port: int = 4573,
        *,
        header_timeout: float = 1.0,
        reply_timeout: float = 2.0,
        max_connections: int = 2048,
        max_pending_per_address: int = 1024,
        stall_grace: float = 0.2,
        webphone_check: Callable[[str | None, str], Awaitable[bool]] | None = None,
    ) -> None:
        self._router = router
        # (extension, number as the PBX dials it) -> may the browser phone call it; None: it may call nothing.
        self._webphone_check = webphone_check
        self._host = host
        self._port = port
        self._header_timeout = header_timeout
        self._reply_timeout = reply_timeout
        # Never more sockets than the process may open: past RLIMIT_NOFILE accept() fails for everyone.
        self._max_connections = min(max_connections, max(16, _fd_limit() // 2))
        self._max_pending = max_pending_per_address
        self._grace = stall_grace
        # Connections whose header block is not complete yet, oldest first.
        self._pending: dict[asyncio.Task[None], _Pending] = {}
        self.evicted = 0
        self.refused = 0
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._callbacks: set[asyncio.Task[object]] = set()
        self._closing = False

    @property
    def port(self) -> int:
        """The bound port (useful when configured as 0)."""
        if self._server is None or not self._server.sockets:
            raise RuntimeError("AGI server is not running")
        port: int = self._server.sockets[0].getsockname()[1]
        return port

    @property
    def connections(self) -> int:
        """How many connections are being served right now."""
        return len(self._tasks)

    async def start(self) -> None:
        """Bind and start accepting connections."""
        self._closing = False
        # A deep backlog (the kernel caps it at net.core.somaxconn, 4096 by default): with a full accept queue
        # the kernel drops Asterisk's SYN, and the retransmit 1 s later eats half its 2 s connect budget.
        # asyncio accepts up to ``backlog`` connections per wake-up; none is dropped before it was read.
        self._server = await asyncio.start_server(
            self._on_connect, self._host, self._port, limit=MAX_LINE, backlog=4096
        )
        _log.info("agi.listening", host=self._host, port=self.port)

    async def stop(self) -> None:
        """Stop accepting, cancel every connection handler and wait for them (and asyncio's callbacks)."""
        self._closing = True
        if self._server is not None:
            self._server.close()
        handlers = list(self._tasks)
        for task in handlers:
            task.cancel()
        await asyncio.gather(*handlers, return_exceptions=True)
        # The callbacks only wait for their handler, so they end now, normally.
        await asyncio.gather(*self._callbacks, return_exceptions=True)
        if self._server is not None:
            await self._server.wait_closed()
            self._server = None
        _log.info("agi.stopped")

    async def __aenter__(self) -> AgiServer:
        await self.start()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.stop()

    async def _on_connect(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        # asyncio runs this in a task of its own, which must never end cancelled: on Python 3.11 the stream
        # protocol then logs a traceback. So the work runs in a handler task we own (and cancel on stop),
        # and this callback only waits for it, without propagating its cancellation.
        callback = asyncio.current_task()
        if callback is None or self._closing:
            _close(writer)
            return
        peer = writer.get_extra_info("peername")
        address = str(peer[0]) if isinstance(peer, tuple) and peer else str(peer)
        self._make_room(address)
        if len(self._tasks) >= 2 * self._max_connections:
            self.refused += 1
            _log.warning("agi.too_many_connections", limit=self._max_connections)
            _close(writer)
            return
        handler = asyncio.create_task(self._handle(reader, writer, peer), name=f"agi-connection {peer}")
        self._tasks.add(handler)
        self._pending[handler] = _Pending(address, reader, writer, asyncio.get_running_loop().time())
        self._callbacks.add(callback)
        try:
            await asyncio.wait({handler})
        except asyncio.CancelledError:
            handler.cancel()  # cancelled from outside the server (not by stop): take the handler along
            raise
        finally:
            self._tasks.discard(handler)
            self._pending.pop(handler, None)
            self._callbacks.discard(callback)

    def _make_room(self, address: str) -> None:
        """Drop the oldest stalled connection when ``address`` holds too many, or the server is full."""
        now = asyncio.get_running_loop().time()
        if sum(1 for p in self._pending.values() if p.address == address) >= self._max_pending:
            greediest = address
        elif len(self._tasks) >= self._max_connections and self._pending:
            greediest = Counter(p.address for p in self._pending.values()).most_common(1)[0][0]
        else:
            return
        # Oldest first; usually the first one looked at is the one to drop.
        for task, pending in self._pending.items():
            if pending.address == greediest and pending.stalled(now, self._grace):
                self._evict(task)
                return
        if len(self._tasks) >= 2 * self._max_connections:
            # Flooded faster than we can read: the oldest unfinished one goes, stalled or not.
            self._evict(next(t for t, p in self._pending.items() if p.address == greediest))

    def _evict(self, task: asyncio.Task[None]) -> None:
        # Forgotten at once so the slot is free now. The socket is closed here, not by the task: a task
        # cancelled before its first step never runs its ``finally``.
        pending = self._pending.pop(task)
        self._tasks.discard(task)
        task.cancel()
        _close(pending.writer)
        self.evicted += 1
        _log.warning("agi.unfinished_connection_dropped", address=pending.address)

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, peer: object) -> None:
        try:
            await self._serve(reader, writer, peer)
        except AgiProtocolError as err:
            _log.warning("agi.bad_request", peer=peer, error=str(err))
        except (ConnectionError, TimeoutError) as err:
            _log.info("agi.connection_lost", peer=peer, error=repr(err))
        except Exception:  # noqa: BLE001 — fail open: a bug must end this call's exchange, not the server
            _log.exception("agi.handler_failed", peer=peer)
        finally:
            _close(writer)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, peer: object) -> None:
        current = asyncio.current_task()
        try:
            async with asyncio.timeout(self._header_timeout):
                request = await read_env(reader, self._pending.get(current) if current else None)
        except TimeoutError as err:
            raise AgiProtocolError(f"no complete AGI environment within {self._header_timeout}s") from err
        if current is not None:
            self._pending.pop(current, None)  # a real request now: never dropped to make room
        if request.script == WEBPHONE_SCRIPT:
            number = request.env.get("agi_arg_2", "").strip()
            check = self._webphone_check
            allowed = check is not None and await check(request.caller, number)
            await self._set(reader, writer, peer, [("CRMTEL_WEBPHONE_ALLOWED", "1" if allowed else "0")])
            return
        if request.script != SCRIPT:
            raise AgiProtocolError(f"unknown AGI script {request.script!r}")
        decision = await self._router.route(request.caller, request.did)
        if decision is None:
            return  # nothing usable: leave the variables unset so the dialplan falls back
        await self._set(reader, writer, peer, variables(decision))

    async def _set(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        peer: object,
        pairs: list[tuple[str, str]],
    ) -> None:
        """SET VARIABLE each pair in order; stop at the caller's hangup or a refused command."""
        for name, value in pairs:
            writer.write(f"SET VARIABLE {name} {quote(value)}\n".encode())
            async with asyncio.timeout(self._reply_timeout):
                await writer.drain()
                reply = await _read_reply(reader)
            if reply.startswith("HANGUP"):
                _log.info("agi.caller_hung_up", peer=peer)
                return
            if not reply.startswith("200"):
                _log.warning("agi.command_refused", peer=peer, variable=name, reply=reply[:120])
                return


async def _read_reply(reader: asyncio.StreamReader) -> str:
    """One reply line; a multi-line ``520-`` usage reply is read to its end."""
    while True:
        try:
            raw = await reader.readuntil(b"\n")
        except asyncio.IncompleteReadError as err:
            raise ConnectionResetError("Asterisk closed the AGI connection") from err
        except asyncio.LimitOverrunError as err:
            raise AgiProtocolError("AGI reply line too long") from err
        line = raw.decode("utf-8", errors="replace").strip()
        if line and not line.startswith("520-"):
            return line


def _fd_limit() -> int:
    soft, _hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    return soft if soft != resource.RLIM_INFINITY else 1 << 20


def _close(writer: asyncio.StreamWriter) -> None:
    # Everything we wrote was drained already, so close() cannot be held up by a peer that never reads.
    writer.close()
