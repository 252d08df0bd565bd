"""Giving memory back to the system after a burst.

CPython frees objects into its allocator (and glibc's), which keeps the pages for reuse: after a burst of
large AMI events RSS stays at its peak although nothing is held. ``malloc_trim(0)`` asks glibc to return
free pages at the top of the heap and in its arenas; on other C libraries it is simply not called.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import gc
import time
from collections.abc import Callable


@functools.cache
def _malloc_trim() -> Callable[[int], int] | None:
    name = ctypes.util.find_library("c")
    if name is None:
        return None
    try:
        libc = ctypes.CDLL(name)
        trim = libc.malloc_trim
    except (OSError, AttributeError):
        return None
    trim.argtypes = [ctypes.c_size_t]
    trim.restype = ctypes.c_int
    return trim


def release_free_memory() -> bool:
    """Collect cyclic garbage, then return free heap pages to the system (glibc only); True when trimmed."""
    # Cycles (exceptions with their tracebacks, finished futures) otherwise hold their memory until the
    # collector's thresholds happen to be reached.
    gc.collect()
    trim = _malloc_trim()
    if trim is None:
        return False
    trim(0)
    return True


# How many container objects may be created (net of those freed) before the youngest generation is collected;
# CPython's default is 700. See ``collect_less_often``.
YOUNG_THRESHOLD = 50_000


def collect_less_often() -> None:
    """Let the cyclic collector run a generation at a time far less often (``gc.set_threshold``).

    With CPython's default of 700 a cluster's leader, timed with ``gc.callbacks`` in ``bench/popup_latency.py
    --cluster``, ran 185 young, 16 middle and 2 full collections inside the 4 s ringing window (123 ms of CPU,
    the largest 29 ms): each stops the event loop, and every popup whose AMI frame arrives meanwhile waits.
    With 50,000 no node collected anything in that window at load 3. Objects freed by reference counting never
    count; what this delays is only cyclic garbage, at most that many objects.
    """
    _, middle, old = gc.get_threshold()
    gc.set_threshold(YOUNG_THRESHOLD, middle, old)


def freeze_startup_objects() -> None:
    """Move everything alive after start-up out of the cyclic collector's sight (``gc.freeze``).

    Catalogues, Babel's CLDR data, the ORM's tables, compiled patterns: objects that live as long as the
    process. Each full collection used to walk all of them, a 40-70 ms stall of the event loop that
    showed as the popup latency's tail; frozen, they are never scanned, and new garbage is collected as before.
    """
    if gc.get_freeze_count():
        return  # once per process: what a later start-up (tests start crmtel many times) leaves stays collectable
    gc.collect()
    gc.freeze()


class Trimmer:
    """Calls ``release_free_memory`` after a burst has drained, at most once per ``interval`` seconds."""

    def __init__(self, *, threshold: int = 4 << 20, interval: float = 5.0) -> None:
        self._threshold = threshold
        self._interval = interval
        self._peak = 0
        self._last = 0.0

    def note(self, held_bytes: int) -> None:
        """Report how much a queue holds now; when a large backlog has drained, memory is given back."""
        if held_bytes > self._peak:
            self._peak = held_bytes
            return
        if held_bytes == 0 and self._peak >= self._threshold:
            now = time.monotonic()
            if now - self._last >= self._interval:
                self._last = now
                self._peak = 0
                release_free_memory()
