"""Benchmark of routing with a Bitrix24 lookup: what ``telephony.externalCall.searchCrmEntities`` adds to a route.

crmtel's own lookup finds nobody for the callers, so the portal is asked for the responsible manager (the
loopback fake answers after ``--latency`` seconds, 0.4 s by default, like a real portal far away). Figures:
routes with a cache miss (a new caller each time), with a cache hit (callers asked before), and the same-run
baseline: the same routes without Bitrix24 (crmtel's lookup alone).

    python bench/bitrix24_route.py                  # 30 misses, 2,000 hits, 2,000 baseline routes
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import smoke
from benchdb import temp_sqlite
from pydantic import SecretStr

from crmtel.bitrix24.client import Bitrix24Client
from crmtel.bitrix24.fake import FakeBitrix24, User
from crmtel.bitrix24.routing import Bitrix24Responsible
from crmtel.bitrix24.service import Users
from crmtel.bitrix24.tokens import Tokens, TokenStore
from crmtel.config import Bitrix24Settings, LogSettings, RoutingSettings
from crmtel.logging import configure
from crmtel.routing.service import RoutingService
from crmtel.store.db import Database, upgrade
from crmtel.store.managers import ManagerRepository
from crmtel.store.outbox import SealedTokens
from crmtel.store.parties import PartyRepository

FIGURES = (
    r"^baseline \(crmtel's lookup alone\): [\d,]+ routes, p50 [\d.]+ ms, p99 [\d.]+ ms",
    r"^Bitrix24 cache miss \(fake latency [\d.]+ s\): [\d,]+ routes, p50 [\d.]+ ms, p99 [\d.]+ ms",
    r"^Bitrix24 cache hit: [\d,]+ routes, p50 [\d.]+ ms, p99 [\d.]+ ms",
    r"^load average",
)


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def _line(label: str, samples: list[float]) -> str:
    ms = [s * 1000 for s in samples]
    return f"{label}: {len(ms):,} routes, p50 {statistics.median(ms):.2f} ms, p99 {_pct(ms, 0.99):.2f} ms"


async def _timed(router: RoutingService, numbers: list[str]) -> list[float]:
    out = []
    for number in numbers:
        started = time.perf_counter()
        decision = await router.route(number, "4951234567")
        out.append(time.perf_counter() - started)
        assert decision is not None, "a route failed open during the bench"
    return out


async def run(args: argparse.Namespace, url: str) -> None:
    configure(LogSettings(level="warning"))
    await upgrade(url)
    db = Database(url)
    fake = FakeBitrix24(client_id="local.bench", client_secret="bench-secret", users=[User(12, "B", "102")])
    await fake.start()
    settings = Bitrix24Settings(
        portal=fake.url,
        client_id="local.bench",
        client_secret=SecretStr("bench-secret"),
        oauth_server=fake.url,
    )
    tokens = TokenStore(SealedTokens(db), "bench-secret")
    issued = fake.issue()
    await tokens.save(Tokens(issued["access_token"], issued["refresh_token"], time.time() + 3600, "app"))
    client = Bitrix24Client(settings, tokens)
    try:
        await ManagerRepository(db).save(login="boris", name="Boris", extensions=("102",))
        callers = [f"+7916{i:07d}" for i in range(max(args.misses, args.hits))]
        for number in callers:
            fake.entities[number.lstrip("+")] = ("CONTACT", 1, 12)
        routing = RoutingSettings(deadline_ms=int(args.latency * 1000) + 2000)
        baseline = RoutingService(PartyRepository(db), routing)
        base = await _timed(baseline, [callers[i % len(callers)] for i in range(args.hits)])
        await baseline.close()
        lookup = Bitrix24Responsible(PartyRepository(db), client, Users(client), db)
        router = RoutingService(lookup, routing)
        fake.latency = args.latency
        miss = await _timed(router, callers[: args.misses])
        fake.latency = 0.0
        hit = await _timed(router, [callers[i % args.misses] for i in range(args.hits)])
        await router.close()
        print(_line("baseline (crmtel's lookup alone)", base))
        print(_line(f"Bitrix24 cache miss (fake latency {args.latency} s)", miss))
        print(_line("Bitrix24 cache hit", hit))
        print(f"load average {os.getloadavg()[0]:.2f} on {os.cpu_count()} CPUs")
    finally:
        await client.aclose()
        await fake.stop()
        await db.dispose()


async def main_async(args: argparse.Namespace) -> int:
    async with temp_sqlite("b24route", args.smoke) as url:
        await run(args, url)
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--misses", type=int, default=30)
    parser.add_argument("--hits", type=int, default=2000)
    parser.add_argument("--latency", type=float, default=0.4)
    smoke.add_smoke(parser, misses=3, hits=50)
    return asyncio.run(main_async(smoke.parse(parser)))


if __name__ == "__main__":
    raise SystemExit(main())
