"""A sliding-window rate limit: never more than ``rate`` requests in any second (CRMs count that way).

A token bucket that starts full lets twice its rate through in the second around a burst; amoCRM answers the
eighth request of any second with 429. So the last requests' times are kept and a request waits until the
oldest of the window has left it (with a small margin for the two clocks' disagreement).
"""

from __future__ import annotations

import asyncio
import math
import time
from collections import deque
from collections.abc import Awaitable, Callable

# The window is stretched this much: the server measures arrival, we measure sending.
MARGIN = 1.05


class RateLimit:
    """Waits as long as needed before each request so the outside system's limit is kept."""

    def __init__(
        self,
        rate: float,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        if rate <= 0:
            raise ValueError("rate must be positive")
        self.rate = rate
        # At most ``count`` requests per ``window`` seconds (7/s: 7 per second; 0.5/s: 1 per 2 s).
        self.count = max(1, math.floor(rate))
        self.window = self.count / rate * MARGIN
        self._clock = clock
        self._sleep = sleep
        self._sent: deque[float] = deque()
        self._lock = asyncio.Lock()

    async def acquire(self) -> None:
        """Take a place in the window, waiting for one if it is full."""
        async with self._lock:
            while True:
                now = self._clock()
                # (a nanosecond of tolerance: a sleep of exactly the gap may wake a rounding error early)
                while self._sent and now - self._sent[0] >= self.window - 1e-9:
                    self._sent.popleft()
                if len(self._sent) < self.count:
                    self._sent.append(now)
                    return
                await self._sleep(self._sent[0] + self.window - now)
