"""Every process the live tier starts dies with the run, whatever ends it.

Three layers: the rig's own teardown (``live_rig``'s ``finally``, reached on SIGTERM/SIGINT because the live
conftest turns SIGTERM into KeyboardInterrupt); :func:`kill_left` at the end of the session for anything a
teardown could not reach; and ``PR_SET_PDEATHSIG`` (Linux) so a SIGKILLed pytest takes its Asterisk, sipp and
``crmtel run`` with it.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Callable

_PR_SET_PDEATHSIG = 1
_started: list[subprocess.Popen[bytes] | asyncio.subprocess.Process] = []


def die_with_parent() -> Callable[[], None] | None:
    """A ``preexec_fn`` asking the kernel to SIGKILL the child when this process dies (Linux; else None).

    The kernel ties the signal to the forking *thread*: only children forked by the main thread get it
    (a worker thread may end long before pytest does).
    """
    if not sys.platform.startswith("linux") or threading.current_thread() is not threading.main_thread():
        return None
    libc = ctypes.CDLL(None, use_errno=True)
    parent = os.getpid()

    def preexec() -> None:
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
        if os.getppid() != parent:  # the parent died before prctl: nobody would signal us
            os._exit(1)

    return preexec


def track(proc: subprocess.Popen[bytes] | asyncio.subprocess.Process) -> None:
    """Remember a process the tier started (killed by :func:`kill_left` if it still runs at the end)."""
    _started.append(proc)


def kill_left() -> list[int]:
    """SIGKILL (by pid) every tracked process not yet reaped; the pids it signalled."""
    killed = []
    for proc in _started:
        if proc.returncode is not None:
            continue
        if isinstance(proc, subprocess.Popen) and proc.poll() is not None:
            continue
        # Not reaped yet, so the pid is still this process (a zombie at worst): never someone else's.
        with contextlib.suppress(ProcessLookupError):
            os.kill(proc.pid, signal.SIGKILL)
            killed.append(proc.pid)
        if isinstance(proc, subprocess.Popen):
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=5)
    _started.clear()
    return killed
