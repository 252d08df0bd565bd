"""Who watches which extension, and a bounded mailbox per browser so one slow page never delays the others."""

from __future__ import annotations

import asyncio
import itertools
from collections import deque
from collections.abc import Callable, Iterable
from typing import Any

import structlog

from crmtel.domain import CallEvent
from crmtel.push.live import Addressed, LiveCalls
from crmtel.push.messages import Card, encode

log = structlog.get_logger(__name__)

_ids = itertools.count(1)


class Connection:
    """One browser's subscription: the extensions it watches and a bounded queue of frames to send.

    Offering never blocks. When the queue is full the connection is marked overflowed: the web handler
    closes that websocket, and the browser reconnects and is sent a fresh snapshot.
    """

    def __init__(
        self,
        manager_id: int,
        extensions: Iterable[str],
        *,
        everyone: bool,
        limit: int,
        limit_bytes: int = 1 << 20,
        token: str | None = None,
    ) -> None:
        self.id = next(_ids)
        self.manager_id = manager_id
        # The login session this browser came in with: when it ends, so does the connection.
        self.token = token
        self.extensions = frozenset(extensions)
        self.everyone = everyone
        self._limit = limit
        # Bounded in bytes too: 256 frames of a 64 KiB card each would be 16 MiB per browser.
        self._limit_bytes = limit_bytes
        self._bytes = 0
        self._frames: deque[str] = deque()
        self._ready = asyncio.Event()
        self.overflowed = False
        self.closed = False
        # Set when the live state behind this browser was rebuilt (e.g. the cluster's stream came back):
        # the web handler closes the websocket and the browser reconnects for a fresh snapshot.
        self.stale = False
        # Set when the session behind this browser ended (logout, new password, deactivation, a lost
        # extension): the web handler closes the websocket with a code that sends the page to the login form.
        self.ended = False
        # The calls live for this browser when it connected (its snapshot): the page drops the other cards.
        self.live_calls: tuple[str, ...] = ()

    @property
    def finished(self) -> bool:
        """Whether nothing more will be sent on this connection."""
        return self.closed or self.overflowed or self.stale or self.ended

    def offer(self, frame: str) -> bool:
        """Queue a frame without waiting; False (and overflowed) when the browser is too far behind."""
        if self.closed or self.overflowed or self.ended:
            return False
        if len(self._frames) >= self._limit or self._bytes + len(frame) > self._limit_bytes:
            self.overflowed = True
            self._frames.clear()
            self._bytes = 0
            self._ready.set()
            return False
        self._frames.append(frame)
        self._bytes += len(frame)
        self._ready.set()
        return True

    def refresh(self) -> None:
        """Ask the browser to reconnect (and so get a fresh snapshot)."""
        self.stale = True
        self._ready.set()

    def close(self) -> None:
        """Stop the connection: ``next_frames`` returns None from now on."""
        self.closed = True
        self._ready.set()

    def end(self) -> None:
        """The session ended: drop what is queued and send nothing more."""
        self.ended = True
        self._frames.clear()
        self._bytes = 0
        self._ready.set()

    async def next_frames(self) -> list[str] | None:
        """Every frame queued so far (waiting for at least one), or None once closed or overflowed."""
        while not self._frames and not self.finished:
            self._ready.clear()
            await self._ready.wait()
        if self.finished:
            return None
        frames = list(self._frames)
        self._frames.clear()
        self._bytes = 0
        return frames


class Hub:
    """The live calls and the browsers subscribed to them; fan-out is synchronous and never awaits a browser."""

    def __init__(self, *, queue_size: int = 256, queue_bytes: int = 1 << 20) -> None:
        self.queue_size = queue_size
        self.queue_bytes = queue_bytes
        self.live = LiveCalls()
        # What a head's browser is sent on (re)connecting besides the live calls (the board's state).
        self.everyone_greeting: Callable[[], dict[str, Any]] | None = None
        # Told the calls a connecting browser is shown without a card (none was built: nobody here watched
        # them when they rang), so that their cards follow as ``call.card``.
        self.cards_wanted: Callable[[list[str]], None] | None = None
        self._by_ext: dict[str, set[Connection]] = {}
        self._everyone: set[Connection] = set()

    @property
    def connections(self) -> int:
        """How many browsers are subscribed."""
        return len(self._everyone) + len({c for conns in self._by_ext.values() for c in conns})

    def connect(
        self, manager_id: int, extensions: Iterable[str], *, everyone: bool = False, token: str | None = None
    ) -> Connection:
        """Subscribe a browser and queue what is ringing or in progress for it right now."""
        conn = Connection(
            manager_id,
            extensions,
            everyone=everyone,
            limit=self.queue_size,
            limit_bytes=self.queue_bytes,
            token=token,
        )
        # No await between the snapshot and the subscription: nothing can slip between them.
        snapshot = self.live.snapshot(None if everyone else conn.extensions)
        for item in snapshot:
            conn.offer(encode(item.message))
        conn.live_calls = tuple(dict.fromkeys(str(item.message["call_id"]) for item in snapshot))
        cardless = [call_id for call_id in conn.live_calls if self.live.card(call_id) is None]
        if cardless and self.cards_wanted is not None:
            self.cards_wanted(cardless)
        if everyone:
            if self.everyone_greeting is not None:
                conn.offer(encode(self.everyone_greeting()))
            self._everyone.add(conn)
        for ext in conn.extensions:
            self._by_ext.setdefault(ext, set()).add(conn)
        return conn

    def watched(self, extension: str) -> bool:
        """Whether any browser here is sent what happens on ``extension`` (its own, or a head's)."""
        return bool(self._everyone) or bool(self._by_ext.get(extension))

    def disconnect(self, conn: Connection) -> None:
        """Unsubscribe a browser (idempotent)."""
        conn.close()
        self._everyone.discard(conn)
        for ext in conn.extensions:
            conns = self._by_ext.get(ext)
            if conns is not None:
                conns.discard(conn)
                if not conns:
                    del self._by_ext[ext]

    def apply(
        self, event: CallEvent, *, card: Card | None = None, answered_by_name: str | None = None
    ) -> int:
        """Fold a live event into the live calls and fan its messages out; returns frames queued."""
        return self.deliver(self.live.apply(event, card=card, answered_by_name=answered_by_name))

    def set_card(self, call_id: str, card: Card) -> int:
        """Fill in the card of a live call whose popup went out without it; returns frames queued."""
        return self.deliver(self.live.set_card(call_id, card))

    def deliver(self, items: Iterable[Addressed]) -> int:
        """Queue each message for the browsers watching its extension (and the heads watching everyone)."""
        queued = 0
        for item in items:
            targets = self._by_ext.get(item.extension, set()) | self._everyone
            if not targets:
                continue
            frame = encode(item.message)
            for conn in targets:
                if conn.offer(frame):
                    queued += 1
                elif conn.overflowed:
                    log.warning("push.browser_too_slow", connection=conn.id, manager_id=conn.manager_id)
                    self.disconnect(conn)
        return queued

    def all_connections(self) -> list[Connection]:
        """Every subscribed browser."""
        return list({*self._everyone, *(c for conns in self._by_ext.values() for c in conns)})

    def end(self, conn: Connection) -> None:
        """The browser's session ended: unsubscribe it so no further call reaches it."""
        conn.end()
        self.disconnect(conn)

    def refresh_all(self) -> int:
        """Ask every browser to reconnect for a fresh snapshot; returns how many were asked."""
        conns = {*self._everyone, *(c for conns in self._by_ext.values() for c in conns)}
        for conn in conns:
            conn.refresh()
        return len(conns)

    def to_everyone(self, message: dict[str, Any]) -> int:
        """Queue a message for the browsers that watch everyone (heads) only; returns frames queued."""
        frame = encode(message)
        queued = 0
        for conn in list(self._everyone):
            if conn.offer(frame):
                queued += 1
            elif conn.overflowed:
                log.warning("push.browser_too_slow", connection=conn.id, manager_id=conn.manager_id)
                self.disconnect(conn)
        return queued

    def send_to(self, manager_id: int, message: dict[str, Any]) -> int:
        """Queue a message for every page of one manager (e.g. how their click-to-call went)."""
        frame = encode(message)
        conns = {*self._everyone, *(c for conns in self._by_ext.values() for c in conns)}
        return sum(1 for conn in conns if conn.manager_id == manager_id and conn.offer(frame))

    def close_all(self) -> None:
        """Close every subscription (shutdown)."""
        for conn in [*self._everyone, *(c for conns in self._by_ext.values() for c in conns)]:
            self.disconnect(conn)
