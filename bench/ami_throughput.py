"""Events per second through the whole AMI pipeline, next to panoramisk's bare parser on the same bytes.

    python bench/ami_throughput.py [--calls 400] [--database-url sqlite+aiosqlite:////tmp/x.db]

The stream is the nine recorded Asterisk 22 calls, rewritten into ``--calls`` distinct calls (about 110
AMI events each, VarSet/Newexten/RTCP noise included), encoded as Asterisk sends them. Figures, all on
one core in one process:

- panoramisk parse: ``panoramisk.ami_protocol.AMIProtocol.data_received`` fed 64 KiB chunks (its decode,
  split and ``Message.from_line``; events dispatched to a no-op).
- crmtel parse: ``crmtel.ami.protocol.Parser.feed`` on the same chunks.
- crmtel on panoramisk's protocol: ``crmtel.ami.connection.AmiConnection.data_received`` (the client's
  connection: panoramisk's ``AMIProtocol`` with crmtel's framing and routing; events to a no-op).
- pipeline in-process: parse -> typed event -> tracker -> records/leads/tasks on SQLite, flushed every
  500 events (as the client does when its queue is busy) and at the end.
- full path: the same through the real client (panoramisk protocol and actions, crmtel framing, login,
  watchdog, queue, consumer task, group commits) over loopback TCP from the fake AMI server, which runs in a separate process (on another core when
  there is one), so only crmtel's own CPU time is counted.

Rates are given by CPU time of the process (all its threads: aiosqlite runs SQLite in one) and, in
brackets, by wall-clock time, which drops when other processes share the core.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys
import tempfile
import time
from asyncio.subprocess import PIPE
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import samerun
import smoke
from benchdb import pg_database
from panoramisk.ami_protocol import AMIProtocol
from pydantic import SecretStr
from sqlalchemy.engine import make_url

from crmtel.ami.client import AmiClient, event_time, utcnow
from crmtel.ami.connection import AmiConnection
from crmtel.ami.protocol import Parser, encode_message
from crmtel.calls.service import CallService
from crmtel.config import AmiSettings, CallsSettings
from crmtel.fakepbx.server import FakeAmiServer, Recorded, _with_timestamp
from crmtel.fakepbx.simulator import load_patterns, rewrite_many
from crmtel.store.calls import CallRepository
from crmtel.store.db import Database, upgrade
from crmtel.store.parties import PartyRepository

CHUNK = 64 * 1024
EPOCH = 1_800_000_000.0
FIGURES = (
    r"^baseline \(same run\): panoramisk bare parser [\d,]+ events/s; fixed CPU loop",
    r"^panoramisk 1\.4 bare parse +: +[\d,]+ events/s",
    r"^crmtel parse \(Parser\.feed\) +: +[\d,]+ events/s",
    r"^crmtel on panoramisk protocol +: +[\d,]+ events/s",
    r"^pipeline parse->track->store +: +[\d,]+ events/s",
    r"^full path: TCP \+ client \+ above : +[\d,]+ events/s",
)


def build_stream(calls: int) -> tuple[list[Recorded], bytes]:
    """Distinct calls from the recorded patterns, and their bytes as Asterisk would send them."""
    stream = rewrite_many(load_patterns(), calls)
    wire = b"".join(encode_message(_with_timestamp(item.headers, f"{EPOCH + item.t:.6f}")) for item in stream)
    return stream, b"Asterisk Call Manager/11.0.0\r\n" + wire


def chunks(data: bytes) -> list[bytes]:
    return [data[i : i + CHUNK] for i in range(0, len(data), CHUNK)]


class _Transport(asyncio.Transport):
    def write(self, data: bytes | bytearray | memoryview) -> None:
        pass

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return default

    def close(self) -> None:
        pass


class _Factory:
    def __init__(self) -> None:
        self.count = 0
        self.save_stream = None

    def dispatch(self, message: Any) -> None:
        self.count += 1


class _Clock:
    """CPU time of the whole process and wall time since creation."""

    def __init__(self) -> None:
        self.cpu_start = time.process_time()
        self.wall_start = time.perf_counter()
        self.idle = 0.0

    def rates(self, count: int) -> tuple[float, float]:
        cpu = time.process_time() - self.cpu_start
        wall = time.perf_counter() - self.wall_start - self.idle
        return count / cpu, count / wall


def panoramisk_rate(pieces: Sequence[bytes], expected: int) -> tuple[float, float]:
    """Messages per second through panoramisk's own protocol parser."""
    protocol = AMIProtocol()
    protocol.connection_made(_Transport())
    factory = _Factory()
    protocol.factory = factory
    protocol.encoding = "utf8"
    clock = _Clock()
    for piece in pieces:
        protocol.data_received(piece)
    rates = clock.rates(factory.count)
    assert factory.count >= expected - 1, (factory.count, expected)
    return rates


def crmtel_parse_rate(pieces: Sequence[bytes], expected: int) -> tuple[float, float]:
    """Messages per second through crmtel's parser."""
    parser = Parser()
    count = 0
    clock = _Clock()
    for piece in pieces:
        count += len(parser.feed(piece))
    rates = clock.rates(count)
    assert count == expected, (count, expected)
    return rates


async def connection_rate(pieces: Sequence[bytes], expected: int) -> tuple[float, float]:
    """Messages per second through the client's connection protocol (framing, decoding, routing)."""
    count = 0

    def on_event(message: Any) -> None:
        nonlocal count
        count += 1

    protocol = AmiConnection(on_event)
    protocol.connection_made(_Transport())
    clock = _Clock()
    for piece in pieces:
        protocol.data_received(piece)
    rates = clock.rates(count)
    assert count == expected, (count, expected)
    return rates


async def fresh_db(url: str | None, folder: Path) -> Database:
    """An empty migrated database: a SQLite file in ``folder``, or on a PostgreSQL server one named after it."""
    if url is not None and make_url(url).get_backend_name() == "postgresql":
        target = await pg_database(url, f"crmtel_bench_ami_{folder.name}", fresh=True)
    else:
        target = url or f"sqlite+aiosqlite:///{folder / 'bench.db'}"
    await upgrade(target)
    return Database(target)


async def pipeline_rate(
    pieces: Sequence[bytes], url: str | None, folder: Path, calls: int
) -> tuple[float, float]:
    """Events per second: parse -> track -> store, in one task, flushing every 500 events."""
    db = await fresh_db(url, folder)
    try:
        service = CallService(db, CallsSettings(), PartyRepository(db))
        parser = Parser()
        count = 0
        since = 0
        clock = _Clock()
        for piece in pieces:
            for message in parser.feed(piece):
                await service.on_event("pbx1", message, event_time(message, utcnow()))
                count += 1
                since += 1
                if since >= 500:
                    since = 0
                    await service.flush()
        await service.flush()
        rates = clock.rates(count)
        stored = [s for s in await CallRepository(db).between() if s.record.ended_at is not None]
        assert len(stored) == calls, (len(stored), calls)
        return rates
    finally:
        await db.dispose()


async def tcp_rate(calls: int, url: str | None, folder: Path, expected: int) -> tuple[float, float]:
    """Events per second through TCP -> client -> service -> SQLite, the fake server in another process."""
    sub = folder.with_name(f"tcp{folder.name.removeprefix('pipeline')}")
    sub.mkdir(exist_ok=True)
    db = await fresh_db(url, sub)
    child = await asyncio.create_subprocess_exec(
        sys.executable, __file__, "--serve", str(calls), stdin=PIPE, stdout=PIPE
    )
    assert child.stdout is not None
    assert child.stdin is not None
    try:
        port = int((await child.stdout.readline()).split()[1])
        pbx = AmiSettings(name="pbx1", port=port, username="bench", secret=SecretStr("bench"))
        service = CallService(db, CallsSettings(), PartyRepository(db))
        client = AmiClient(pbx, service)
        clock = _Clock()
        async with asyncio.TaskGroup() as group:
            task = group.create_task(client.run())
            await child.stdout.readline()  # "finished": everything is written to the socket
            while True:
                if client.idle and client.received >= expected:
                    break
                await asyncio.sleep(0.001)
            await service.flush()
            rates = clock.rates(client.received)
            task.cancel()
        stored = [s for s in await CallRepository(db).between() if s.record.ended_at is not None]
        assert len(stored) == calls, (len(stored), calls)
        return rates
    finally:
        child.stdin.close()
        await child.wait()
        await db.dispose()


async def serve(calls: int) -> None:
    """The fake AMI server side of ``tcp_rate`` (run with ``--serve``), on another core when there is one."""
    if hasattr(os, "sched_setaffinity"):
        cores = sorted(os.sched_getaffinity(0))
        os.sched_setaffinity(0, {cores[-1]})
    stream, _ = build_stream(calls)
    server = FakeAmiServer(stream, username="bench", secret="bench")
    await server.start()
    print(f"port {server.port}", flush=True)
    await server.finished.wait()
    print("finished", flush=True)
    await asyncio.to_thread(sys.stdin.read)
    await server.close()


def _show(label: str, rates: tuple[float, float]) -> None:
    print(f"{label:<32}: {rates[0]:>9,.0f} events/s  [{rates[1]:>9,.0f}]")


async def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--calls", type=int, default=400)
    parser.add_argument("--database-url", default=None, help="default: a temporary SQLite file")
    parser.add_argument("--serve", type=int, default=None, help=argparse.SUPPRESS)
    smoke.add_smoke(parser, calls=10)
    args = smoke.parse(parser)
    logging.disable(logging.INFO)
    if args.serve is not None:
        await serve(args.serve)
        return
    samerun.report()  # not in the --serve child: its first line is the port
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})
    stream, wire = build_stream(args.calls)
    pieces = chunks(wire)
    print(f"stream: {args.calls} calls, {len(stream)} AMI events, {len(wire) / 1e6:.1f} MB, one CPU core")
    _show("panoramisk 1.4 bare parse", panoramisk_rate(pieces, len(stream)))
    _show("crmtel parse (Parser.feed)", crmtel_parse_rate(pieces, len(stream)))
    _show("crmtel on panoramisk protocol", await connection_rate(pieces, len(stream)))
    with tempfile.TemporaryDirectory() as tmp:
        # On PostgreSQL the folders name the databases: a smoke run's are its own.
        folder = Path(tmp) / smoke.name(args, "pipeline")
        folder.mkdir()
        _show(
            "pipeline parse->track->store",
            await pipeline_rate(pieces, args.database_url, folder, args.calls),
        )
        rates = await tcp_rate(args.calls, args.database_url, folder, len(stream) + 1)
        _show("full path: TCP + client + above", rates)


if __name__ == "__main__":
    asyncio.run(main())
