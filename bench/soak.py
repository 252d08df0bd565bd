"""Soak: crmtel as a daemon under steady load for minutes; lag, popups, memory and records at the end.

Run: ``python bench/soak.py [--duration 600] [--rate 20] [--call-seconds 10] [--managers 500]``.

Three processes besides crmtel itself, as in production: the fake AMI server in live mode, starting ``--rate``
new calls a second (copies of the real ``direct-answered`` trace stretched to ``--call-seconds``, so
rate × seconds calls are up at once: 200 by default), each from its own number and ringing its own manager;
``crmtel run`` (a real subprocess, SQLite by default); and ``--managers`` websocket clients. Figures:

- event lag: websocket arrival minus the event's own time (the ``Timestamp`` the fake PBX stamps when it
  sends the frame, which crmtel carries as the message's ``at``) over every live message; popup = ``call.ringing``;
- RSS of the crmtel process from ``/proc``: at start, after ``--warmup`` seconds, peak, and at the end (load
  stopped, every call ended and written);
- records: every generated call must be stored exactly once and ended (lost = missing or not ended).

``CRMTEL_SOAK_PROFILE=FILE`` runs crmtel under cProfile and writes its profile to FILE.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing as mp
import os
import re
import secrets
import signal
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from multiprocessing.connection import Connection
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import aiohttp
import samerun
import smoke
from benchdb import pg_database
from popup_latency import percentiles
from sqlalchemy.engine import make_url
from yarl import URL

from crmtel.fakepbx.server import FakeAmiServer, Recorded, load_ami
from crmtel.push.sessions import token_hash
from crmtel.store.calls import CallRepository
from crmtel.store.db import Database, upgrade
from crmtel.store.managers import ManagerRepository
from crmtel.store.sessions import SessionRepository

TRACES = Path(__file__).resolve().parents[1] / "crmtel" / "fakepbx" / "data"
_IDS = {"uniqueid", "linkedid", "destuniqueid", "destlinkedid"}
_EXT = re.compile(r"(?<![0-9.])101(?![0-9])")
FIGURES = (
    r"^baseline \(same run\): panoramisk bare parser [\d,]+ events/s; fixed CPU loop",
    r"^event lag +n= *\d+ +p50= *[\d.]+ ms .*p99= *[\d.]+ ms",
    r"^popup +n= *\d+ +p50= *[\d.]+ ms .*p99= *[\d.]+ ms",
    r"^RSS start [\d.]+ MB, after warm-up [\d.]+ MB, peak [\d.]+ MB, end [\d.]+ MB",
    r"^records: \d+ calls, \d+ lost, \d+ duplicated",
)


def one_call(base: list[Recorded], k: int, managers: int, start: float, stretch: float) -> list[Recorded]:
    """Copy ``k`` of the trace: its own ids, caller +7916<k>, ringing extension 1000 + k mod managers."""
    ext, suffix, caller = str(1000 + k % managers), f"s{k:06d}", f"7916{k:07d}"
    t0 = base[0].t
    out: list[Recorded] = []
    for item in base:
        headers: list[tuple[str, str]] = []
        for key, value in item.headers:
            low = key.lower()
            if low in _IDS and value:
                value = value + suffix
            else:
                value = _EXT.sub(ext, value.replace("79161110001", caller))
                if low.endswith("channel") and value:
                    value = value + suffix
            headers.append((key, value))
        out.append(Recorded(start + (item.t - t0) * stretch, tuple(headers)))
    return out


def linkedid_of(base: list[Recorded], k: int) -> str:
    """The Linkedid call ``k`` is stored under."""
    lid = next(v for item in base for key, v in item.headers if key.lower() == "linkedid" and v)
    return f"{lid}s{k:06d}"


# -- the fake PBX process ------------------------------------------------------------------------------


def pbx_process(args: argparse.Namespace, pipe: Connection) -> None:
    """Live fake PBX: report its port, wait for "go", then start ``rate`` calls a second for ``duration`` s."""
    asyncio.run(_pbx(args, pipe))


async def _pbx(args: argparse.Namespace, pipe: Connection) -> None:
    base = [r for r in load_ami(TRACES / "direct-answered.ami") if isinstance(r, Recorded)]
    stretch = args.call_seconds / max(0.1, base[-1].t - base[0].t)
    server = FakeAmiServer([], speed=1.0, live=True, epoch=time.time())
    await server.start()
    pipe.send(server.port)
    await asyncio.to_thread(pipe.recv)  # "go"
    total = int(args.duration * args.rate)
    k = 0
    while k < total:
        # One second of new calls at a time, each at its own moment within that second.
        now = server.clock
        batch: list[Recorded] = []
        for _ in range(min(args.rate, total - k)):
            offset = (k % args.rate) / args.rate
            batch.extend(one_call(base, k, args.managers, now + 0.5 + offset, stretch))
            k += 1
        server.extend(batch)
        await asyncio.sleep(1.0)
    pipe.send(total)
    await asyncio.to_thread(pipe.recv)  # "stop"
    await server.close()


# -- the browsers process ------------------------------------------------------------------------------


def browsers_process(url: str, tokens: list[str], pipe: Connection) -> None:
    """One websocket per session token; report when all are connected, then every (type, lag) received."""
    asyncio.run(_browsers(url, tokens, pipe))


async def _browsers(url: str, tokens: list[str], pipe: Connection) -> None:
    lags: list[tuple[str, float]] = []
    ready, all_ready, stop = 0, asyncio.Event(), asyncio.Event()
    closed = [0]

    async def one(token: str) -> None:
        nonlocal ready
        jar = aiohttp.CookieJar(unsafe=True)
        jar.update_cookies({"crmtel_session": token}, response_url=URL(url))
        async with aiohttp.ClientSession(cookie_jar=jar) as session, session.ws_connect(url + "ws") as ws:
            await ws.receive()  # hello
            ready += 1
            if ready == len(tokens):
                all_ready.set()
            while not stop.is_set():
                msg = await ws.receive()
                if msg.type is not aiohttp.WSMsgType.TEXT:
                    closed[0] += 1
                    return
                now = time.time()
                data = msg.json()
                at = data.get("at")
                if isinstance(at, str):
                    lags.append((data["type"], now - datetime.fromisoformat(at).timestamp()))

    async with asyncio.TaskGroup() as group:
        tasks = [group.create_task(one(t)) for t in tokens]
        await all_ready.wait()
        pipe.send("ready")
        await asyncio.to_thread(pipe.recv)  # "stop"
        stop.set()
        for task in tasks:
            task.cancel()
    pipe.send((lags, closed[0]))


# -- crmtel, the daemon ------------------------------------------------------------------------------


def rss_mb(pid: int) -> float:
    """Resident memory of a process, from /proc."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def cpu_seconds(pid: int) -> float:
    """CPU time (user + system) a process has used, from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def write_config(path: Path, url: str, ami_port: int, web_port: int, agi_port: int) -> None:
    """A config for ``crmtel run`` against the fake PBX."""
    path.write_text(
        f'database_url = "{url}"\n'
        f'[ami]\nname = "pbx1"\nhost = "127.0.0.1"\nport = {ami_port}\nusername = "crmtel"\n'
        'secret = "secret"\nauth = "md5"\n'
        f'[web]\nhost = "127.0.0.1"\nport = {web_port}\n'
        f'[routing]\nagi_host = "127.0.0.1"\nagi_port = {agi_port}\n'
        "[calls]\ncreate_leads_for_unknown = false\n"
        '[log]\nlevel = "warning"\njson_output = false\n',
        encoding="utf-8",
    )


def free_port() -> int:
    """A TCP port nobody listens on right now."""
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def seed(url: str, managers: int) -> list[str]:
    """The managers (extensions 1000…) and one open session each (logging 500 in would only time argon2)."""
    db = Database(url)
    try:
        repo, sessions = ManagerRepository(db), SessionRepository(db)
        tokens = []
        now = datetime.now(UTC)
        for i in range(managers):
            manager = await repo.save(login=f"m{i}", name=f"Manager {i}", extensions=(str(1000 + i),))
            token = secrets.token_urlsafe(32)
            await sessions.save(token_hash(token), manager.id, now + timedelta(hours=12), now)
            tokens.append(token)
        return tokens
    finally:
        await db.dispose()


async def records(url: str, expected: set[str]) -> tuple[int, int, int]:
    """(stored, lost, duplicated): lost = generated calls missing or not ended; duplicated = extra rows."""
    db = Database(url)
    try:
        repo = CallRepository(db)
        counts = await repo.count()
        ended = {s.record.linkedid for s in await repo.between() if s.record.ended_at is not None}
    finally:
        await db.dispose()
    duplicated = sum(n - 1 for n in counts.values() if n > 1)
    return len(counts), len(expected - ended), duplicated


async def run(args: argparse.Namespace) -> int:
    tmp = tempfile.TemporaryDirectory(prefix="crmtel-soak-")
    url = args.database_url or f"sqlite+aiosqlite:///{tmp.name}/soak.db"
    if make_url(url).get_backend_name() == "postgresql":
        url = await pg_database(url, smoke.name(args, "crmtel_bench_soak"), fresh=True)
    await upgrade(url)
    tokens = await seed(url, args.managers)
    base = [r for r in load_ami(TRACES / "direct-answered.ami") if isinstance(r, Recorded)]
    total = int(args.duration * args.rate)
    expected = {linkedid_of(base, k) for k in range(total)}
    print(
        f"load: {args.rate} new calls/s for {args.duration:g} s ({total} calls, each {args.call_seconds:g} s:"
        f" ~{args.rate * args.call_seconds:.0f} at once), {args.managers} websocket clients;"
        f" load average {os.getloadavg()[0]:.1f}"
    )

    ctx = mp.get_context("spawn")
    p_main, p_child = ctx.Pipe()
    pbx = ctx.Process(target=pbx_process, args=(args, p_child))
    pbx.start()
    ami_port = await asyncio.to_thread(p_main.recv)
    web_port, agi_port = free_port(), free_port()
    config = Path(tmp.name) / "crmtel.toml"
    write_config(config, url, ami_port, web_port, agi_port)
    log = (Path(tmp.name) / "crmtel.log").open("w")
    profile = (
        ["-m", "cProfile", "-o", os.environ["CRMTEL_SOAK_PROFILE"]]
        if "CRMTEL_SOAK_PROFILE" in os.environ
        else []
    )
    daemon = await asyncio.create_subprocess_exec(
        sys.executable, *profile, "-m", "crmtel.cli", "--config", str(config), "run", stdout=log, stderr=log
    )
    web_url = f"http://127.0.0.1:{web_port}/"
    try:
        async with aiohttp.ClientSession() as http:
            for _ in range(300):
                try:
                    async with http.get(web_url) as r:
                        if r.status == 200:
                            break
                except aiohttp.ClientError:
                    pass
                await asyncio.sleep(0.1)
        b_main, b_child = ctx.Pipe()
        browsers = ctx.Process(target=browsers_process, args=(web_url, tokens, b_child))
        browsers.start()
        assert await asyncio.to_thread(b_main.recv) == "ready"
        rss_start = rss_mb(daemon.pid)
        p_main.send("go")
        started = time.monotonic()
        peak, warm, samples = rss_start, 0.0, []
        while not p_main.poll():
            await asyncio.sleep(1.0)
            now_rss = rss_mb(daemon.pid)
            peak = max(peak, now_rss)
            samples.append(now_rss)
            if not warm and time.monotonic() - started >= args.warmup:
                warm = now_rss
        p_main.recv()  # every call has been started
        warm = warm or rss_mb(daemon.pid)
        load_seconds = time.monotonic() - started
        # The last calls run out and the pipeline drains: wait while calls are still being ended.
        await asyncio.sleep(args.call_seconds + 3.0)
        stored, lost, duplicated = await records(url, expected)
        progress_at = time.monotonic()
        while lost and time.monotonic() - progress_at < 60:
            await asyncio.sleep(2.0)
            before = lost
            stored, lost, duplicated = await records(url, expected)
            if lost < before:
                progress_at = time.monotonic()
        drained = time.monotonic() - started - load_seconds
        await asyncio.sleep(5.0)
        rss_end = rss_mb(daemon.pid)
        peak = max(peak, rss_end)
        cpu = cpu_seconds(daemon.pid)
        b_main.send("stop")
        lags, dropped = await asyncio.to_thread(b_main.recv)
        browsers.join()
    finally:
        p_main.send("stop")
        pbx.join(timeout=10)
        daemon.send_signal(signal.SIGTERM)
        try:
            async with asyncio.timeout(20):
                await daemon.wait()
        except TimeoutError:
            daemon.kill()
            await daemon.wait()
        log.close()
    errors = [
        line
        for line in (Path(tmp.name) / "crmtel.log").read_text().splitlines()
        if "[error" in line or "Traceback" in line
    ]
    tmp.cleanup()

    print(
        f"load phase {load_seconds:.0f} s, drained {drained:.0f} s after it; crmtel used {cpu:.0f} CPU-seconds;"
        f" load average now {os.getloadavg()[0]:.1f}"
    )
    print(f"event lag  {percentiles([lag for _, lag in lags])}")
    print(f"popup      {percentiles([lag for kind, lag in lags if kind == 'call.ringing'])}")
    print(
        f"RSS start {rss_start:.1f} MB, after warm-up {warm:.1f} MB, peak {peak:.1f} MB, end {rss_end:.1f} MB"
    )
    print(f"records: {stored} calls, {lost} lost, {duplicated} duplicated (of {total} generated)")
    print(f"websockets closed by the server: {dropped}; error lines in crmtel's log: {len(errors)}")
    for line in errors[:5]:
        print("  " + line)
    within = rss_end <= warm * 1.10
    print(f"RSS at end {'within' if within else 'ABOVE'} 10% of after warm-up")
    return smoke.verdict(args, missed=bool(lost or duplicated or not within))


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--duration", type=float, default=600.0, help="seconds of new calls")
    parser.add_argument("--rate", type=int, default=20, help="new calls a second")
    parser.add_argument("--call-seconds", type=float, default=10.0, help="how long each call lasts")
    parser.add_argument("--managers", type=int, default=500, help="websocket clients (one per manager)")
    parser.add_argument("--warmup", type=float, default=60.0, help="seconds before the warm-up RSS")
    parser.add_argument("--database-url", default=None, help="default: a temporary SQLite file")
    smoke.add_smoke(parser, duration=4.0, rate=5, call_seconds=2.0, managers=20, warmup=2.0)
    args = smoke.parse(parser)
    if args.rate * args.call_seconds > args.managers:
        parser.error(
            "each live call rings its own manager: --rate × --call-seconds must not exceed --managers"
        )
    return asyncio.run(run(args))


if __name__ == "__main__":
    samerun.report()
    raise SystemExit(main())
