"""The panoramisk-based AMI protocol: crmtel's framing on panoramisk's connection and actions, no sockets."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from panoramisk.ami_protocol import AMIProtocol

from crmtel.ami.connection import AmiConnection, AmiError, ConnectionLost, make_action, replies
from crmtel.ami.protocol import Message, encode_message

BANNER = b"Asterisk Call Manager/11.0.0\r\n"
NAME = "Анна Смирнова"


class FakeTransport(asyncio.Transport):
    """Records what is written and whether reading is paused or the transport closed."""

    def __init__(self) -> None:
        super().__init__()
        self.written = bytearray()
        self.reading = True
        self.closed = False

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return default

    def write(self, data: bytes | bytearray | memoryview) -> None:
        self.written += data

    def pause_reading(self) -> None:
        self.reading = False

    def resume_reading(self) -> None:
        self.reading = True

    def close(self) -> None:
        self.closed = True

    def abort(self) -> None:
        self.closed = True


def _event(name: str, *headers: tuple[str, str]) -> bytes:
    return encode_message([("Event", name), *headers])


def _connection(events: list[Message], fail_on: str | None = None) -> tuple[AmiConnection, FakeTransport]:
    def on_event(message: Message) -> None:
        if message.event == fail_on:
            raise RuntimeError("handler bug")
        events.append(message)

    conn = AmiConnection(on_event)
    transport = FakeTransport()
    conn.connection_made(transport)
    conn.data_received(BANNER)
    return conn, transport


async def test_utf8_name_split_inside_a_character_across_reads_stays_whole() -> None:
    """A Cyrillic CallerIDName cut between the two bytes of one letter arrives whole (panoramisk loses it)."""
    wire = _event("Newchannel", ("CallerIDName", NAME), ("Linkedid", "1.1"))
    cut = wire.index(NAME.encode()) + 1  # inside the first two-byte letter
    events: list[Message] = []
    conn, _ = _connection(events)
    conn.data_received(wire[:cut])
    assert events == []
    conn.data_received(wire[cut:])
    assert [m.get("CallerIDName") for m in events] == [NAME]
    assert conn.banner.result() == "Asterisk Call Manager/11.0.0"

    # Why crmtel replaces data_received: panoramisk 1.4's own decodes each read and drops the split bytes.
    seen: list[Any] = []
    bare = AMIProtocol()
    bare.connection_made(FakeTransport())
    bare.encoding = "utf-8"
    bare.factory = type("Factory", (), {"dispatch": staticmethod(seen.append), "save_stream": None})()
    bare.data_received(BANNER + wire[:cut])
    bare.data_received(wire[cut:])
    assert [m["CallerIDName"] for m in seen] != [NAME]


async def test_an_exception_while_handling_one_event_skips_it_and_keeps_the_connection() -> None:
    """The handler raising for one event: that event is skipped, the next ones arrive, nothing is closed."""
    events: list[Message] = []
    conn, transport = _connection(events, fail_on="Hangup")
    conn.data_received(_event("Newchannel") + _event("Hangup") + _event("Newstate"))
    assert [m.event for m in events] == ["Newchannel", "Newstate"]
    assert conn.skipped == 1
    assert not transport.closed
    assert not conn.closed
    assert not conn.lost.done()


async def test_a_reply_that_cannot_be_handled_fails_its_action_and_the_stream_goes_on() -> None:
    """An exception while handling a reply fails only its action (no wait for a timeout); events go on."""
    events: list[Message] = []

    def on_reply(action_id: str, message: Message) -> None:
        raise RuntimeError("reply hook bug")

    conn = AmiConnection(events.append, on_reply)
    transport = FakeTransport()
    conn.connection_made(transport)
    action = make_action("Ping")
    future = conn.send_action(action)
    reply = encode_message([("Response", "Success"), ("ActionID", action.id), ("Ping", "Pong")])
    conn.data_received(BANNER + reply + _event("Newchannel"))
    with pytest.raises(AmiError):
        await future
    assert [m.event for m in events] == ["Newchannel"]
    assert not transport.closed
    assert conn.responses == {}


async def test_a_reply_with_repeated_headers_is_handed_back_whole() -> None:
    """panoramisk turns repeated headers into a list; the action still returns crmtel's message, every value kept."""
    conn, _ = _connection([])
    action = make_action("Ping")
    future = conn.send_action(action)
    conn.data_received(
        encode_message(
            [("Response", "Success"), ("ActionID", action.id), ("Message", NAME), ("Message", "b")]
        )
    )
    (reply,) = replies(await future)
    assert reply.get_all("Message") == (NAME, "b")


async def test_a_channel_list_is_completed_by_panoramisk_with_crmtel_messages() -> None:
    """CoreShowChannels: panoramisk collects the list until its Complete event; events in between go on."""
    events: list[Message] = []
    conn, transport = _connection(events)
    action = make_action("CoreShowChannels")
    future = conn.send_action(action, as_list=None)
    assert b"Action: CoreShowChannels\r\n" in transport.written
    aid = ("ActionID", action.id)
    wire = b"".join(
        [
            encode_message(
                [("Response", "Success"), aid, ("EventList", "start"), ("Message", "will follow")]
            ),
            _event("CoreShowChannel", aid, ("Channel", "PJSIP/101-1"), ("CallerIDName", NAME)),
            _event("Newstate", ("Channel", "PJSIP/102-2")),
            _event("CoreShowChannel", aid, ("Channel", "PJSIP/trunk-3")),
            _event("CoreShowChannelsComplete", aid, ("EventList", "Complete"), ("ListItems", "2")),
        ]
    )
    for i in range(0, len(wire), 5):
        conn.data_received(wire[i : i + 5])
    listing = replies(await future)
    assert [m.event for m in listing] == [
        None,
        "CoreShowChannel",
        "CoreShowChannel",
        "CoreShowChannelsComplete",
    ]
    assert listing[1].get("CallerIDName") == NAME
    assert [m.event for m in events] == ["Newstate"]
    assert conn.responses == {}


async def test_a_refused_list_completes_with_the_error_reply() -> None:
    """CoreShowChannels refused (no privilege): the action ends at once with the Error reply, no timeout."""
    conn, _ = _connection([])
    action = make_action("CoreShowChannels")
    future = conn.send_action(action, as_list=None)
    conn.data_received(
        encode_message([("Response", "Error"), ("ActionID", action.id), ("Message", "Permission denied")])
    )
    (reply,) = replies(await future)
    assert (reply.response, reply.get("Message")) == ("Error", "Permission denied")


async def test_connection_lost_fails_pending_actions_without_panoramisk_reconnect() -> None:
    """A lost connection fails what waits with ConnectionLost and reports it; no panoramisk factory is called."""
    conn, _ = _connection([])
    future = conn.send_action(make_action("Ping"))
    conn.connection_lost(ConnectionResetError("reset"))
    with pytest.raises(ConnectionLost):
        await future
    assert conn.lost.result() == "ConnectionResetError: reset"
    assert conn.factory is None
    with pytest.raises(ConnectionLost):
        conn.send_action(make_action("Ping"))


async def test_pause_and_resume_reading_follow_the_consumer() -> None:
    """pause() stops the transport reading, resume() starts it again, each once."""
    conn, transport = _connection([])
    conn.pause()
    conn.pause()
    assert (transport.reading, conn.paused) == (False, True)
    conn.resume()
    assert (transport.reading, conn.paused) == (True, False)


def test_action_values_with_line_breaks_are_refused() -> None:
    """A CR/LF in a value would inject headers into the action: refused before anything is sent."""
    with pytest.raises(ValueError, match="line break"):
        make_action("Login", [("Username", "x\r\nAction: Originate")])
