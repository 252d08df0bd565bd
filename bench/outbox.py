"""Benchmark of the connectors' outbox: staging effects in the call flush's transaction, then delivering them.

Stages ``--calls`` ended calls' effects (ringing, answered, ended: three per call) through the ``OutboxTap`` in
flushes of 50 calls, then lets one ``ConnectorService`` deliver them as signed Standard Webhooks to a loopback
receiver (``--concurrency`` in flight, in order per call) and reports events per second. The same-run baseline
is the same number of signed POSTs sent straight to the same receiver at the same concurrency without the outbox
(no claims, no delivery log): the difference is what at-least-once delivery costs.

    python bench/outbox.py                        # 2,000 calls, 6,000 events, SQLite
    python bench/outbox.py --database-url postgresql+asyncpg://postgres@127.0.0.1:5432/test
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import os
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import aiohttp
import samerun
import smoke
from aiohttp import web
from benchdb import pg_database, temp_sqlite
from pydantic import SecretStr

from crmtel.config import OutboxSettings, WebhookSettings
from crmtel.connectors.service import ConnectorService, OutboxTap
from crmtel.domain import CallAnswered, CallEnded, CallEvent, CallRecord, CallRinging, Direction, Outcome
from crmtel.store.db import Database, upgrade
from crmtel.store.outbox import OutboxRepository
from crmtel.webhooks.service import WebhookSink
from crmtel.webhooks.signing import sign

FIGURES = (
    r"^baseline \(same run\): panoramisk bare parser [\d,]+ events/s; fixed CPU loop",
    r"^staged: [\d,]+ events of [\d,]+ calls in [\d.]+ s \([\d,]+ events/s\)",
    r"^delivered through the outbox: [\d,]+ events in [\d.]+ s \([\d,]+ events/s\), concurrency \d+",
    r"^baseline \(signed POSTs, no outbox\): [\d,]+ in [\d.]+ s \([\d,]+ POSTs/s\)",
    r"^load average",
)
SECRET = "whsec_" + base64.b64encode(b"bench-outbox-secret-0123").decode()
T0 = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)


def events_of(i: int) -> list[CallEvent]:
    """One answered inbound call's live events and its end."""
    linkedid = f"1796000000.{i}"
    start = T0 + timedelta(seconds=i)
    ext = str(101 + i % 8)
    record = CallRecord(
        "pbx1",
        linkedid,
        Direction.INBOUND,
        f"+7916{i % 100000:07d}",
        None,
        "4951234567",
        start,
        rang=(ext,),
        answered_by=ext,
        outcome=Outcome.ANSWERED,
        answered_at=start + timedelta(seconds=3),
        ended_at=start + timedelta(seconds=60),
        ring_seconds=3.0,
        talk_seconds=57.0,
    )
    call = f"pbx1:{linkedid}"
    return [
        CallRinging(
            call,
            "pbx1",
            linkedid,
            ext,
            Direction.INBOUND,
            record.caller_number,
            None,
            "4951234567",
            None,
            start,
        ),
        CallAnswered(call, ext, start + timedelta(seconds=3)),
        CallEnded(call, record, start + timedelta(seconds=60)),
    ]


class Receiver:
    """Accepts every POST (204) and counts them."""

    def __init__(self) -> None:
        self.count = 0
        self.done = asyncio.Event()
        self.want = 0
        self.runner: web.AppRunner | None = None
        self.url = ""

    async def _post(self, request: web.Request) -> web.Response:
        await request.read()
        self.count += 1
        if self.count >= self.want:
            self.done.set()
        return web.Response(status=204)

    async def start(self) -> None:
        app = web.Application()
        app.router.add_post("/hook", self._post)
        self.runner = web.AppRunner(app, access_log=None)
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        await site.start()
        server: Any = site._server
        self.url = f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}/hook"

    def expect(self, count: int) -> None:
        self.count, self.want = 0, count
        self.done.clear()


async def baseline(url: str, count: int, concurrency: int) -> float:
    """Signed POSTs straight to the receiver, ``concurrency`` at a time."""
    gate = asyncio.Semaphore(concurrency)
    body = b'{"type":"call.ended","timestamp":"2026-12-01T09:00:00+00:00","data":{}}'
    async with aiohttp.ClientSession() as http:

        async def one(i: int) -> None:
            async with gate:
                stamp = int(time.time())
                headers = {
                    "webhook-id": f"b{i}",
                    "webhook-timestamp": str(stamp),
                    "webhook-signature": sign(SECRET, f"b{i}", stamp, body),
                    "content-type": "application/json",
                }
                async with http.post(url, data=body, headers=headers) as response:
                    await response.read()

        started = time.perf_counter()
        await asyncio.gather(*(one(i) for i in range(count)))
        return time.perf_counter() - started


async def run(args: argparse.Namespace, url: str) -> None:
    await upgrade(url)
    db = Database(url)
    receiver = Receiver()
    await receiver.start()
    try:
        sink = WebhookSink(
            WebhookSettings(
                url=receiver.url,
                secret=SecretStr(SECRET),
                name="bench",
                rate_per_second=1000.0,
            ),
            1,
        )
        tap = OutboxTap([sink])
        started = time.perf_counter()
        for first in range(0, args.calls, 50):
            events = [e for i in range(first, min(first + 50, args.calls)) for e in events_of(i)]
            async with db.session() as session:
                await tap.write_in(session, events)
        staged_s = time.perf_counter() - started
        total = args.calls * 3
        print(
            f"staged: {total:,} events of {args.calls:,} calls in {staged_s:.2f} s "
            f"({total / staged_s:,.0f} events/s)"
        )
        settings = OutboxSettings(poll_seconds=0.05, concurrency=args.concurrency, batch=args.batch)
        receiver.expect(total)
        started = time.perf_counter()
        async with ConnectorService([sink], OutboxRepository(db), settings, node="bench"):
            await asyncio.wait_for(receiver.done.wait(), timeout=args.timeout)
        delivered_s = time.perf_counter() - started
        print(
            f"delivered through the outbox: {total:,} events in {delivered_s:.2f} s "
            f"({total / delivered_s:,.0f} events/s), concurrency {args.concurrency}"
        )
        receiver.expect(total)
        base_s = await baseline(receiver.url, total, args.concurrency)
        print(
            f"baseline (signed POSTs, no outbox): {total:,} in {base_s:.2f} s ({total / base_s:,.0f} POSTs/s)"
        )
        print(f"load average {os.getloadavg()[0]:.2f} on {os.cpu_count()} CPUs")
    finally:
        if receiver.runner is not None:
            await receiver.runner.cleanup()
        await db.dispose()


async def main_async(args: argparse.Namespace) -> int:
    if args.database_url:
        url = await pg_database(
            args.database_url,
            f"crmtel_bench_outbox{'_smoke_' + str(os.getpid()) if args.smoke else ''}",
            fresh=True,
        )
        await run(args, url)
        return 0
    async with temp_sqlite("outbox", args.smoke) as url:
        await run(args, url)
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--batch", type=int, default=50)
    parser.add_argument("--timeout", type=float, default=600.0)
    parser.add_argument(
        "--database-url", help="a PostgreSQL server URL (a bench database is made next to it)"
    )
    smoke.add_smoke(parser, calls=60)
    return asyncio.run(main_async(smoke.parse(parser)))


if __name__ == "__main__":
    samerun.report()
    raise SystemExit(main())
