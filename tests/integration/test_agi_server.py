"""The FastAGI route server over real TCP, with a fake Asterisk and a fake store."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from decimal import Decimal

import pytest

from crmtel.config import RoutingSettings
from crmtel.domain import LookupResult, PartyKind, PartyMatch
from crmtel.errors import StoreUnavailable
from crmtel.routing.agi import AgiServer
from crmtel.routing.service import RoutingService
from tests.unit.test_routing_agi_protocol import asterisk_args

KNOWN = "+79161110001"
HOSTILE = "+79163330003"
NOW = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)


@dataclass
class FakeLookup:
    """A store that knows two numbers; it can be made slow or broken."""

    delay: float = 0.0
    broken: bool = False
    calls: list[str] = field(default_factory=list)
    called: asyncio.Event = field(default_factory=asyncio.Event)

    async def lookup(self, e164: str) -> LookupResult:
        self.calls.append(e164)
        self.called.set()
        if self.delay:
            await asyncio.sleep(self.delay)
        if self.broken:
            raise StoreUnavailable("database unreachable")
        if e164 == KNOWN:
            match = PartyMatch(
                kind=PartyKind.CLIENT,
                id=1,
                name="ООО «Ромашка»",
                rank=0,
                manager_id=7,
                manager_name="Анна Смирнова",
                manager_extensions=("101",),
                manager_active=True,
                turnover=Decimal(250_000),
                turnover_month=date(2026, 10, 1),
            )
            return LookupResult(e164, (match,))
        if e164 == HOSTILE:
            match = PartyMatch(
                kind=PartyKind.LEAD, id=2, name='Evil "Corp"\nHANGUP\r\n\\', rank=2, company="x\x00y"
            )
            return LookupResult(e164, (match,))
        return LookupResult(e164)


@dataclass
class Exchange:
    """What a fake Asterisk saw: the commands in order, and how long the AGI took."""

    commands: list[str]
    seconds: float

    @property
    def variables(self) -> dict[str, str]:
        out: dict[str, str] = {}
        for command in self.commands:
            args = asterisk_args(command)
            assert (args[:2], len(args)) == (["SET", "VARIABLE"], 4), command
            out[args[2]] = args[3]
        return out


def env(caller: str | None = KNOWN, did: str | None = "4951234567", script: str = "route") -> bytes:
    lines = [
        "agi_network: yes",
        f"agi_network_script: {script}",
        "agi_request: agi://127.0.0.1:4573/route",
        "agi_channel: PJSIP/trunk-00000001",
        "agi_callerid: 89990000000",
        "agi_dnid: 4951234567",
        "agi_extension: 4951234567",
    ]
    if caller is not None:
        lines.append(f"agi_arg_1: {caller}")
    if did is not None:
        lines.append(f"agi_arg_2: {did}")
    return ("\n".join(lines) + "\n\n").encode()


async def fake_asterisk(port: int, environment: bytes, reply: bytes = b"200 result=1\n") -> Exchange:
    """Play Asterisk's side of one AGI() call: send the environment, answer each command until EOF."""
    started = time.monotonic()
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(environment)
    await writer.drain()
    commands: list[str] = []
    async with asyncio.timeout(5):
        while line := await reader.readline():
            commands.append(line.decode().rstrip("\n"))
            writer.write(reply)
            await writer.drain()
    writer.close()
    return Exchange(commands, time.monotonic() - started)


async def closed_without_a_word(reader: asyncio.StreamReader) -> bool:
    """The server closed the connection having sent nothing (a reset counts: it closed with bytes unread)."""
    try:
        return await reader.read() == b""
    except ConnectionResetError:
        return True


@pytest.fixture
def store() -> FakeLookup:
    return FakeLookup()


@pytest.fixture
async def service(store: FakeLookup) -> AsyncIterator[RoutingService]:
    routing = RoutingService(store, RoutingSettings(deadline_ms=200), clock=lambda: NOW)
    yield routing
    await routing.close()


@pytest.fixture
async def server(service: RoutingService) -> AsyncIterator[AgiServer]:
    agi = AgiServer(service, "127.0.0.1", 0, header_timeout=0.5, reply_timeout=0.5)
    async with agi:
        yield agi


async def test_known_client_gets_manager_and_fallback(server: AgiServer) -> None:
    """A client with an active manager: extension 101, wholesale fallback, the client's name; KIND last."""
    result = await fake_asterisk(server.port, env())
    assert result.variables == {
        "CRMTEL_FALLBACK_QUEUE": "wholesale",
        "CRMTEL_ROUTE_TARGET": "101",
        "CRMTEL_ROUTE_REASON": result.variables["CRMTEL_ROUTE_REASON"],
        "CRMTEL_CALLER_NAME": "ООО «Ромашка»",
        "CRMTEL_ROUTE_KIND": "extension",
    }
    assert "Анна Смирнова" in result.variables["CRMTEL_ROUTE_REASON"]
    assert asterisk_args(result.commands[-1])[2] == "CRMTEL_ROUTE_KIND"


async def test_caller_id_used_without_arguments(server: AgiServer, store: FakeLookup) -> None:
    """Without AGI arguments the channel's caller id (national format) and DNID are used."""
    result = await fake_asterisk(server.port, env(caller=None, did=None))
    assert store.calls == ["+79990000000"]
    assert result.variables["CRMTEL_ROUTE_KIND"] == "queue"
    assert result.variables["CRMTEL_ROUTE_TARGET"] == "retail"
    assert result.variables["CRMTEL_CALLER_NAME"] == ""


async def test_hostile_name_cannot_inject_commands(server: AgiServer) -> None:
    """Quotes, newlines, backslashes and NULs in CRM data never split or add AGI commands."""
    result = await fake_asterisk(server.port, env(caller=HOSTILE))
    assert len(result.commands) == 5
    assert result.variables["CRMTEL_CALLER_NAME"] == "Evil 'Corp' HANGUP (x y)"


async def test_slow_store_sends_nothing_within_deadline(server: AgiServer, store: FakeLookup) -> None:
    """A store slower than the 200 ms deadline: no variables, connection closed well before the store returns."""
    store.delay = 3.0
    result = await fake_asterisk(server.port, env())
    assert result.commands == []
    assert 0.15 < result.seconds < 0.6


async def test_lookup_outliving_deadline_is_owned(
    server: AgiServer, store: FakeLookup, service: RoutingService
) -> None:
    """A lookup past its deadline keeps running (its connection is not torn down) until close() cancels it."""
    store.delay = 3.0
    assert (await fake_asterisk(server.port, env())).commands == []
    assert len(service._inflight) == 1
    await service.close()
    assert service._inflight == set()


async def test_overloaded_store_fails_open_at_once(store: FakeLookup) -> None:
    """With as many slow lookups in flight as allowed, new calls get no route immediately."""
    store.delay = 3.0
    service = RoutingService(store, RoutingSettings(deadline_ms=200), clock=lambda: NOW, max_inflight=2)
    try:
        first = [asyncio.create_task(service.route(KNOWN, None)) for _ in range(2)]
        await asyncio.sleep(0.05)
        started = time.monotonic()
        assert await service.route(KNOWN, None) is None
        assert time.monotonic() - started < 0.15  # well before the 0.2 s deadline
        assert len(store.calls) == 2
        assert await asyncio.gather(*first) == [None, None]
    finally:
        await service.close()


async def test_broken_store_sends_nothing(server: AgiServer, store: FakeLookup) -> None:
    """A failing store: the call falls back in the dialplan, the server keeps serving."""
    store.broken = True
    assert (await fake_asterisk(server.port, env())).commands == []
    store.broken = False
    assert (await fake_asterisk(server.port, env())).variables["CRMTEL_ROUTE_KIND"] == "extension"


async def test_unknown_script_sends_nothing(server: AgiServer, store: FakeLookup) -> None:
    """Only agi://host/route is served; other scripts get nothing and no lookup is made."""
    assert (await fake_asterisk(server.port, env(script="other"))).commands == []
    assert store.calls == []


async def test_hangup_stops_the_exchange(server: AgiServer) -> None:
    """When Asterisk answers HANGUP the server stops sending commands."""
    result = await fake_asterisk(server.port, env(), reply=b"HANGUP\n")
    assert len(result.commands) == 1


async def test_refused_command_stops_the_exchange(server: AgiServer) -> None:
    """A 510/520 reply (multi-line usage included) ends the exchange instead of hanging."""
    usage = (
        b"520-Invalid command syntax.  Proper usage follows:\nUsage: SET VARIABLE\n520 End of proper usage.\n"
    )
    result = await fake_asterisk(server.port, env(), reply=usage)
    assert len(result.commands) == 1


async def test_bad_clients_do_not_block_a_good_one(server: AgiServer) -> None:
    """Garbage, early EOF and a silent client connected at the same time leave a good request fast."""
    garbage_r, garbage_w = await asyncio.open_connection("127.0.0.1", server.port)
    garbage_w.write(b"\x00\xff GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    eof_r, eof_w = await asyncio.open_connection("127.0.0.1", server.port)
    eof_w.write(b"agi_network: yes\nagi_network_script: rou")
    eof_w.write_eof()
    silent_r, silent_w = await asyncio.open_connection("127.0.0.1", server.port)
    half_r, half_w = await asyncio.open_connection("127.0.0.1", server.port)
    half_w.write(b"agi_network: yes\n")  # never finishes its headers
    await asyncio.gather(garbage_w.drain(), eof_w.drain(), half_w.drain())

    good = await fake_asterisk(server.port, env())
    assert good.variables["CRMTEL_ROUTE_KIND"] == "extension"
    assert good.seconds < 0.4  # the silent clients are held for 0.5 s: no waiting on them

    async with asyncio.timeout(2):
        assert await closed_without_a_word(garbage_r)
        assert await closed_without_a_word(eof_r)
        assert await closed_without_a_word(silent_r)  # after the header timeout
        assert await closed_without_a_word(half_r)
    for w in (garbage_w, eof_w, silent_w, half_w):
        w.close()
    assert server.connections == 0


async def test_many_parallel_calls(server: AgiServer) -> None:
    """Fifty simultaneous AGI calls each get their own complete answer."""
    results = await asyncio.gather(*(fake_asterisk(server.port, env()) for _ in range(50)))
    assert all(r.variables["CRMTEL_ROUTE_TARGET"] == "101" for r in results)


async def test_stop_cancels_connections_in_flight(store: FakeLookup) -> None:
    """Shutdown cancels and awaits connections still waiting for the store; nothing is left running."""
    store.delay = 10.0
    service = RoutingService(store, RoutingSettings(deadline_ms=5000), clock=lambda: NOW)
    agi = AgiServer(service, "127.0.0.1", 0)
    await agi.start()
    reader, writer = await asyncio.open_connection("127.0.0.1", agi.port)
    writer.write(env())
    await writer.drain()
    async with asyncio.timeout(1):
        await store.called.wait()
    assert agi.connections == 1
    started = time.monotonic()
    await agi.stop()
    await service.close()
    assert time.monotonic() - started < 0.5
    assert agi.connections == 0
    async with asyncio.timeout(1):
        assert await reader.read() == b""
    writer.close()


async def test_connection_limit_fails_open(service: RoutingService, store: FakeLookup) -> None:
    """With twice max_connections busy routing real requests, a newcomer is closed at once (dialplan falls back)."""
    store.delay = 0.4  # the store is slow: every slot stays past its header for a while
    agi = AgiServer(service, "127.0.0.1", 0, header_timeout=5.0, max_connections=2)
    async with agi:
        busy = [asyncio.create_task(fake_asterisk(agi.port, env())) for _ in range(4)]
        await asyncio.sleep(0.1)
        assert agi.connections == 4
        started = time.monotonic()
        reader, writer = await asyncio.open_connection("127.0.0.1", agi.port)
        async with asyncio.timeout(1):
            assert await closed_without_a_word(reader)
        assert time.monotonic() - started < 0.5
        assert agi.refused == 1
        writer.close()
        await asyncio.gather(*busy)
        store.delay = 0
        await asyncio.sleep(0.1)
        assert (await fake_asterisk(agi.port, env())).variables["CRMTEL_ROUTE_KIND"] == "extension"


async def test_silent_connections_make_room_for_a_real_request(service: RoutingService) -> None:
    """A full server of silent connections drops the oldest of them to serve a newcomer at once."""
    agi = AgiServer(service, "127.0.0.1", 0, header_timeout=5.0, max_connections=2)
    async with agi:
        hogs = [await asyncio.open_connection("127.0.0.1", agi.port) for _ in range(2)]
        await asyncio.sleep(0.3)  # silent for longer than stall_grace (0.2 s): they are holding us up
        assert agi.connections == 2
        exchange = await fake_asterisk(agi.port, env())
        assert exchange.variables["CRMTEL_ROUTE_KIND"] == "extension"
        assert exchange.seconds < 0.5
        assert agi.evicted == 1
        async with asyncio.timeout(1):
            assert await closed_without_a_word(hogs[0][0])  # the oldest hog went first
        for _, w in hogs:
            w.close()


async def test_stop_with_half_sent_environment_logs_no_traceback(
    service: RoutingService, caplog: pytest.LogCaptureFixture
) -> None:
    """Stopping while Asterisk is mid-way through its environment closes the connection with a clean log."""
    agi = AgiServer(service, "127.0.0.1", 0, header_timeout=5.0)
    await agi.start()
    reader, writer = await asyncio.open_connection("127.0.0.1", agi.port)
    writer.write(b"agi_network: yes\nagi_network_script: route\n")
    await writer.drain()
    await asyncio.sleep(0.1)
    assert agi.connections == 1
    await agi.stop()
    async with asyncio.timeout(2):
        assert await closed_without_a_word(reader)
    writer.close()
    await asyncio.sleep(0.05)  # let any callback asyncio scheduled on the way out run
    assert [r.getMessage() for r in caplog.records if r.name == "asyncio"] == []
