"""The AMI client against the fake AMI server over real TCP: framing, login, watchdog, resync, bad input."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable, Sequence
from datetime import datetime
from pathlib import Path

import pytest
from pydantic import SecretStr

from crmtel.ami.client import AmiClient
from crmtel.ami.protocol import Message, Parser, encode_message
from crmtel.config import AmiSettings
from crmtel.fakepbx.server import FakeAmiServer, Garbage, Recorded, load_ami
from tests.fixtures.fake_ami import running, settings_for, wait_for


class RecordingSink:
    """Keeps everything the client delivers; can be told to fail on one event name."""

    def __init__(self, fail_on: str | None = None) -> None:
        self.events: list[tuple[Message, datetime]] = []
        self.resyncs: list[tuple[tuple[Message, ...], datetime]] = []
        self.idles = 0
        self.lost: list[datetime] = []
        self.fail_on = fail_on

    async def on_event(self, pbx: str, message: Message, at: datetime) -> None:
        if self.fail_on is not None and message.event == self.fail_on:
            raise RuntimeError("consumer bug")
        self.events.append((message, at))

    async def on_resync(self, pbx: str, channels: Sequence[Message], at: datetime) -> None:
        self.resyncs.append((tuple(channels), at))

    async def on_idle(self, pbx: str) -> None:
        self.idles += 1

    async def on_lost(self, pbx: str, at: datetime) -> None:
        self.lost.append(at)


def _stream_events(messages: Sequence[Message]) -> list[tuple[tuple[str, str], ...]]:
    return [tuple(h for h in m.headers if h[0] != "Timestamp") for m in messages]


@pytest.mark.parametrize("chunk", [1, 7, 64 * 1024])
async def test_every_event_of_a_trace_arrives_intact_in_any_chunking(traces_dir: Path, chunk: int) -> None:
    """Over real TCP in 1-, 7- and 64 KiB-byte writes, the sink gets exactly the trace's events, in order."""
    path = traces_dir / "outbound-answered.ami"
    stream = load_ami(path)
    server = FakeAmiServer(stream, chunk_size=chunk)
    await server.start()
    sink = RecordingSink()
    client = AmiClient(settings_for(server), sink)
    try:
        async with running(client):
            await wait_for(lambda: server.finished.is_set() and len(sink.events) >= len(stream) + 1)
    finally:
        await server.close()
    got = _stream_events([m for m, _ in sink.events if m.event != "FullyBooted"])
    assert got == [
        item.headers
        for item in stream
        if isinstance(item, Recorded) and Message(item.headers).event != "FullyBooted"
    ]
    names = {m.get("CallerIDName") for m, _ in sink.events}
    assert "Анна Смирнова" in names


async def test_event_times_come_from_the_timestamp_header(traces_dir: Path) -> None:
    """Event times are the stream's own times, whatever the replay speed."""
    stream = load_ami(traces_dir / "direct-answered.ami")
    server = FakeAmiServer(stream)
    await server.start()
    sink = RecordingSink()
    try:
        async with running(AmiClient(settings_for(server), sink)):
            await wait_for(lambda: server.finished.is_set() and len(sink.events) > len(stream))
    finally:
        await server.close()
    rows = [json.loads(line) for line in (traces_dir / "direct-answered.jsonl").read_text().splitlines()]
    span = stream[-1].t - stream[0].t
    # Rows 0-3: the banner, the login, the recorder's FullyBooted and SuccessfulAuth (not replayed).
    assert span == rows[-1]["t"] - rows[4]["t"]
    at = [a for m, a in sink.events if m.event != "FullyBooted"]
    assert abs((at[-1] - at[0]).total_seconds() - span) < 0.01


@pytest.mark.parametrize("auth", ["plain", "md5"])
async def test_login_plain_and_md5(traces_dir: Path, auth: str) -> None:
    """Both login styles are accepted by a server that checks them."""
    server = FakeAmiServer(load_ami(traces_dir / "queue-abandoned.ami"))
    await server.start()
    client = AmiClient(settings_for(server, auth=auth), RecordingSink())
    try:
        async with running(client):
            await wait_for(client.connected.is_set)
    finally:
        await server.close()
    assert server.logins == 1


async def test_wrong_secret_never_connects_and_keeps_retrying(traces_dir: Path) -> None:
    """A refused login is retried with backoff, and no events are read."""
    server = FakeAmiServer(load_ami(traces_dir / "queue-abandoned.ami"))
    await server.start()
    sink = RecordingSink()
    client = AmiClient(settings_for(server, secret=SecretStr("wrong")), sink)
    try:
        async with running(client):
            await asyncio.sleep(0.5)
    finally:
        await server.close()
    assert server.logins == 0
    assert client.connections == 0
    assert sink.events == []


async def test_a_refused_login_is_logged_as_one_counted_and_retried_slower(
    traces_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Wrong secret: an error naming the user (never the secret), login_failures counted, waits login_retry."""
    server = FakeAmiServer(load_ami(traces_dir / "queue-abandoned.ami"))
    await server.start()
    settings = settings_for(server, secret=SecretStr("wrong-secret-xyz"), login_retry=0.4)
    client = AmiClient(settings, RecordingSink())
    caplog.set_level(logging.INFO, logger="crmtel.ami.client")
    try:
        async with running(client):
            await asyncio.sleep(1.0)
    finally:
        await server.close()
    # Waits of 0.4 s then 0.8 s: at most three attempts in a second (a network error would retry every
    # 0.05-0.2 s, five or more times).
    assert 1 <= client.login_failures <= 3
    assert client.connect_failures == 0
    assert client.reconnects == client.login_failures - 1 or client.reconnects == client.login_failures
    assert client.last_error == "login refused: Authentication failed"
    errors = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
    assert errors
    assert "login refused for user 'crmtel' at 127.0.0.1" in errors[0]
    assert "check the AMI username and secret" in errors[0]
    assert errors[0].endswith("next try in 0.4 s")
    assert all(e.endswith("next try in 0.8 s") for e in errors[1:2])
    assert all("wrong-secret-xyz" not in r.getMessage() for r in caplog.records)
    assert not any("reconnecting in" in r.getMessage() for r in caplog.records)


async def test_a_pbx_shutting_down_is_reconnected_to_at_once_not_as_a_refused_login() -> None:
    """Asterisk answers every action with "Asterisk is shutting down" while it stops or restarts (seen live on
    22.10.1: Ping, Challenge and Login alike): the client retries at its reconnect pace, not after login_retry."""
    attempts: list[str] = []

    async def shutting_down(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"Asterisk Call Manager/11.0.0\r\n")
        parser = Parser()
        try:
            while data := await reader.read(4096):
                for msg in parser.feed(data):
                    attempts.append(msg.get("Action") or "")
                    ids = [("ActionID", msg.action_id)] if msg.action_id else []
                    reply = [("Response", "Error"), *ids, ("Message", "Asterisk is shutting down")]
                    writer.write(encode_message(reply))
        finally:
            writer.close()

    server = await asyncio.start_server(shutting_down, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    settings = AmiSettings.model_validate(
        {"port": port, "reconnect_min": 0.05, "reconnect_max": 0.05, "login_retry": 60.0, "secret": "s"}
    )
    client = AmiClient(settings, RecordingSink())
    try:
        async with running(client):
            await wait_for(lambda: client.reconnects >= 3)
    finally:
        server.close()
        await server.wait_closed()
    assert client.login_failures == 0
    assert client.last_error == "PbxShuttingDown: Asterisk is shutting down"
    assert attempts.count("Challenge") >= 3


async def test_refused_connections_count_as_reconnects_and_connect_failures() -> None:
    """Nobody listening: every retry is a reconnect and a connect failure; no login, no login failure."""
    probe = await asyncio.start_server(lambda _r, _w: None, "127.0.0.1", 0)
    port = probe.sockets[0].getsockname()[1]
    probe.close()
    await probe.wait_closed()
    settings = AmiSettings.model_validate(
        {"port": port, "reconnect_min": 0.05, "reconnect_max": 0.05, "secret": SecretStr("s")}
    )
    client = AmiClient(settings, RecordingSink())
    async with running(client):
        await wait_for(lambda: client.reconnects >= 3)
    assert client.connections == 0
    assert client.login_failures == 0
    assert client.connect_failures >= client.reconnects >= 3
    assert client.last_error is not None
    assert "ConnectionRefusedError" in client.last_error


async def test_watchdog_reconnects_when_pings_go_unanswered(traces_dir: Path) -> None:
    """With the PBX silent on Ping, the client drops the link and logs in again."""
    server = FakeAmiServer(load_ami(traces_dir / "queue-abandoned.ami"), speed=1.0)
    server.answer_pings = False
    await server.start()
    client = AmiClient(settings_for(server, ping_interval=0.1, ping_timeout=0.1), RecordingSink())
    try:
        async with running(client):
            await wait_for(lambda: server.logins >= 2, limit=5)
    finally:
        await server.close()
    assert server.pings >= 1


async def test_answered_pings_keep_one_connection(traces_dir: Path) -> None:
    """A PBX that answers Ping is never dropped by the watchdog."""
    server = FakeAmiServer(load_ami(traces_dir / "queue-abandoned.ami"), speed=1.0)
    await server.start()
    client = AmiClient(settings_for(server, ping_interval=0.05, ping_timeout=0.5), RecordingSink())
    try:
        async with running(client):
            await wait_for(lambda: server.pings >= 5, limit=5)
    finally:
        await server.close()
    assert server.logins == 1


async def test_reconnect_is_followed_by_a_resync_with_the_live_channels(traces_dir: Path) -> None:
    """After a dropped connection the client logs in again and delivers CoreShowChannels as a resync."""
    stream = load_ami(traces_dir / "direct-answered.ami")
    newchannels = [i for i, item in enumerate(stream) if Message(item.headers).event == "Newchannel"]
    drop = newchannels[1] + 1
    server = FakeAmiServer(stream, drop_after=drop, lose_on_drop=3, pause_after=drop + 3)
    await server.start()
    sink = RecordingSink()
    client = AmiClient(settings_for(server), sink)
    try:
        async with running(client):
            await wait_for(lambda: server.logins == 2 and client.connected.is_set() and client.idle)
    finally:
        await server.close()
    channels = {m.get("Channel") for m in sink.resyncs[-1][0]}
    assert channels == {"PJSIP/trunk-0000000e", "PJSIP/101-0000000f"}
    assert all(m.get("Linkedid") == "1795462037.14" for m in sink.resyncs[-1][0])
    # The drop itself reached the sink, once.
    assert len(sink.lost) == 1


async def test_garbage_frames_are_skipped_and_the_connection_stays_up(
    traces_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Binary junk, header-less lines and invalid UTF-8 are skipped; later events still arrive."""
    stream = load_ami(traces_dir / "queue-abandoned.ami")
    junk = [
        Garbage(0.0, b"\x00\x01\x02 not a header\r\n\r\n"),
        Garbage(0.0, b"Event: Broken\r\nCallerIDName: \xff\xfe\r\nno colon here\r\n\r\n"),
        Garbage(0.0, b"\r\n\r\n"),
    ]
    server = FakeAmiServer([*stream[:10], *junk, *stream[10:]], chunk_size=7)
    await server.start()
    sink = RecordingSink()
    client = AmiClient(settings_for(server), sink)
    with caplog.at_level(logging.WARNING):
        try:
            async with running(client):
                await wait_for(lambda: server.finished.is_set() and len(sink.events) >= len(stream) + 2)
        finally:
            await server.close()
    assert server.logins == 1
    broken = [m for m, _ in sink.events if m.event == "Broken"]
    assert broken[0].get("CallerIDName") == "\ufffd\ufffd"
    assert len(sink.events) == len(stream) + 2


async def test_a_failing_consumer_is_logged_and_the_stream_goes_on(traces_dir: Path) -> None:
    """An exception in the sink for one event does not close the connection or stop later events."""
    stream = load_ami(traces_dir / "queue-abandoned.ami")
    server = FakeAmiServer(stream)
    await server.start()
    sink = RecordingSink(fail_on="Newchannel")
    client = AmiClient(settings_for(server), sink)
    try:
        async with running(client):
            await wait_for(lambda: server.finished.is_set() and client.idle and client.handled > len(stream))
    finally:
        await server.close()
    assert server.logins == 1
    failing = sum(1 for item in stream if Message(item.headers).event == "Newchannel")
    assert len(sink.events) == len(stream) + 1 - failing


async def test_refused_resync_keeps_the_connection_and_the_events(traces_dir: Path) -> None:
    """A PBX that refuses CoreShowChannels is still followed: no reconnect loop, every event delivered."""
    stream = load_ami(traces_dir / "queue-abandoned.ami")
    server = FakeAmiServer(stream)
    server.refuse_listing = True
    await server.start()
    sink = RecordingSink()
    client = AmiClient(settings_for(server), sink)
    try:
        async with running(client):
            await wait_for(
                lambda: server.finished.is_set() and client.idle and len(sink.events) > len(stream)
            )
            await asyncio.sleep(0.2)
    finally:
        await server.close()
    assert server.logins == 1
    assert sink.resyncs == []
    assert len(sink.events) == len(stream) + 1


class ScriptedPbx:
    """A bare AMI server for what the fake server cannot do: chosen Ping answers, bytes cut where the test says."""

    def __init__(
        self, ping_reply: Callable[[str], bytes] | None = None, script: Sequence[bytes] = ()
    ) -> None:
        self.ping_reply = ping_reply
        self.script = script
        self.logins = 0
        self.pings = 0
        self.actions: list[str] = []
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()

    @property
    def port(self) -> int:
        assert self._server is not None
        port: int = self._server.sockets[0].getsockname()[1]
        return port

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)

    async def close(self) -> None:
        assert self._server is not None
        self._server.close()
        for writer in list(self._writers):
            writer.transport.abort()
        await self._server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._writers.add(writer)
        writer.write(b"Asterisk Call Manager/11.0.0\r\n")
        parser = Parser(expect_banner=False)
        try:
            while data := await reader.read(4096):
                for msg in parser.feed(data):
                    if not await self._handle(msg, writer):
                        return
        except ConnectionError:
            pass
        finally:
            self._writers.discard(writer)
            writer.transport.abort()

    async def _handle(self, msg: Message, writer: asyncio.StreamWriter) -> bool:
        action = (msg.get("Action") or "").lower()
        self.actions.append(action)
        aid = ("ActionID", msg.action_id or "")
        if action == "login":
            self.logins += 1
            writer.write(
                encode_message([("Response", "Success"), aid, ("Message", "Authentication accepted")])
            )
            for piece in self.script if self.logins == 1 else ():
                writer.write(piece)
                await writer.drain()
                await asyncio.sleep(0.05)  # a separate TCP read for each piece
        elif action == "ping":
            self.pings += 1
            if self.ping_reply is not None:
                writer.write(self.ping_reply(aid[1]))
        elif action == "coreshowchannels":
            writer.write(encode_message([("Response", "Success"), aid, ("EventList", "start")]))
            writer.write(
                encode_message([("Event", "CoreShowChannelsComplete"), aid, ("EventList", "Complete")])
            )
        elif action == "logoff":
            writer.write(encode_message([("Response", "Goodbye"), aid]))
            await writer.drain()
            return False
        await writer.drain()
        return True


def _scripted_settings(pbx: ScriptedPbx, **overrides: object) -> AmiSettings:
    base: dict[str, object] = {"port": pbx.port, "auth": "plain", "reconnect_min": 0.05, "reconnect_max": 0.1}
    base.update(overrides)
    return AmiSettings.model_validate({"name": "pbx1", "username": "u", "secret": SecretStr("s"), **base})


async def test_utf8_name_split_across_tcp_reads_arrives_whole() -> None:
    """Over real TCP, an event cut inside a Cyrillic letter and sent as two reads reaches the sink whole."""
    wire = encode_message([("Event", "Newchannel"), ("CallerIDName", "Анна Смирнова"), ("Linkedid", "1.1")])
    cut = wire.index("Анна".encode()) + 1
    pbx = ScriptedPbx(script=[wire[:cut], wire[cut:]])
    await pbx.start()
    sink = RecordingSink()
    try:
        async with running(AmiClient(_scripted_settings(pbx), sink)):
            await wait_for(lambda: len(sink.events) >= 1)
    finally:
        await pbx.close()
    assert [m.get("CallerIDName") for m, _ in sink.events] == ["Анна Смирнова"]


async def test_watchdog_reconnects_when_ping_is_answered_with_an_error() -> None:
    """A PBX that answers Ping, but with an error, is dropped at once: the reply is checked, not just awaited."""
    pbx = ScriptedPbx(
        ping_reply=lambda aid: encode_message([("Response", "Error"), ("ActionID", aid), ("Message", "No")])
    )
    await pbx.start()
    client = AmiClient(_scripted_settings(pbx, ping_interval=0.05, ping_timeout=30.0), RecordingSink())
    try:
        async with running(client):
            await wait_for(lambda: pbx.logins >= 2, limit=5)
    finally:
        await pbx.close()


async def test_watchdog_reconnects_when_ping_is_answered_with_nothing() -> None:
    """A PBX that answers Ping with an empty message (nothing that matches) is dropped after ping_timeout."""
    pbx = ScriptedPbx(ping_reply=lambda aid: b"\r\n\r\n")
    await pbx.start()
    client = AmiClient(_scripted_settings(pbx, ping_interval=0.05, ping_timeout=0.2), RecordingSink())
    try:
        async with running(client):
            await wait_for(lambda: pbx.logins >= 2, limit=5)
    finally:
        await pbx.close()
    assert pbx.pings >= 1


async def test_answered_pings_with_pong_keep_the_connection() -> None:
    """``Response: Success`` with ``Ping: Pong`` is a live PBX: no reconnect."""
    pbx = ScriptedPbx(
        ping_reply=lambda aid: encode_message([("Response", "Success"), ("ActionID", aid), ("Ping", "Pong")])
    )
    await pbx.start()
    client = AmiClient(_scripted_settings(pbx, ping_interval=0.02, ping_timeout=1.0), RecordingSink())
    try:
        async with running(client):
            await wait_for(lambda: pbx.pings >= 5, limit=5)
    finally:
        await pbx.close()
    assert pbx.logins == 1


async def test_a_clean_stop_logs_off() -> None:
    """Cancelling a connected client sends Logoff (and the PBX's Goodbye ends the session)."""
    pbx = ScriptedPbx()
    await pbx.start()
    sink = RecordingSink()
    client = AmiClient(_scripted_settings(pbx), sink)
    try:
        async with running(client):
            await wait_for(client.connected.is_set)
        await wait_for(lambda: "logoff" in pbx.actions, limit=2)
    finally:
        await pbx.close()
    assert pbx.actions == ["login", "coreshowchannels", "logoff"]
    assert sink.lost == []  # a clean stop is not a lost PBX


async def test_a_small_queue_pushes_back_and_loses_nothing(traces_dir: Path) -> None:
    """With a queue of 3 and a slow sink, reading pauses and resumes; every event arrives, in order."""
    stream = load_ami(traces_dir / "queue-abandoned.ami")
    server = FakeAmiServer(stream)
    await server.start()

    paused: list[bool] = []

    class SlowSink(RecordingSink):
        async def on_event(self, pbx: str, message: Message, at: datetime) -> None:
            conn = client._conn
            paused.append(conn is not None and conn.paused)
            await asyncio.sleep(0.001)
            await super().on_event(pbx, message, at)

    sink = SlowSink()
    client = AmiClient(settings_for(server), sink, max_queue=3)
    try:
        async with running(client):
            await wait_for(
                lambda: server.finished.is_set() and client.idle and len(sink.events) > len(stream)
            )
    finally:
        await server.close()
    assert server.logins == 1
    assert any(paused)
    assert _stream_events([m for m, _ in sink.events if m.event != "FullyBooted"]) == [
        item.headers
        for item in stream
        if isinstance(item, Recorded) and Message(item.headers).event != "FullyBooted"
    ]
