"""Password checks with a bounded queue: a burst of logins waits its turn for argon2, and past the queue's
bound it is told to come back (429 with Retry-After) instead of piling up threads, memory and waiting
requests. Nothing here holds a database connection: the hash is checked outside any transaction.

The checks run on threads of their own at a lower CPU priority (``nice`` per thread on Linux; argon2's lane
threads inherit it): a burst of logins uses the CPU the event loop, the AMI reader and a cluster node's lease
checks leave over, so it can never starve them — the way 50 logins per node once cost a PBX its leader."""

from __future__ import annotations

import asyncio
import contextlib
import math
import os
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

from crmtel.errors import CrmtelError
from crmtel.store.managers import verify_password

# How much lower than the daemon's own threads the password checks run (nice 0 -> 10).
NICE = 10


def _lower_priority() -> None:
    # On Linux a thread id names one thread for setpriority; elsewhere this would renice the whole process.
    if hasattr(os, "setpriority") and os.uname().sysname == "Linux":
        with contextlib.suppress(OSError):
            current = os.getpriority(os.PRIO_PROCESS, threading.get_native_id())
            os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), min(19, current + NICE))


class LoginsBusy(CrmtelError):
    """The password-check queue is full; ``retry_after`` is whole seconds until it should have room."""

    def __init__(self, retry_after: int) -> None:
        super().__init__(f"password checks queue full, retry after {retry_after} s")
        self.retry_after = retry_after


class PasswordChecks:
    """At most ``workers`` argon2 checks at once and ``queue`` more waiting; beyond that LoginsBusy."""

    def __init__(
        self,
        *,
        workers: int = 2,
        queue: int = 64,
        verify: Callable[[str | None, str], bool] = verify_password,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._slots = asyncio.Semaphore(workers)
        self._threads = ThreadPoolExecutor(
            max_workers=workers, thread_name_prefix="crmtel-password", initializer=_lower_priority
        )
        self._workers = workers
        self._queue = queue
        self._verify = verify
        self._clock = clock
        self._inside = 0  # waiting or being checked
        # A running mean of one check's seconds, for Retry-After (argon2's default costs ~0.05-0.1 s).
        self._mean = 0.1
        self.refused = 0
        self.peak = 0

    @property
    def inside(self) -> int:
        """Checks waiting or running now."""
        return self._inside

    async def __call__(self, password_hash: str | None, password: str) -> bool:
        """Whether the password matches the hash (None: no such user, still checked against a dummy)."""
        if self._inside >= self._workers + self._queue:
            self.refused += 1
            raise LoginsBusy(max(1, math.ceil(self._inside * self._mean / self._workers)))
        self._inside += 1
        self.peak = max(self.peak, self._inside)
        try:
            async with self._slots:
                started = self._clock()
                loop = asyncio.get_running_loop()
                ok = await loop.run_in_executor(self._threads, self._verify, password_hash, password)
                self._mean = 0.8 * self._mean + 0.2 * (self._clock() - started)
                return ok
        finally:
            self._inside -= 1

    def close(self) -> None:
        """Let the worker threads go (the web app's cleanup)."""
        self._threads.shutdown(wait=False, cancel_futures=True)
