"""Rate limits for outside systems: per node when crmtel runs alone, shared by every node of a cluster.

One rule for both (GCRA, the generic cell rate algorithm): requests are spaced ``1/rate`` apart on average and
``burst`` of them may go at once after a quiet time — Bitrix24's leaky bucket (2 requests/s, 50 at once) and
amoCRM's "7 in any second" (burst 1: every request at least 1/7 s after the one before) alike. The state is one
number, the theoretical arrival time (TAT) of the next request; a request may go when ``TAT + interval`` is no
further ahead than ``burst`` intervals. The interval is stretched by ``MARGIN``: the outside system measures
arrival, we measure sending.

In a cluster the TAT lives in Redis and a Lua script reads and moves it atomically, on the Redis server's own
clock (``TIME``), so every node's workers draw from one bucket per connector: two nodes together send no
faster than one. Each request reserves its place in one round trip and is told how long to wait for it, so the
nodes are served in the order they asked (none starves another by asking again at the right moment). Redis unreachable: each node falls back to its local limit (logged); the outbox retries
whatever the outside system refuses meanwhile.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Protocol

import structlog
from redis.asyncio import Redis
from redis.exceptions import RedisError

_log = structlog.get_logger(__name__)

# The interval is stretched this much: the server measures arrival, we measure sending.
MARGIN = 1.05

# KEYS[1]: the bucket; ARGV: the interval and the tolerance (burst × interval), in microseconds. Reserves the
# next place (the TAT moves on) and answers how many microseconds the request waits for it (0: go now).
_GCRA = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local interval = tonumber(ARGV[1])
local tolerance = tonumber(ARGV[2])
local tat = tonumber(redis.call('GET', KEYS[1]) or 0)
if tat < now then tat = now end
local new = tat + interval
redis.call('SET', KEYS[1], string.format('%.0f', new), 'PX', math.ceil((new - now) / 1000) + 1000)
local wait = new - tolerance - now
if wait < 0 then wait = 0 end
return wait
"""


class Limiter(Protocol):
    """Something that makes a request wait for its turn."""

    async def acquire(self) -> None:
        """Wait until the next request may go."""
        ...

    async def note(self) -> None:
        """Count a request that cannot wait (a routing lookup): the ones that can wait go later instead."""
        ...


def _interval(rate: float, burst: int) -> float:
    if rate <= 0:
        raise ValueError("rate must be positive")
    if burst < 1:
        raise ValueError("burst must be at least 1")
    return MARGIN / rate


class RateLimit:
    """The limit within one process (one node)."""

    def __init__(
        self,
        rate: float,
        burst: int = 1,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self.rate = rate
        self.burst = burst
        self.interval = _interval(rate, burst)
        self._clock = clock
        self._sleep = sleep
        self._tat = float("-inf")
        self._lock = asyncio.Lock()

    async def acquire(self) -> None:
        """Take the next place, waiting for it if the bucket is full."""
        async with self._lock:
            while True:
                now = self._clock()
                new = max(self._tat, now) + self.interval
                wait = new - self.burst * self.interval - now
                # (a nanosecond of tolerance: a sleep of exactly the gap may wake a rounding error early)
                if wait <= 1e-9:
                    self._tat = new
                    return
                await self._sleep(wait)

    async def note(self) -> None:
        """Count a request that goes now, whatever the bucket holds."""
        self._tat = max(self._tat, self._clock()) + self.interval


class SharedRateLimit:
    """The limit of a whole cluster: one bucket in Redis for every node's requests to one outside system."""

    def __init__(
        self,
        redis: Redis,
        key: str,
        rate: float,
        burst: int = 1,
        *,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self.key = key
        self.rate = rate
        self.burst = burst
        interval = _interval(rate, burst)
        self._args = (round(interval * 1e6), round(burst * interval * 1e6))
        self._script = redis.register_script(_GCRA)
        self._sleep = sleep
        # Used while Redis cannot be reached (the node keeps its own pace then).
        self.fallback = RateLimit(rate, burst, sleep=sleep)
        self._degraded = False

    async def _reserve(self) -> int | None:
        """Microseconds until the place reserved in the cluster's bucket; None while Redis is away."""
        try:
            wait_us = int(await self._script(keys=[self.key], args=list(self._args)))
        except (RedisError, OSError) as err:
            if not self._degraded:
                self._degraded = True
                _log.warning("outbox.rate_local", key=self.key, error=str(err))
            return None
        if self._degraded:
            self._degraded = False
            _log.info("outbox.rate_shared", key=self.key)
        return wait_us

    async def acquire(self) -> None:
        """Reserve the next place in the cluster's bucket and wait for it (cancelled meanwhile: the place is
        lost, never taken twice)."""
        wait_us = await self._reserve()
        if wait_us is None:
            await self.fallback.acquire()
        elif wait_us > 0:
            await self._sleep(wait_us / 1e6)

    async def note(self) -> None:
        """Count a request that goes now in the cluster's bucket (never waits: later requests wait longer)."""
        if await self._reserve() is None:
            await self.fallback.note()


class RateLimits:
    """Makes the limits of a node: shared over Redis in a cluster, local otherwise (the composition root's)."""

    def __init__(self, redis: Redis | None = None, *, prefix: str = "crmtel") -> None:
        self._redis = redis
        self._prefix = prefix

    @property
    def shared(self) -> bool:
        """Whether the limits are the cluster's."""
        return self._redis is not None

    def limit(self, name: str, rate: float, burst: int = 1) -> Limiter:
        """The limit called ``name`` (one bucket per name across the cluster)."""
        if self._redis is None:
            return RateLimit(rate, burst)
        return SharedRateLimit(self._redis, f"{self._prefix}:rate:{name}", rate, burst)
