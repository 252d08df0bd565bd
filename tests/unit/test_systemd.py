"""The notify client: watchdog interval from the environment, and pings that come from the event loop itself."""

from __future__ import annotations

import asyncio
import socket
import threading
import time
import uuid
from collections.abc import Iterator

import pytest

from crmtel.systemd import ServiceManager, watchdog_interval


def test_watchdog_interval_is_half_of_watchdog_usec_and_only_for_the_named_process() -> None:
    """WATCHDOG_USEC=2 s → ping every 1 s; WATCHDOG_PID of another process, junk or 0 → no watchdog."""
    assert watchdog_interval({"WATCHDOG_USEC": "2000000"}, 42) == 1.0
    assert watchdog_interval({"WATCHDOG_USEC": "2000000", "WATCHDOG_PID": "42"}, 42) == 1.0
    assert watchdog_interval({"WATCHDOG_USEC": "2000000", "WATCHDOG_PID": "7"}, 42) is None
    assert watchdog_interval({"WATCHDOG_USEC": "soon"}, 42) is None
    assert watchdog_interval({"WATCHDOG_USEC": "0"}, 42) is None
    assert watchdog_interval({}, 42) is None


def test_without_notify_socket_nothing_is_enabled(monkeypatch: pytest.MonkeyPatch) -> None:
    """Started by hand: the manager is a no-op and asks for no watchdog even if WATCHDOG_USEC is set."""
    monkeypatch.delenv("NOTIFY_SOCKET", raising=False)
    monkeypatch.setenv("WATCHDOG_USEC", "1000000")
    manager = ServiceManager()
    assert not manager.enabled
    assert manager.watchdog is None
    manager.ready("x")  # no socket, no error


@pytest.fixture
def receiver(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[tuple[float, str]]]:
    """A datagram socket read by a thread of its own, so arrival times do not depend on the loop under test."""
    name = f"crmtel-unit-{uuid.uuid4().hex}"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind("\0" + name)
    sock.settimeout(0.05)
    monkeypatch.setenv("NOTIFY_SOCKET", "@" + name)
    monkeypatch.setenv("WATCHDOG_USEC", "100000")
    monkeypatch.delenv("WATCHDOG_PID", raising=False)
    received: list[tuple[float, str]] = []
    done = threading.Event()

    def read() -> None:
        while not done.is_set():
            try:
                data = sock.recv(4096)
            except TimeoutError:
                continue
            received.append((time.monotonic(), data.decode()))

    thread = threading.Thread(target=read, daemon=True)
    thread.start()
    yield received
    done.set()
    thread.join(2)
    sock.close()


async def test_a_blocked_event_loop_sends_no_watchdog_pings(receiver: list[tuple[float, str]]) -> None:
    """Pings every 50 ms while the loop runs; none while the loop is blocked in a synchronous call."""
    manager = ServiceManager()
    assert manager.watchdog == 0.05
    task = asyncio.create_task(manager.run(lambda: "fine"))
    await asyncio.sleep(0.4)
    blocked_from = time.monotonic()
    time.sleep(0.5)  # noqa: ASYNC251 - the loop is stuck in a blocking call, as a bug would make it
    blocked_to = time.monotonic()
    await asyncio.sleep(0.3)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    manager.close()
    pings = [t for t, m in receiver if "WATCHDOG=1" in m.split("\n")]
    before = [t for t in pings if t < blocked_from]
    during = [t for t in pings if blocked_from + 0.02 < t < blocked_to]
    after = [t for t in pings if t > blocked_to]
    assert len(before) >= 2
    assert during == []
    assert len(after) >= 1
    # STATUS= went out once: it is only re-sent when it changes.
    assert sum("STATUS=fine" in m for _, m in receiver) == 1
