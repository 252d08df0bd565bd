"""``bench/popup_latency.py --cluster``: popups across three crmtel nodes, and how fast a killed leader is replaced.

The fake PBX and the browsers are the same processes as in the single-node run; crmtel runs as three real
``crmtel run`` nodes on one PostgreSQL database and one Redis (``[cluster] enabled``). One node leads the PBX;
the browsers are spread over all three, so most popups travel leader -> Redis stream -> another node. Latency
is the same wire-to-wire figure (fake PBX socket write -> websocket frame at the browser). Then the leader is
killed with SIGKILL: the failover time is until another node holds the PBX's lease, and until it is logged in to
the PBX again (its ``/healthz`` says ``connected``).
"""

from __future__ import annotations

import asyncio
import multiprocessing as mp
import os
import secrets
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp

from crmtel.push.sessions import token_hash
from crmtel.store.calls import CallRepository
from crmtel.store.db import Database, upgrade
from crmtel.store.leases import LeaseRepository
from crmtel.store.managers import ManagerRepository
from crmtel.store.sessions import SessionRepository

NODES = 3


def _free_ports(count: int) -> list[int]:
    socks = [socket.socket() for _ in range(count)]
    try:
        for s in socks:
            s.bind(("127.0.0.1", 0))
        return [int(s.getsockname()[1]) for s in socks]
    finally:
        for s in socks:
            s.close()


def _config(path: Path, url: str, ami: int, web: int, agi: int, node: str, stream: str, redis: str) -> Path:
    path.write_text(
        f'database_url = "{url}"\n'
        f'[ami]\nname = "pbx1"\nhost = "127.0.0.1"\nport = {ami}\nusername = "crmtel"\nsecret = "secret"\n'
        "reconnect_min = 0.05\nreconnect_max = 0.2\n"
        f'[routing]\nagi_host = "127.0.0.1"\nagi_port = {agi}\n'
        f'[web]\nhost = "127.0.0.1"\nport = {web}\nqueue_size = 256\n'
        '[log]\nlevel = "warning"\n'
        f"[calls]\ncreate_leads_for_unknown = false\n"
        f'[cluster]\nenabled = true\nnode_name = "{node}"\nredis_url = "{redis}"\nstream = "{stream}"\n'
        "poll_seconds = 0.25\nsession_timeout_seconds = 2.0\n",
        encoding="utf-8",
    )
    return path


async def _wait_http(url: str, limit: float = 30.0) -> None:
    deadline = time.monotonic() + limit
    async with aiohttp.ClientSession() as http:
        while True:
            try:
                async with http.get(url, timeout=aiohttp.ClientTimeout(total=1)) as r:
                    if r.status in (200, 503):
                        return
            except (aiohttp.ClientError, TimeoutError):
                pass
            if time.monotonic() > deadline:
                raise SystemExit(f"{url} did not answer within {limit} s")
            await asyncio.sleep(0.05)


def _spawn(config: Path, log: Path) -> subprocess.Popen[bytes]:
    with log.open("wb") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "crmtel.cli", "--config", str(config), "run"],
            stdout=out,
            stderr=out,
            stdin=subprocess.DEVNULL,
            env={k: v for k, v in os.environ.items() if not k.startswith("CRMTEL_")},
        )


async def _leader(leases: LeaseRepository, limit: float = 30.0) -> str:
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        found = (await leases.leaders()).get("pbx1")
        if found is not None:
            return found[0]
        await asyncio.sleep(0.05)
    raise SystemExit("no node took the PBX's lease")


async def _connected(url: str) -> bool:
    async with aiohttp.ClientSession() as http:
        try:
            async with http.get(url + "healthz", timeout=aiohttp.ClientTimeout(total=1)) as r:
                body = await r.json()
        except (aiohttp.ClientError, TimeoutError, ValueError):
            return False
    return bool(body.get("pbx", {}).get("pbx1", {}).get("connected"))


def expect_ready(answer: object) -> list[int]:
    """The browsers' "ready" and the HTTP statuses of the handshakes refused (printed; they fail the run)."""
    assert isinstance(answer, tuple), answer
    assert answer[0] == "ready", answer
    refused: list[int] = list(answer[1])
    if refused:
        statuses = ", ".join(f"{refused.count(s)} x HTTP {s}" for s in sorted(set(refused)))
        print(f"WARNING: {len(refused)} browsers were refused when connecting ({statuses})")
    return refused


async def run_cluster(
    args: Any,
    stream: list[Any],
    pg_url: str,
    *,
    pbx_target: Callable[..., None],
    browsers_target: Callable[..., None],
) -> tuple[dict[int, float], list[tuple[float, str, str, str, bool]], float, float, list[int]]:
    """Run the nodes, the PBX and the browsers; returns (sent, received, lease failover s, PBX failover s,
    the HTTP statuses of refused websocket handshakes)."""
    await upgrade(pg_url)
    db = Database(pg_url)
    workdir = tempfile.TemporaryDirectory(prefix="crmtel-bench-cluster-")
    nodes: list[subprocess.Popen[bytes]] = []
    try:
        managers = ManagerRepository(db)
        sessions = SessionRepository(db)
        tokens = []
        now = datetime.now(UTC)
        for i in range(args.managers):
            manager = await managers.save(login=f"m{i}", name=f"Manager {i}", extensions=(str(1000 + i),))
            token = secrets.token_urlsafe(32)
            await sessions.save(token_hash(token), manager.id, now + timedelta(hours=2), now)
            tokens.append(token)

        ctx = mp.get_context("spawn")
        p_main, p_child = ctx.Pipe()
        pbx = ctx.Process(target=pbx_target, args=(stream, p_child, True))
        pbx.start()
        ami_port = await asyncio.to_thread(p_main.recv)

        ports = _free_ports(2 * NODES)
        urls = []
        stream_name = f"crmtel:bench:{secrets.token_hex(4)}"
        redis = os.environ.get("CRMTEL_BENCH_REDIS_URL", "redis://127.0.0.1:6379/0")
        for n in range(NODES):
            web, agi = ports[2 * n], ports[2 * n + 1]
            cfg = _config(
                Path(workdir.name) / f"n{n}.toml", pg_url, ami_port, web, agi, f"n{n}", stream_name, redis
            )
            nodes.append(await asyncio.to_thread(_spawn, cfg, Path(workdir.name) / f"n{n}.log"))
            urls.append(f"http://127.0.0.1:{web}/")
        for url in urls:
            await _wait_http(url + "healthz")
        leases = LeaseRepository(db)
        leader_node = await _leader(leases)

        b_main, b_child = ctx.Pipe()
        targets = [(urls[i % NODES], t) for i, t in enumerate(tokens)]
        browsers = ctx.Process(target=browsers_target, args=(targets, b_child))
        browsers.start()
        refused = expect_ready(await asyncio.to_thread(b_main.recv))
        print(f"{NODES} nodes (leader {leader_node}), {len(tokens)} websocket clients spread over them")
        p_main.send("go")
        calls = CallRepository(db)
        deadline = time.monotonic() + args.spread + 60
        while time.monotonic() < deadline:
            stored = await calls.between()
            if len(stored) >= args.calls and all(s.record.ended_at is not None for s in stored):
                break
            await asyncio.sleep(0.2)
        await asyncio.sleep(3.0)  # the last frames through the stream, on a loaded machine too

        # Failover: the leader dies; when does another node hold the lease, and follow the PBX?
        leader = nodes[int(leader_node.removeprefix("n"))]
        leader.kill()
        killed = time.monotonic()
        lease_s = pbx_s = float("nan")
        while time.monotonic() - killed < 20:
            found = (await leases.leaders()).get("pbx1")
            if found is not None and found[0] != leader_node:
                lease_s = time.monotonic() - killed
                break
            await asyncio.sleep(0.01)
        survivors = [u for i, u in enumerate(urls) if f"n{i}" != leader_node]
        while time.monotonic() - killed < 20:
            if any([await _connected(u) for u in survivors]):
                pbx_s = time.monotonic() - killed
                break
            await asyncio.sleep(0.02)

        p_main.send("stop")
        sent: dict[int, float] = await asyncio.to_thread(p_main.recv)
        b_main.send("stop")
        received: list[tuple[float, str, str, str, bool]] = await asyncio.to_thread(b_main.recv)
        pbx.join()
        browsers.join()
        return sent, received, lease_s, pbx_s, refused
    finally:
        for proc in nodes:
            if proc.poll() is None:
                proc.terminate()
        for proc in nodes:
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        await db.dispose()
        workdir.cleanup()
