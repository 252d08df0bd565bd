"""The live tier's own AMI session: every event the PBX sent, with its timestamps, as the truth to compare with.

Deliberately independent of crmtel's AMI code (its own framing, no unescaping beyond what a comparison
needs), so a defect there cannot hide itself here. What it saw can be saved in the recorded-trace format
(``.ami`` bytes and ``.jsonl``) for the fast suite.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

BANNER_PREFIX = b"Asterisk Call Manager/"


@dataclass(frozen=True, slots=True)
class AmiMessage:
    """One AMI message as the PBX sent it (header order and repeats kept, values still C-escaped)."""

    t: float  # seconds since the session's banner (monotonic)
    wall: float  # time.time() when it arrived
    headers: tuple[tuple[str, str], ...]

    def get(self, name: str) -> str | None:
        """The first value of header ``name`` (case-insensitive), or None."""
        low = name.lower()
        for key, value in self.headers:
            if key.lower() == low:
                return value
        return None

    def __getitem__(self, name: str) -> str:
        value = self.get(name)
        if value is None:
            raise KeyError(name)
        return value

    @property
    def event(self) -> str | None:
        """The Event header."""
        return self.get("Event")

    @property
    def timestamp(self) -> float:
        """The PBX's own time of the event (``timestampevents = yes``), else when it arrived."""
        value = self.get("Timestamp")
        return float(value) if value else self.wall


def parse_block(block: bytes) -> tuple[tuple[str, str], ...]:
    """``Name: value`` lines of one message (a line without a colon is kept under an empty name)."""
    out: list[tuple[str, str]] = []
    for line in block.decode("utf-8", errors="replace").split("\r\n"):
        if not line:
            continue
        name, sep, value = line.partition(":")
        out.append((name.strip(), value.strip()) if sep else ("", line))
    return tuple(out)


def unescape(value: str | None) -> str | None:
    """Undo AMI's C-escaping of a value (``O\\'Brien`` -> ``O'Brien``) for comparing with what was sent."""
    if value is None:
        return None
    out: list[str] = []
    chars = iter(value)
    for ch in chars:
        if ch == "\\":
            nxt = next(chars, "")
            out.append({"n": "\n", "r": "\r", "t": "\t"}.get(nxt, nxt))
        else:
            out.append(ch)
    return "".join(out)


@dataclass
class Witness:
    """An AMI session with read = all that records everything, for one run of a PBX."""

    host: str
    port: int
    username: str
    secret: str
    messages: list[AmiMessage] = field(default_factory=list)
    raw: bytearray = field(default_factory=bytearray)
    closed: bool = False
    _reader: asyncio.StreamReader | None = None
    _writer: asyncio.StreamWriter | None = None
    _task: asyncio.Task[None] | None = None
    _arrived: asyncio.Event = field(default_factory=asyncio.Event)
    _t0: float = 0.0
    _action_seq: int = 0

    async def connect(self, limit: float = 60.0) -> None:
        """Connect (retrying while the PBX starts), log in with events on, and start recording."""
        deadline = time.monotonic() + limit
        while True:
            try:
                self._reader, self._writer = await asyncio.open_connection(self.host, self.port)
                banner = await asyncio.wait_for(self._reader.readline(), 10)
                if banner.startswith(BANNER_PREFIX):
                    break
                self._writer.close()
            except (OSError, TimeoutError):
                pass
            if time.monotonic() > deadline:
                raise AssertionError(f"no AMI banner on 127.0.0.1:{self.port} within {limit} s")
            await asyncio.sleep(0.1)
        self._t0 = time.monotonic()
        self.raw += banner
        self._task = asyncio.create_task(self._read(), name=f"live-witness-{self.port}")
        response = await self.action(
            "Login", Username=self.username, Secret=self.secret, Events="on", limit=limit
        )
        assert response[0].get("Response") == "Success", response[0].headers

    async def _read(self) -> None:
        assert self._reader is not None
        buf = b""
        try:
            while chunk := await self._reader.read(65536):
                self.raw += chunk
                buf += chunk
                now = time.monotonic()
                wall = time.time()
                while (end := buf.find(b"\r\n\r\n")) >= 0:
                    block, buf = buf[:end], buf[end + 4 :]
                    if block:
                        self.messages.append(AmiMessage(now - self._t0, wall, parse_block(block)))
                self._arrived.set()
        except (ConnectionError, OSError):
            pass
        finally:
            self.closed = True
            self._arrived.set()

    async def wait_for(
        self, predicate: Callable[[AmiMessage], bool], limit: float = 30.0, start: int = 0
    ) -> AmiMessage:
        """The first message from index ``start`` on that satisfies ``predicate`` (waiting for it to arrive)."""
        deadline = time.monotonic() + limit
        index = start
        while True:
            while index < len(self.messages):
                message = self.messages[index]
                index += 1
                if predicate(message):
                    return message
            if self.closed:
                raise AssertionError("the AMI session closed while waiting")
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError(f"no matching AMI message within {limit} s")
            self._arrived.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._arrived.wait(), remaining)

    async def wait_event(self, name: str, limit: float = 30.0, start: int = 0, **headers: str) -> AmiMessage:
        """The first event ``name`` whose headers have the given values."""
        return await self.wait_for(
            lambda m: m.event == name and all(m.get(k) == v for k, v in headers.items()), limit, start
        )

    async def action(self, name: str, limit: float = 30.0, **headers: str) -> list[AmiMessage]:
        """Send an action; its response, plus the events of a list action up to its ``…Complete`` event."""
        assert self._writer is not None
        self._action_seq += 1
        action_id = f"live-{self._action_seq}"
        lines = [f"Action: {name}", f"ActionID: {action_id}"] + [f"{k}: {v}" for k, v in headers.items()]
        start = len(self.messages)
        self._writer.write(("\r\n".join(lines) + "\r\n\r\n").encode())
        await self._writer.drain()
        response = await self.wait_for(
            lambda m: m.get("ActionID") == action_id and m.get("Response") is not None, limit, start
        )
        out = [response]
        if response.get("EventList") == "start":
            done = await self.wait_for(
                lambda m: m.get("ActionID") == action_id and m.get("EventList") == "Complete", limit, start
            )
            out += [m for m in self.messages[start:] if m.get("ActionID") == action_id and m is not response]
            assert out[-1] is done
        return out

    def since(self, index: int) -> list[AmiMessage]:
        """Messages from ``index`` on."""
        return self.messages[index:]

    def events(self, name: str | None = None) -> Iterator[AmiMessage]:
        """Every event (of one kind)."""
        return (m for m in self.messages if m.event is not None and (name is None or m.event == name))

    async def close(self) -> None:
        """Log off and stop recording."""
        if self._writer is not None and not self.closed:
            with contextlib.suppress(ConnectionError, OSError):
                self._writer.write(b"Action: Logoff\r\n\r\n")
                await self._writer.drain()
        if self._writer is not None:
            self._writer.close()
            with contextlib.suppress(ConnectionError, OSError):
                await self._writer.wait_closed()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    def save(self, stem: Path) -> None:
        """Write ``stem.ami`` (the bytes as received) and ``stem.jsonl`` (one message a line)."""
        stem.with_suffix(".ami").write_bytes(bytes(self.raw))
        with stem.with_suffix(".jsonl").open("w", encoding="utf-8") as out:
            for m in self.messages:
                out.write(json.dumps({"t": round(m.t, 6), "headers": [list(h) for h in m.headers]}) + "\n")


def of_linkedid(messages: Iterable[AmiMessage], linkedid: str) -> list[AmiMessage]:
    """The events of one call (every channel whose Linkedid is ``linkedid``)."""
    return [m for m in messages if m.get("Linkedid") == linkedid]
