"""panoramisk's AMI protocol with crmtel's framing: the TCP connection and the actions of one AMI session.

panoramisk provides the ``asyncio.Protocol`` (``AMIProtocol``: transport, the table of pending actions, ``send``)
and the actions (``Action``: action ids, wire text, its ``future``, and ``add_message``, which decides when a
reply, or a list such as ``CoreShowChannels``, is complete). crmtel replaces what panoramisk 1.4 gets wrong:

- ``data_received`` feeds the raw bytes to :class:`crmtel.ami.protocol.Parser`, which decodes a message only
  once it is whole (panoramisk decodes each read with ``errors="ignore"`` and loses a UTF-8 character split
  across two reads);
- each message is routed here: a reply to a pending action goes through panoramisk's ``handle_message``
  (converted to a panoramisk ``Message`` that keeps the crmtel one), an event goes to crmtel's callback. An
  exception while routing one message is logged and that message skipped; it never closes the connection;
- ``connection_lost`` fails the pending actions and reports the loss; panoramisk's reconnect machinery (its
  ``factory``, a ``Manager``) is never used: reconnecting belongs to :class:`crmtel.ami.client.AmiClient`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from collections.abc import Callable, Sequence
from typing import Any, cast

from panoramisk.actions import Action
from panoramisk.ami_protocol import AMIProtocol
from panoramisk.message import Message as PanoramiskMessage

from crmtel.ami.protocol import Message, Parser
from crmtel.errors import CrmtelError

log = logging.getLogger(__name__)

RECEIVE_BUFFER = 1 << 20


class AmiError(CrmtelError):
    """The AMI connection failed or the PBX refused something."""


class ConnectionLost(AmiError):
    """The TCP connection closed or broke."""


class Reply(PanoramiskMessage):  # type: ignore[misc]  # panoramisk has no type hints
    """A reply to an action as panoramisk expects it, built from (and keeping) crmtel's decoded message."""

    def __init__(self, source: Message) -> None:
        headers: dict[str, Any] = {}
        names: dict[str, str] = {}
        for key, value in source.headers:
            # Repeated headers become a list, as panoramisk's own parser makes them (case-insensitively).
            first = names.setdefault(key.lower(), key)
            if first in headers:
                held = headers[first]
                headers[first] = [*held, value] if isinstance(held, list) else [held, value]
            else:
                headers[first] = value
        super().__init__(headers)
        self.source = source


def replies(result: object) -> list[Message]:
    """crmtel's messages from what an action's future gave: one ``Reply`` or a list of them."""
    items = result if isinstance(result, list) else [result]
    return [cast(Reply, item).source for item in items]


def make_action(name: str, fields: Sequence[tuple[str, str]] = ()) -> Any:
    """A panoramisk ``Action``; values with CR/LF are refused (they would inject headers).

    A repeated key (``Variable``) is sent once per value, as Asterisk expects.
    """
    headers: dict[str, str | list[str]] = {"Action": name}
    for key, value in fields:
        if "\r" in value or "\n" in value or "\r" in key or "\n" in key or ":" in key:
            raise ValueError(f"AMI header {key!r} contains a line break or a colon")
        held = headers.get(key)
        if held is None:
            headers[key] = value
        else:
            headers[key] = [*held, value] if isinstance(held, list) else [held, value]
    return Action(headers)


class AmiConnection(AMIProtocol):  # type: ignore[misc]  # panoramisk has no type hints
    """One TCP connection to an AMI server (see the module docstring for who does what)."""

    encoding = "utf-8"

    def __init__(
        self,
        on_event: Callable[[Message], None],
        on_reply: Callable[[str, Message], None] | None = None,
        *,
        parser: Parser | None = None,
    ) -> None:
        super().__init__()
        self.on_event = on_event
        self.on_reply = on_reply
        self.parser = parser or Parser()
        loop = asyncio.get_running_loop()
        # Results only (never exceptions), so nobody has to retrieve them.
        self.banner: asyncio.Future[str] = loop.create_future()
        self.lost: asyncio.Future[str] = loop.create_future()
        self.paused = False
        self.skipped = 0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        sock = transport.get_extra_info("socket")
        if sock is not None:
            # Asterisk drops an AMI session it cannot write to within ``writetimeout`` (100 ms by default);
            # a roomy kernel buffer takes a burst of events (a resync, a busy minute) while we are busy.
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, RECEIVE_BUFFER)

    def data_received(self, data: bytes) -> None:
        for message in self.parser.feed(data):
            try:
                self.route(message)
            except Exception:  # one bad message is skipped; the connection and the other messages go on
                self.skipped += 1
                log.exception("ami message could not be handled; skipped: %.120r", message.headers[:4])
        if not self.banner.done() and self.parser.banner is not None:
            self.banner.set_result(self.parser.banner)

    def route(self, message: Message) -> None:
        """A reply to a pending action completes it (panoramisk decides when); an event goes on."""
        aid = message.action_id
        action = self.responses.get(aid) if aid is not None else None
        if action is not None and aid is not None:
            try:
                if self.on_reply is not None:
                    self.on_reply(aid, message)
                self.handle_message(Reply(message))
            except Exception as err:
                # The action waiting for this reply would otherwise wait for its timeout.
                self.responses.pop(aid, None)
                if not action.future.done():
                    action.future.set_exception(AmiError(f"unreadable reply to {action['action']}"))
                raise AmiError(f"reply to {action['action']} not understood") from err
            return
        if message.event is None:
            log.debug("ami unmatched response skipped: %.120r", message.headers[:3])
            return
        self.on_event(message)

    def send_action(self, action: Any, *, as_list: bool | None = False) -> asyncio.Future[Any]:
        """Send with panoramisk's ``send``; fails at once when the connection is gone."""
        if self.closed:
            raise ConnectionLost("connection closed")
        future: asyncio.Future[Any] = self.send(action, as_list=as_list)
        return future

    def forget(self, action: Any) -> None:
        """Stop waiting for replies to ``action``."""
        self.responses.pop(action.id, None)

    def pause(self) -> None:
        """Stop reading from the socket (the consumer is behind): TCP pushes back on the PBX."""
        if not self.paused and not self.closed:
            self.paused = True
            self.transport.pause_reading()

    def resume(self) -> None:
        """Read again."""
        if self.paused:
            self.paused = False
            if not self.closed:
                self.transport.resume_reading()

    def connection_lost(self, exc: Exception | None) -> None:
        # Not panoramisk's: that one calls its Manager to reconnect (and re-queues pending actions).
        self.closed = True
        self.fail_pending(ConnectionLost(str(exc) if exc else "closed by the PBX"))
        if not self.lost.done():
            self.lost.set_result(f"{exc.__class__.__name__}: {exc}" if exc else "closed by the PBX")

    def fail_pending(self, err: Exception) -> None:
        """Every action still waiting gets ``err``."""
        pending = list(self.responses.values())
        self.responses.clear()
        for action in pending:
            if not action.future.done():
                action.future.set_exception(err)

    def close(self) -> None:
        """Close politely (what is buffered is still sent)."""
        self.fail_pending(ConnectionLost("connection closed"))
        if not self.closed:
            self.closed = True
            self.transport.close()

    def abort(self) -> None:
        """Drop the connection at once."""
        self.fail_pending(ConnectionLost("connection aborted"))
        self.closed = True
        self.transport.abort()
