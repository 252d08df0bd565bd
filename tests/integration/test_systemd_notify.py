"""``crmtel run`` under systemd's notify protocol, seen from a datagram socket the test owns as systemd would."""

from __future__ import annotations

import asyncio
import itertools
import os
import signal
import socket
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
import pytest

from tests.fixtures.daemon import Daemon, DaemonPool, clean_log, daemon_config
from tests.fixtures.races import RACES_PROCESSES
from tests.integration.test_ami_pipeline import serving

# Races real processes (tests/fixtures/races.py).
pytestmark = RACES_PROCESSES

# systemd would be asked for WatchdogSec=2: crmtel must ping at least every 2 s (it aims for every second).
# Not shorter: on a loaded CI machine a process can wait for the CPU for a good part of a second.
WATCHDOG_USEC = 2_000_000


@dataclass
class NotifySocket:
    """systemd's side of NOTIFY_SOCKET: every datagram with the monotonic time it arrived."""

    sock: socket.socket
    address: str
    received: list[tuple[float, str]] = field(default_factory=list)

    async def pump(self) -> None:
        """Read datagrams until cancelled."""
        loop = asyncio.get_running_loop()
        while True:
            data = await loop.sock_recv(self.sock, 4096)
            self.received.append((time.monotonic(), data.decode()))

    def messages(self, key: str, since: float = 0.0) -> list[tuple[float, str]]:
        """The messages holding the line ``key`` (e.g. ``READY=1``) that arrived after ``since``."""
        return [(t, m) for t, m in self.received if t >= since and key in m.split("\n")]

    async def wait(self, key: str, daemon: Daemon, limit: float = 20.0) -> float:
        """When the first message holding ``key`` arrived (fails early if the daemon exits)."""
        deadline = time.monotonic() + limit
        while not (found := self.messages(key)):
            assert daemon.alive(), daemon.describe()
            assert time.monotonic() < deadline, f"no {key} within {limit} s\n{daemon.describe()}"
            await asyncio.sleep(0.01)
        return found[0][0]


@asynccontextmanager
async def notify_socket() -> AsyncIterator[NotifySocket]:
    """An abstract-namespace datagram socket (no path-length limits, nothing left on disk)."""
    name = f"crmtel-test-{uuid.uuid4().hex}"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind("\0" + name)
    sock.setblocking(False)
    listener = NotifySocket(sock, "@" + name)
    task = asyncio.create_task(listener.pump())
    try:
        yield listener
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        sock.close()


async def _answers(web_port: int, agi_port: int) -> None:
    async with (
        aiohttp.ClientSession() as http,
        http.get(f"http://127.0.0.1:{web_port}/", timeout=aiohttp.ClientTimeout(total=2)) as response,
    ):
        assert response.status == 200
    _reader, writer = await asyncio.open_connection("127.0.0.1", agi_port)
    writer.close()
    await writer.wait_closed()


def _gaps(times: list[float]) -> list[float]:
    return [b - a for a, b in itertools.pairwise(times)]


@pytest.mark.slow
async def test_ready_watchdog_status_and_stopping_reach_systemd_and_pings_stop_while_the_process_is_frozen(
    pool: DaemonPool, database_url: str, tmp_path: Path
) -> None:
    """READY=1 once web and FastAGI answer; WATCHDOG=1 at the asked rate; none while frozen; STOPPING=1 on SIGTERM."""
    async with notify_socket() as systemd, serving([]) as server:
        config, ports = daemon_config(tmp_path / "crmtel.toml", database_url, server.port)
        env = {"NOTIFY_SOCKET": systemd.address, "WATCHDOG_USEC": str(WATCHDOG_USEC)}
        daemon = pool.spawn("--config", str(config), "run", env=env)
        await systemd.wait("READY=1", daemon, limit=60)
        # The moment systemd hears READY, both listeners already serve (no retry here).
        await _answers(ports.web, ports.agi)
        assert len(systemd.messages("READY=1")) == 1
        ready_status = next(m for _, m in systemd.messages("READY=1"))
        assert "STATUS=PBX connected 0/1" in ready_status or "STATUS=PBX connected 1/1" in ready_status

        # STATUS= follows the AMI login that happens in the background after READY.
        deadline = time.monotonic() + 30
        while not any("STATUS=PBX connected 1/1" in m for _, m in systemd.received):
            assert time.monotonic() < deadline, systemd.received
            await asyncio.sleep(0.05)

        watch_from = time.monotonic()
        await asyncio.sleep(5.0)
        pings = [t for t, _ in systemd.messages("WATCHDOG=1", since=watch_from)]
        assert len(pings) >= 3, systemd.received
        assert max(_gaps(pings)) < WATCHDOG_USEC / 1e6, _gaps(pings)

        # A frozen daemon (here: SIGSTOP, as a wedged event loop looks from outside) sends nothing.
        os.kill(daemon.pid, signal.SIGSTOP)
        try:
            await asyncio.sleep(0.3)  # a datagram already in flight may still land
            frozen_from = time.monotonic()
            await asyncio.sleep(3.0)  # three ping intervals
            frozen_to = time.monotonic()
        finally:
            os.kill(daemon.pid, signal.SIGCONT)
        during = [t for t, _ in systemd.messages("WATCHDOG=1", since=frozen_from) if t < frozen_to]
        assert during == []
        resumed = time.monotonic()
        await asyncio.sleep(3.0)
        assert systemd.messages("WATCHDOG=1", since=resumed), "pings did not resume after SIGCONT"

        assert systemd.messages("STOPPING=1") == []
        code = await daemon.terminate(limit=20)
        assert code == 0, daemon.describe()
        await asyncio.sleep(0.1)
    assert len(systemd.messages("STOPPING=1")) == 1
    assert clean_log(daemon.stderr()) == [], daemon.describe()


async def test_without_notify_socket_crmtel_runs_and_stops_as_before(
    pool: DaemonPool, database_url: str, tmp_path: Path
) -> None:
    """No NOTIFY_SOCKET (started by hand or by Type=exec): nothing is sent, nothing is logged about systemd."""
    async with serving([]) as server:
        config, ports = daemon_config(tmp_path / "crmtel.toml", database_url, server.port)
        daemon = pool.spawn("--config", str(config), "run", env={"WATCHDOG_USEC": str(WATCHDOG_USEC)})
        # Generous: on a loaded machine the interpreter alone can take many seconds to start.
        await daemon.wait_http(ports.web_url + "/", limit=60)
        assert await daemon.terminate(limit=20) == 0, daemon.describe()
    assert "systemd" not in daemon.stderr()
