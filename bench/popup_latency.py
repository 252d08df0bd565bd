"""Popup latency: AMI frame leaving the fake PBX -> crmtel pipeline -> websocket frame arriving at a browser.

Run: ``python bench/popup_latency.py [--managers 500] [--calls 200] [--spread 2.0] [--database-url URL]
[--browsers 2000] [--commit-delay-ms 200]``.

``--browsers`` opens that many websockets (several tabs per manager when above ``--managers``);
``--commit-delay-ms`` slows every commit of the call service's writes by that much (a store wrapper: a slow
disk or a locked database), which must not show in the popups: the service writes beside tracking.

Three processes, as in production: the fake AMI server (replaying ``direct-answered`` rewritten into
``--calls`` distinct calls from distinct unknown numbers, each ringing its own manager's extension, all
overlapping in time, at real speed), crmtel (the real AMI client, call service, notifier, hub and web app
on a fresh SQLite database) and ``--managers`` logged-in websocket clients over loopback. The AMI frame
that causes each live event is found by running the pure tracker over the same stream; latency is the
client's receive time minus the time that frame was written to the AMI socket (CLOCK_MONOTONIC, shared by
the processes). Prints p50/p90/p99/max per message type; target p99 <= 25 ms for ``call.ringing``.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing as mp
import os
import re
import statistics
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import aiohttp
import popup_cluster
import samerun
import smoke
from aiohttp import web
from benchdb import pg_database
from pydantic import SecretStr
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncSession
from yarl import URL

from crmtel.ami import events as ev
from crmtel.ami.client import AmiClient
from crmtel.ami.protocol import Message
from crmtel.calls import tracker
from crmtel.calls.service import CallService
from crmtel.config import AmiSettings, CallsSettings, WebSettings
from crmtel.domain import CallAnswered, CallEnded, CallEvent, CallRinging
from crmtel.fakepbx.server import FakeAmiServer, Recorded, load_ami, merge_streams
from crmtel.memory import collect_less_often, freeze_startup_objects
from crmtel.push.cardcache import CachedCards, CardCache
from crmtel.push.cards import StoreCards
from crmtel.push.context import STATE
from crmtel.push.hub import Hub
from crmtel.push.notifier import ManagerNames, Notifier
from crmtel.push.web import create_app
from crmtel.store.db import Database, upgrade
from crmtel.store.managers import ManagerRepository
from crmtel.store.parties import PartyRepository

TRACES = Path(__file__).resolve().parents[1] / "crmtel" / "fakepbx" / "data"
_IDS = {"uniqueid", "linkedid", "destuniqueid", "destlinkedid"}
_EXT = re.compile(r"(?<![0-9.])101(?![0-9])")
# With --cluster the same lines, plus "failover after kill -9 of the leader: … s" (tests/cluster checks it).
FIGURES = (
    r"^baseline \(same run\): panoramisk bare parser [\d,]+ events/s; fixed CPU loop",
    r"^  call\.ringing +n= *\d+ +p50= *[\d.]+ ms .*p99= *[\d.]+ ms",
    r"^  call\.ended +n= *\d+ +p50=",
    r"^call\.ringing p99 [\d.]+ ms",
    r"^summary: popup_latency .*: call\.ringing p50 [\d.]+ ms p99 [\d.]+ ms .*; baseline parser [\d,]+ events/s.*load",
)
MESSAGE_OF = {CallRinging: "call.ringing", CallAnswered: "call.answered", CallEnded: "call.ended"}


def synth_calls(count: int, spread: float, callers: int = 0) -> list[Recorded]:
    """``count`` copies of direct-answered: copy k rings extension 1000+k from caller +7916<k> (with ``callers``,
    +7916<k mod callers>: numbers that ring again), ids made unique."""
    base = [r for r in load_ami(TRACES / "direct-answered.ami") if isinstance(r, Recorded)]
    streams: list[tuple[float, list[Recorded]]] = []
    for k in range(count):
        ext, suffix, caller = str(1000 + k), f"{k:04d}", f"7916{(k % callers if callers else k):07d}"
        copy: list[Recorded] = []
        for item in base:
            headers: list[tuple[str, str]] = []
            for key, value in item.headers:
                low = key.lower()
                if low in _IDS and value:
                    value = value + suffix
                else:
                    value = _EXT.sub(ext, value.replace("79161110001", caller))
                    if low.endswith("channel") and value:
                        value = value + suffix
                headers.append((key, value))
            copy.append(Recorded(item.t, tuple(headers)))
        streams.append((spread * k / max(count, 1), copy))
    return [r for r in merge_streams(streams) if isinstance(r, Recorded)]


def triggers(stream: list[Recorded]) -> dict[tuple[str, str, str], int]:
    """(message type, call id, extension) -> index of the AMI frame whose event produced it (pure tracker)."""
    state = tracker.new_state("pbx1")
    out: dict[tuple[str, str, str], int] = {}
    at = datetime.now(UTC)
    for i, item in enumerate(stream):
        event = ev.parse_event(Message(item.headers), at)
        if event is None:
            continue
        state, effects = tracker.reduce(state, event)
        for effect in effects:
            kind = MESSAGE_OF.get(type(effect))
            if kind is None:
                continue
            if isinstance(effect, CallEnded):
                exts = [
                    *effect.record.rang,
                    *([effect.record.answered_by] if effect.record.answered_by else []),
                ]
            else:
                assert isinstance(effect, CallRinging | CallAnswered)
                exts = [effect.extension]
            for ext in exts:
                out.setdefault((kind, effect.call_id, ext), i)
    return out


# -- the fake PBX process ------------------------------------------------------------------------------


def pbx_process(stream: list[Recorded], pipe: Connection, hold: bool = False) -> None:
    """Serve the stream (``hold``: only once told "go"); report the port, then when each frame was written."""
    asyncio.run(_pbx(stream, pipe, hold))


async def _pbx(stream: list[Recorded], pipe: Connection, hold: bool) -> None:
    server = FakeAmiServer(stream, speed=1.0, pause_after=0 if hold else None)
    sent: dict[int, float] = {}

    def timed(position: int, item: object) -> None:
        if isinstance(item, Recorded):
            sent[position] = time.perf_counter()

    server.on_sent = timed
    await server.start()
    pipe.send(server.port)
    if hold:
        await asyncio.to_thread(pipe.recv)  # "go"
        server.resume()
    await asyncio.to_thread(pipe.recv)  # "stop"
    await server.close()
    pipe.send(sent)


# -- the browsers process ------------------------------------------------------------------------------


def browsers_process(targets: list[tuple[str, str]], pipe: Connection) -> None:
    """One websocket per (web app URL, session token); report when all are connected, then every arrival."""
    asyncio.run(_browsers(targets, pipe))


async def _browsers(targets: list[tuple[str, str]], pipe: Connection) -> None:
    received: list[tuple[float, str, str, str, bool]] = []
    ready = 0
    # Handshakes the server refused (HTTP status each): reported, never a hang of the whole run.
    refused: list[int] = []
    all_ready = asyncio.Event()
    stop = asyncio.Event()

    def settled() -> None:
        if ready + len(refused) == len(targets):
            all_ready.set()

    async def one(url: str, token: str) -> None:
        nonlocal ready
        jar = aiohttp.CookieJar(unsafe=True)
        jar.update_cookies({"crmtel_session": token}, response_url=URL(url))
        async with aiohttp.ClientSession(cookie_jar=jar) as session:
            try:
                ws = await session.ws_connect(url + "ws")
            except aiohttp.WSServerHandshakeError as err:
                refused.append(err.status)
                settled()
                return
            async with ws:
                await ws.receive()  # hello
                ready += 1
                settled()
                await listen(ws)

    async def listen(ws: aiohttp.ClientWebSocketResponse) -> None:
        while not stop.is_set():
            msg = await ws.receive()
            if msg.type is not aiohttp.WSMsgType.TEXT:
                return
            now = time.perf_counter()
            data = msg.json()
            received.append(
                (
                    now,
                    data["type"],
                    data.get("call_id", ""),
                    data.get("extension", ""),
                    bool(data.get("card")),
                )
            )

    async with asyncio.TaskGroup() as group:
        tasks = [group.create_task(one(u, t)) for u, t in targets]
        await all_ready.wait()
        pipe.send(("ready", refused))
        await asyncio.to_thread(pipe.recv)  # "stop"
        stop.set()
        for task in tasks:
            task.cancel()
    pipe.send(received)


# -- crmtel (this process) -----------------------------------------------------------------------------


class SlowCommits(Database):
    """A store whose every transaction takes ``delay`` seconds longer before it commits."""

    def __init__(self, url: str, delay: float) -> None:
        super().__init__(url)
        self.delay = delay

    @asynccontextmanager
    async def session(self) -> AsyncIterator[AsyncSession]:
        """A session whose commit waits ``delay`` first."""
        async with super().session() as session:
            yield session
            await asyncio.sleep(self.delay)


class TimedNotifier(Notifier):
    """The real notifier, noting when the AMI service handed it each live event."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.published: dict[tuple[str, str, str], float] = {}

    async def publish(self, event: CallEvent) -> None:
        now = time.perf_counter()
        kind = MESSAGE_OF.get(type(event))
        if kind is not None:
            for ext in _extensions(event):
                self.published.setdefault((kind, event.call_id, ext), now)
        await super().publish(event)


def _extensions(event: CallEvent) -> list[str]:
    if isinstance(event, CallEnded):
        return [*event.record.rang, *([event.record.answered_by] if event.record.answered_by else [])]
    if isinstance(event, CallRinging | CallAnswered):
        return [event.extension]
    return []


def percentiles(values: list[float]) -> str:
    """p50/p90/p99/max in milliseconds."""
    if not values:
        return "no samples"
    ms = sorted(v * 1000 for v in values)
    q = statistics.quantiles(ms, n=100, method="inclusive") if len(ms) > 1 else [ms[0]] * 99
    return (
        f"n={len(ms):4d}  p50={q[49]:6.2f} ms  p90={q[89]:6.2f} ms  p99={q[98]:6.2f} ms  max={ms[-1]:6.2f} ms"
    )


async def run(args: argparse.Namespace) -> int:
    stream = synth_calls(args.calls, args.spread, args.callers)
    expected = triggers(stream)
    ringing_expected = sum(1 for k in expected if k[0] == "call.ringing")
    print(
        f"stream: {len(stream)} AMI frames, {args.calls} calls, {ringing_expected} ringing events (pure tracker)"
    )

    tmp = tempfile.TemporaryDirectory(prefix="crmtel-bench-")
    url = args.database_url or f"sqlite+aiosqlite:///{tmp.name}/bench.db"
    if make_url(url).get_backend_name() == "postgresql":
        url = await pg_database(url, smoke.name(args, "crmtel_bench_popup"), fresh=True)
    await upgrade(url)
    db = Database(url)
    repo = ManagerRepository(db)
    managers = [
        await repo.save(login=f"m{i}", name=f"Manager {i}", extensions=(str(1000 + i),))
        for i in range(args.managers)
    ]

    hub = Hub(queue_size=256)
    # Cards as crmtel.app serves them: from memory, forgotten by every commit of either database object.
    card_cache = CardCache()
    notifier = TimedNotifier(hub, CachedCards(StoreCards(db), card_cache), ManagerNames(db))
    # The call service's writes go through the slowed store (--commit-delay-ms); cards are read as usual.
    writes: Database = SlowCommits(url, args.commit_delay_ms / 1000) if args.commit_delay_ms else db
    db.on_change(card_cache.forget)
    if writes is not db:
        writes.on_change(card_cache.forget)
    service = CallService(
        writes, CallsSettings(create_leads_for_unknown=False), PartyRepository(db), notifier
    )
    app = create_app(WebSettings(port=0), db=db, hub=hub)
    # Sessions are opened directly: 500 argon2 logins would only measure argon2. Beyond one browser per
    # manager (--browsers), managers get more tabs, round robin.
    browsers_wanted = max(args.browsers or len(managers), 1)
    tokens = [
        await app[STATE].sessions.create(managers[i % len(managers)].id) for i in range(browsers_wanted)
    ]
    if args.commit_delay_ms:
        print(f"every commit of the call service's writes slowed by {args.commit_delay_ms} ms")
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]

    ctx = mp.get_context("spawn")
    b_main, b_child = ctx.Pipe()
    web_url = f"http://127.0.0.1:{port}/"
    browsers = ctx.Process(target=browsers_process, args=([(web_url, t) for t in tokens], b_child))
    browsers.start()
    refused = popup_cluster.expect_ready(await asyncio.to_thread(b_main.recv))
    print(f"{hub.connections} websocket clients connected")

    freeze_startup_objects()  # as crmtel.app.start does once everything is built
    collect_less_often()
    p_main, p_child = ctx.Pipe()
    pbx = ctx.Process(target=pbx_process, args=(stream, p_child))
    pbx.start()
    ami_port = await asyncio.to_thread(p_main.recv)
    settings = AmiSettings(
        name="pbx1", port=ami_port, username="crmtel", secret=SecretStr("secret"), auth="md5"
    )
    client = AmiClient(settings, service)
    started = time.perf_counter()
    # As crmtel.app composes it: the service writes beside tracking.
    writer = asyncio.create_task(service.write_beside(), name="bench-calls-writer")
    task = asyncio.create_task(client.run(), name="bench-ami-client")
    try:
        deadline = started + args.spread + 60
        last, quiet_since, peak = -1, time.perf_counter(), 0
        while time.perf_counter() < deadline:
            await asyncio.sleep(0.05)
            peak = max(peak, len(hub.live))
            if client.handled != last:
                last, quiet_since = client.handled, time.perf_counter()
            elif last > 0 and len(hub.live) == 0 and time.perf_counter() - quiet_since > 1.0:
                break
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await service.write_all(10.0)
        writer.cancel()
        await asyncio.gather(writer, return_exceptions=True)
        await service.aclose()
    print(
        f"pipeline handled {client.handled} AMI messages in {time.perf_counter() - started:.1f} s;"
        f" at most {peak} calls live at once"
    )

    p_main.send("stop")
    sent: dict[int, float] = await asyncio.to_thread(p_main.recv)
    b_main.send("stop")
    received: list[tuple[float, str, str, str, bool]] = await asyncio.to_thread(b_main.recv)
    pbx.join()
    browsers.join()
    await runner.cleanup()
    if writes is not db:
        await writes.dispose()
    await db.dispose()
    tmp.cleanup()

    by_type, from_publish, unmatched = wire_latencies(received, sent, expected, notifier.published)
    print(f"messages received: {len(received)} ({unmatched} without a known trigger frame)")
    print(f"card cache: {card_cache.hits} cards from memory, {card_cache.misses} read from the store")
    print("('card' = when the CRM card reached the page: in call.ringing, or as call.card just after it)")
    print("AMI frame written by the fake PBX -> websocket frame received (whole pipeline):")
    for kind in ("call.ringing", "card", "call.answered", "call.ended"):
        print(f"  {kind:14s} {percentiles(by_type.get(kind, []))}")
    print("notifier.publish called by the AMI service -> websocket frame received (push side only):")
    for kind in ("call.ringing", "card", "call.answered", "call.ended"):
        print(f"  {kind:14s} {percentiles(from_publish.get(kind, []))}")
    # Every tab of the rung manager gets the popup (managers are given tabs round robin).
    tabs = [len(range(i, browsers_wanted, len(managers))) for i in range(len(managers))]
    popups = sum(tabs[int(ext) - 1000] for kind, _call, ext in expected if kind == "call.ringing")
    return max(verdict(args, by_type.get("call.ringing", []), popups), 1 if refused else 0)


Received = list[tuple[float, str, str, str, bool]]


def wire_latencies(
    received: Received,
    sent: dict[int, float],
    expected: dict[tuple[str, str, str], int],
    published: dict[tuple[str, str, str], float],
) -> tuple[dict[str, list[float]], dict[str, list[float]], int]:
    """Per message type: PBX write -> browser arrival, and notifier publish -> arrival; and the unmatched count."""
    by_type: dict[str, list[float]] = {}
    from_publish: dict[str, list[float]] = {}
    unmatched = 0
    card_seen: set[tuple[str, str]] = set()
    for at, kind, call_id, ext, has_card in received:
        if has_card and (call_id, ext) not in card_seen:
            # When the card arrived: inside call.ringing, or as call.card after a popup without it.
            card_seen.add((call_id, ext))
            i = expected.get(("call.ringing", call_id, ext))
            if i is not None and i in sent:
                by_type.setdefault("card", []).append(at - sent[i])
            at_publish = published.get(("call.ringing", call_id, ext))
            if at_publish is not None:
                from_publish.setdefault("card", []).append(at - at_publish)
        if kind == "call.card":
            continue
        at_publish = published.get((kind, call_id, ext))
        if at_publish is not None:
            from_publish.setdefault(kind, []).append(at - at_publish)
        i = expected.get((kind, call_id, ext))
        if i is None or i not in sent:
            unmatched += 1
            continue
        by_type.setdefault(kind, []).append(at - sent[i])
    return by_type, from_publish, unmatched


def verdict(args: argparse.Namespace, ringing: list[float], ringing_expected: int) -> int:
    """Every popup arrived, and its p99 against the target (25 ms; 50 ms across a cluster); one summary line."""
    target = 50.0 if args.cluster else 25.0
    ms = sorted(v * 1000 for v in ringing)
    p50 = statistics.median(ms) if ms else float("nan")
    p99 = statistics.quantiles(ms, n=100, method="inclusive")[98] if len(ms) > 1 else (ms[0] if ms else 0.0)
    arrived = len(ringing) == ringing_expected
    if not arrived:
        print(f"WARNING: {len(ringing)} of {ringing_expected} ringing popups arrived")
    else:
        print(
            f"call.ringing p99 {p99:.2f} ms: {'OK' if p99 <= target else 'ABOVE'} the {target:.0f} ms target"
        )
    mode = " ".join(
        part
        for part in (
            "--cluster" if args.cluster else "",
            f"--commit-delay-ms {args.commit_delay_ms:g}" if args.commit_delay_ms else "",
            f"--browsers {args.browsers}" if args.browsers else "",
            f"--callers {args.callers}" if args.callers else "",
            f"--managers {args.managers} --calls {args.calls}",
        )
        if part
    )
    samerun.summary(
        f"popup_latency {mode}",
        f"call.ringing p50 {p50:.1f} ms p99 {p99:.1f} ms ({len(ringing)}/{ringing_expected} popups)",
        args.baseline,
        f"p99 <= {target:.0f} ms: {'met' if arrived and p99 <= target else 'MISSED'}",
    )
    if not arrived:
        return 1
    return smoke.verdict(args, missed=p99 > target)


async def run_cluster_mode(args: argparse.Namespace) -> int:
    """Three crmtel nodes on PostgreSQL and Redis: popups across nodes, then the failover time."""
    stream = synth_calls(args.calls, args.spread, args.callers)
    expected = triggers(stream)
    ringing_expected = sum(1 for k in expected if k[0] == "call.ringing")
    print(
        f"stream: {len(stream)} AMI frames, {args.calls} calls, {ringing_expected} ringing events (pure tracker)"
    )
    base = args.database_url or os.environ.get(
        "CRMTEL_BENCH_PG_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/test"
    )
    url = await pg_database(base, smoke.name(args, "crmtel_bench_popup_cluster"), fresh=True)
    sent, received, lease_s, pbx_s, refused = await popup_cluster.run_cluster(
        args, stream, url, pbx_target=pbx_process, browsers_target=browsers_process
    )
    by_type, _, unmatched = wire_latencies(received, sent, expected, {})
    print(f"messages received: {len(received)} ({unmatched} without a known trigger frame)")
    print(
        "AMI frame written by the fake PBX -> websocket frame received on any node (leader -> Redis -> node):"
    )
    for kind in ("call.ringing", "card", "call.answered", "call.ended"):
        print(f"  {kind:14s} {percentiles(by_type.get(kind, []))}")
    print(
        f"failover after kill -9 of the leader: lease taken in {lease_s:.2f} s, PBX followed again in {pbx_s:.2f} s"
    )
    return max(verdict(args, by_type.get("call.ringing", []), ringing_expected), 1 if refused else 0)


def main(baseline: samerun.Baseline) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--managers", type=int, default=500)
    parser.add_argument("--calls", type=int, default=200)
    parser.add_argument(
        "--spread",
        type=float,
        default=4.0,
        help="seconds over which the calls start (each lasts 5.6 s, so with 4 s all of them overlap)",
    )
    parser.add_argument(
        "--database-url",
        default=None,
        help="default: a temporary SQLite file; a PostgreSQL server gets a crmtel_bench_popup database",
    )
    parser.add_argument(
        "--cluster",
        action="store_true",
        help="three crmtel nodes on PostgreSQL (--database-url, default local) and Redis; adds the failover time",
    )
    parser.add_argument(
        "--browsers",
        type=int,
        default=0,
        help="websocket clients (default: one per manager; more: several tabs per manager, e.g. 2000)",
    )
    parser.add_argument(
        "--callers",
        type=int,
        default=0,
        help="distinct caller numbers (default: one per call); fewer: numbers ring again (the card from memory)",
    )
    parser.add_argument(
        "--commit-delay-ms",
        type=float,
        default=0.0,
        help="slow every commit of the call service's writes by this many ms (a slow or locked store)",
    )
    smoke.add_smoke(parser, managers=10, calls=5, spread=0.5)
    args = smoke.parse(parser)
    args.baseline = baseline
    if args.calls > args.managers:
        parser.error("every call rings its own manager: --calls must not exceed --managers")
    return asyncio.run(run_cluster_mode(args) if args.cluster else run(args))


if __name__ == "__main__":
    raise SystemExit(main(samerun.report()))
