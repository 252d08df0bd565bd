"""The fake AMI server itself, from a bare client over real TCP: action replies and the drop hook."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from typing import Any

import pytest

from crmtel.ami.protocol import Message, Parser, encode_message
from crmtel.fakepbx.server import FakeAmiServer, StreamItem, load_ami, merge_streams
from tests.fixtures.fake_ami import wait_for
from tests.fixtures.traces import SCENARIOS


class RawAmi:
    """A bare AMI client on asyncio streams; everything it reads is kept in arrival order."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self.parser = Parser()
        self.received: list[Message] = []
        self.eof = False

    @classmethod
    async def connect(cls, server: FakeAmiServer) -> RawAmi:
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        return cls(reader, writer)

    def send(self, *headers: tuple[str, str]) -> None:
        self.writer.write(encode_message(headers))

    def login(self) -> None:
        self.send(("Action", "Login"), ("ActionID", "login"), ("Username", "crmtel"), ("Secret", "secret"))

    async def read_some(self) -> list[Message]:
        """The messages completed by the next read; [] (and ``eof`` set) when the server closed."""
        data = await self.reader.read(65536)
        if not data:
            self.eof = True
            return []
        messages = self.parser.feed(data)
        self.received.extend(messages)
        return messages

    async def close(self) -> None:
        self.writer.close()
        await self.writer.wait_closed()


def busy_stream(traces_dir: Path) -> list[StreamItem]:
    """The recorded traces overlapping in time: several calls, and channels, alive at once."""
    return merge_streams([(i * 1.5, load_ami(traces_dir / f"{s}.ami")) for i, s in enumerate(SCENARIOS)])


def is_reply(msg: Message) -> bool:
    return (msg.action_id or "").startswith(("login", "ls-"))


def check_listings(received: list[Message]) -> tuple[int, list[int], list[int]]:
    """Assert that every listing is contiguous and matches the stream read before it.

    Returns how many stream events arrived, and each listing's stream position (events read before it)
    and size.
    """
    live: dict[str, str] = {}  # Uniqueid -> ChannelState, from the stream events read so far
    seen = 0
    positions: list[int] = []
    sizes: list[int] = []
    i = 0
    while i < len(received):
        msg = received[i]
        aid = msg.action_id or ""
        if not aid.startswith("ls-"):
            if not is_reply(msg):
                seen += 1
                uid, state = msg.get("Uniqueid"), msg.get("ChannelState")
                if msg.event == "Newchannel" and uid is not None:
                    live[uid] = state or ""
                elif msg.event == "Hangup" and uid is not None:
                    live.pop(uid, None)
                elif uid in live and state is not None:
                    live[uid] = state
            i += 1
            continue
        assert msg.response == "Success", msg
        j = i + 1
        listed: dict[str, str] = {}
        while received[j].event == "CoreShowChannel" and received[j].action_id == aid:
            listed[received[j].get("Uniqueid") or ""] = received[j].get("ChannelState") or ""
            j += 1
        complete = received[j]
        assert (complete.event, complete.action_id) == ("CoreShowChannelsComplete", aid), (
            f"{aid}: {complete.headers[:2]} inside the listing"
        )
        assert complete.get("ListItems") == str(j - i - 1)
        assert listed == live, f"{aid} after {seen} stream events"
        positions.append(seen)
        sizes.append(len(listed))
        i = j + 1
    return seen, positions, sizes


@pytest.mark.parametrize("chunk", [97, 64 * 1024])
async def test_listing_mid_stream_is_contiguous_prompt_and_matches_the_stream_so_far(
    traces_dir: Path, chunk: int
) -> None:
    """Unpaced, CoreShowChannels asked again and again mid-stream: each reply comes at once, in one piece,
    listing exactly the channels (and states) that the events read before it leave alive."""
    stream = busy_stream(traces_dir)
    server = FakeAmiServer(stream, chunk_size=chunk)
    await server.start()
    client = await RawAmi.connect(server)
    wanted = len(stream) + 1  # the stream and the server's FullyBooted
    asked = done = 0
    try:
        client.login()
        async with asyncio.timeout(30):
            while not (done == asked and sum(not is_reply(m) for m in client.received) >= wanted):
                messages = await client.read_some()
                assert not client.eof, "server closed"
                for msg in messages:
                    if msg.event == "CoreShowChannelsComplete":
                        done += 1
                    # A listing asked right after login, then again as soon as each one is complete.
                    asking = msg.action_id == "login" or msg.event == "CoreShowChannelsComplete"
                    if asking and not server.finished.is_set():
                        asked += 1
                        client.send(("Action", "CoreShowChannels"), ("ActionID", f"ls-{asked}"))
    finally:
        await client.close()
        await server.close()
    seen, positions, sizes = check_listings(client.received)
    assert seen == wanted
    assert len(positions) == asked >= 3
    # Prompt: the first listing, asked right after login, is not held back behind the stream.
    assert positions[0] < len(stream) // 2, positions
    assert any(sizes), "no listing caught a live channel"


async def test_ping_and_listing_after_the_drop_hook_eof_are_not_answered_and_raise_nothing(
    traces_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """After the drop hook's half-close the server reads the client's actions without writing (no
    "Cannot call write() after write_eof()" in the connection handler) until the client closes."""
    loop = asyncio.get_running_loop()
    errors: list[dict[str, Any]] = []
    previous = loop.get_exception_handler()
    loop.set_exception_handler(lambda _loop, context: errors.append(context))
    stream = load_ami(traces_dir / "queue-abandoned.ami")
    server = FakeAmiServer(stream, drop_after=10)
    await server.start()
    client = await RawAmi.connect(server)
    try:
        with caplog.at_level(logging.WARNING):
            client.login()
            async with asyncio.timeout(10):
                while not client.eof:
                    await client.read_some()
            assert sum(not is_reply(m) for m in client.received) == 10 + 1
            client.send(("Action", "Ping"), ("ActionID", "ping-1"))
            client.send(("Action", "CoreShowChannels"), ("ActionID", "ls-1"))
            client.send(("Action", "Ping"), ("ActionID", "ping-2"))
            await wait_for(lambda: server.pings >= 1)
            await asyncio.sleep(0.2)
            assert not client.parser.buffered
            await client.close()
            await server.close()
    finally:
        loop.set_exception_handler(previous)
    assert errors == []
    assert server.pings == 2
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR] == []


async def test_every_logged_in_session_gets_every_event_as_on_asterisk(traces_dir: Path) -> None:
    """Asterisk sends each event to every session that logged in: two clients, paced stream, one of them
    joining held until the other has its first events — both get the whole rest of the stream in the same
    order, and the second one's listings match what it has read (it is not handed half the events)."""
    stream = busy_stream(traces_dir)
    server = FakeAmiServer(stream, pause_after=0)
    await server.start()
    first = await RawAmi.connect(server)
    second = await RawAmi.connect(server)
    try:
        first.login()
        second.login()
        async with asyncio.timeout(30):
            while not all(any(m.action_id == "login" for m in c.received) for c in (first, second)):
                for client in (first, second):
                    if not any(m.action_id == "login" for m in client.received):
                        await client.read_some()
            server.resume()

            async def drain(client: RawAmi) -> None:
                asked = 0
                while sum(not is_reply(m) for m in client.received) < len(stream) + 1:
                    for msg in await client.read_some():
                        if client is second and msg.event in {"Newchannel", "Hangup"} and asked < 5:
                            asked += 1
                            client.send(("Action", "CoreShowChannels"), ("ActionID", f"ls-{asked}"))
                    assert not client.eof, "server closed"

            await asyncio.gather(drain(first), drain(second))
    finally:
        await first.close()
        await second.close()
        await server.close()
    events = [[(m.event, m.get("Uniqueid")) for m in c.received if not is_reply(m)] for c in (first, second)]
    assert events[0] == events[1]
    assert len(events[0]) == len(stream) + 1
    # Sent once to both: the same Timestamp on both sides.
    stamps = [[m.get("Timestamp") for m in c.received if not is_reply(m)] for c in (first, second)]
    assert stamps[0] == stamps[1]
    seen, positions, _ = check_listings(second.received)
    assert seen == len(stream) + 1
    assert positions
