"""Benchmark of the outbox's rate limit shared over Redis: what one turn in the cluster's bucket costs, against
the same turn in a node's own bucket (the same-run baseline), and that two nodes together keep the rate.

Part one: ``--turns`` acquisitions one after another at a rate far above what they can reach (so none waits):
the time per turn is the bucket's own cost — a Lua script on Redis per request when shared. Part two: two
"nodes" (two limiters on one Redis key) each take turns as fast as they are given, at ``--rate`` per second
for ``--seconds``: their sum per second, and the busiest second, by their own clock.

    python bench/rate_shared.py                  # 2,000 turns; two nodes at 7/s for 10 s
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import samerun
import smoke
from redis.asyncio import Redis

from crmtel.connectors.rate import Limiter, RateLimit, SharedRateLimit

FIGURES = (
    r"^baseline \(same run\): panoramisk bare parser [\d,]+ events/s; fixed CPU loop",
    r"^local bucket \(baseline\): [\d,]+ turns, [\d.]+ µs a turn",
    r"^shared bucket \(Redis\): [\d,]+ turns, [\d.]+ µs a turn",
    r"^two nodes sharing [\d.]+/s for [\d.]+ s: [\d,]+ turns \(a: [\d,]+, b: [\d,]+\), [\d.]+/s, busiest second [\d,]+",
)


async def _cost(limit: Limiter, turns: int) -> float:
    started = time.perf_counter()
    for _ in range(turns):
        await limit.acquire()
    return (time.perf_counter() - started) / turns * 1e6


async def _node(limit: Limiter, until: float, taken: list[float]) -> int:
    count = 0
    while True:
        await limit.acquire()
        now = time.monotonic()
        if now >= until:
            return count
        taken.append(now)
        count += 1


def _busiest(times: list[float]) -> int:
    ordered = sorted(times)
    best, start = 0, 0
    for end, at in enumerate(ordered):
        while at - ordered[start] >= 1.0:
            start += 1
        best = max(best, end - start + 1)
    return best


async def run(args: argparse.Namespace) -> None:
    redis = Redis.from_url(args.redis_url)
    key = f"crmtel:bench:{uuid.uuid4().hex}"
    try:
        local = await _cost(RateLimit(1e6), args.turns)
        shared = await _cost(SharedRateLimit(redis, key + ":cost", 1e6), args.turns)
        print(f"local bucket (baseline): {args.turns:,} turns, {local:.1f} µs a turn")
        print(f"shared bucket (Redis): {args.turns:,} turns, {shared:.1f} µs a turn")
        taken: list[float] = []
        until = time.monotonic() + args.seconds
        a, b = await asyncio.gather(
            _node(SharedRateLimit(redis, key + ":pair", args.rate), until, taken),
            _node(SharedRateLimit(redis, key + ":pair", args.rate), until, taken),
        )
        print(
            f"two nodes sharing {args.rate}/s for {args.seconds} s: {a + b:,} turns (a: {a:,}, b: {b:,}), "
            f"{(a + b) / args.seconds:.2f}/s, busiest second {_busiest(taken)}"
        )
    finally:
        await redis.delete(key + ":cost", key + ":pair")
        await redis.aclose()


async def main_async(args: argparse.Namespace) -> int:
    samerun.report()
    await run(args)
    print(f"load average {os.getloadavg()[0]:.2f} on {os.cpu_count()} CPUs")
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--turns", type=int, default=2000)
    parser.add_argument("--rate", type=float, default=7.0)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument(
        "--redis-url", default=os.environ.get("CRMTEL_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
    )
    smoke.add_smoke(parser, turns=50, seconds=1.5)
    return asyncio.run(main_async(smoke.parse(parser)))


if __name__ == "__main__":
    sys.exit(main())
