"""Events per second through the whole AMI pipeline, next to panoramisk's bare parser on the same bytes.

    python bench/ami_throughput.py [--calls 400] [--database-url sqlite+aiosqlite:////tmp/x.db]

The stream is the nine recorded Asterisk 22 calls, rewritten into ``--calls`` distinct calls (about 110
AMI events each, VarSet/Newexten/RTCP noise included), encoded as Asterisk sends them. Figures, all on
one core in one process:

- panoramisk parse: ``panoramisk.ami_protocol.AMIProtocol.data_received`` fed 64 KiB chunks (its decode,
  split and ``Message.from_line``; events dispatched to a no-op).
- crmtel parse: ``crmtel.ami.protocol.Parser.feed`` on the same chunks.
- pipeline in-process: parse -> typed event -> tracker -> records/leads/tasks on SQLite, flushed every
  500 events (as the client does when its queue is busy) and at the end.
- pipeline over TCP: the same, but through the fake AMI server and the real client (login, watchdog,
  queue, consumer task) on loopback.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from panoramisk.ami_protocol import AMIProtocol

from crmtel.ami.commands import replay_stream
from crmtel.ami.fakeserver import Recorded, _with_timestamp
from crmtel.ami.protocol import Parser, encode_message
from crmtel.ami.service import CallService
from crmtel.ami.simulator import load_patterns, rewrite_many
from crmtel.config import CallsSettings, Settings
from crmtel.store.calls import CallRepository
from crmtel.store.db import Database, upgrade
from crmtel.store.parties import PartyRepository

CHUNK = 64 * 1024
EPOCH = 1_800_000_000.0


def build_stream(calls: int) -> tuple[list[Recorded], bytes]:
    """Distinct calls from the recorded patterns, and their bytes as Asterisk would send them."""
    stream = rewrite_many(load_patterns(), calls)
    wire = b"".join(encode_message(_with_timestamp(item.headers, f"{EPOCH + item.t:.6f}")) for item in stream)
    return stream, b"Asterisk Call Manager/11.0.0\r\n" + wire


def chunks(data: bytes) -> list[bytes]:
    return [data[i : i + CHUNK] for i in range(0, len(data), CHUNK)]


class _Transport:
    def write(self, data: bytes) -> None:
        pass

    def close(self) -> None:
        pass


class _Factory:
    def __init__(self) -> None:
        self.count = 0
        self.save_stream = None

    def dispatch(self, message: Any) -> None:
        self.count += 1


def panoramisk_rate(pieces: Sequence[bytes], expected: int) -> float:
    """Messages per second through panoramisk's own protocol parser."""
    protocol = AMIProtocol()
    protocol.connection_made(_Transport())
    factory = _Factory()
    protocol.factory = factory
    protocol.encoding = "utf8"
    start = time.perf_counter()
    for piece in pieces:
        protocol.data_received(piece)
    elapsed = time.perf_counter() - start
    assert factory.count >= expected - 1, (factory.count, expected)
    return factory.count / elapsed


def crmtel_parse_rate(pieces: Sequence[bytes], expected: int) -> float:
    """Messages per second through crmtel's parser."""
    parser = Parser()
    count = 0
    start = time.perf_counter()
    for piece in pieces:
        count += len(parser.feed(piece))
    elapsed = time.perf_counter() - start
    assert count == expected, (count, expected)
    return count / elapsed


async def fresh_db(url: str | None, folder: Path) -> Database:
    target = url or f"sqlite+aiosqlite:///{folder / 'bench.db'}"
    await upgrade(target)
    return Database(target)


async def pipeline_rate(
    pieces: Sequence[bytes], url: str | None, folder: Path, calls: int
) -> tuple[float, int]:
    """Events per second: parse -> track -> store, in one task, flushing every 500 events."""
    db = await fresh_db(url, folder)
    try:
        service = CallService(db, CallsSettings(), PartyRepository(db))
        parser = Parser()
        count = 0
        since = 0
        start = time.perf_counter()
        for piece in pieces:
            for message in parser.feed(piece):
                await service.on_event("pbx1", message, _at(message))
                count += 1
                since += 1
                if since >= 500:
                    since = 0
                    await service.flush()
        await service.flush()
        elapsed = time.perf_counter() - start
        stored = [s for s in await CallRepository(db).between() if s.record.ended_at is not None]
        assert len(stored) == calls, (len(stored), calls)
        return count / elapsed, len(stored)
    finally:
        await db.dispose()


def _at(message: Any) -> Any:
    from crmtel.ami.client import event_time, utcnow

    return event_time(message, utcnow())


async def tcp_rate(stream: list[Recorded], url: str | None, folder: Path, calls: int) -> float:
    """Events per second through fake server -> TCP -> client -> service -> SQLite."""
    sub = folder / "tcp"
    sub.mkdir(exist_ok=True)
    db = await fresh_db(url, sub)
    try:
        settings = Settings(database_url=db.url)
        start = time.perf_counter()
        await replay_stream(settings, db, stream, settle=0.05)
        elapsed = time.perf_counter() - start - 0.1  # minus the two quiet checks that end the replay
        stored = [s for s in await CallRepository(db).between() if s.record.ended_at is not None]
        assert len(stored) == calls, (len(stored), calls)
        return len(stream) / elapsed
    finally:
        await db.dispose()


async def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--calls", type=int, default=400)
    parser.add_argument("--database-url", default=None, help="default: a temporary SQLite file")
    args = parser.parse_args()
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})
    stream, wire = build_stream(args.calls)
    pieces = chunks(wire)
    print(f"stream: {args.calls} calls, {len(stream)} AMI events, {len(wire) / 1e6:.1f} MB, one CPU core")
    print(f"panoramisk 1.4 bare parse      : {panoramisk_rate(pieces, len(stream)):>10,.0f} events/s")
    print(f"crmtel parse (Parser.feed)     : {crmtel_parse_rate(pieces, len(stream)):>10,.0f} events/s")
    with tempfile.TemporaryDirectory() as tmp:
        rate, _ = await pipeline_rate(pieces, args.database_url, Path(tmp), args.calls)
        print(f"pipeline parse->track->SQLite  : {rate:>10,.0f} events/s")
        if args.database_url is None:
            print(
                f"pipeline over TCP (full path)  : {await tcp_rate(stream, None, Path(tmp), args.calls):>10,.0f} events/s"
            )


if __name__ == "__main__":
    asyncio.run(main())
