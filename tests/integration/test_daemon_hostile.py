"""The running daemon (``crmtel run`` as a process) under hostile AMI input (issue 13)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import re
import signal
import sqlite3
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from urllib.parse import parse_qs

import aiohttp
import asyncpg  # type: ignore[import-untyped]
import pytest
from sqlalchemy.engine import make_url

from crmtel.fakepbx.server import Garbage, load_ami
from crmtel.store.calls import CallRepository
from crmtel.store.db import Database
from tests.fixtures.daemon import DaemonPool, daemon_config, stored_state
from tests.fixtures.fake_ami import wait_until
from tests.fixtures.races import RACES_PROCESSES
from tests.fixtures.traces import SCENARIOS
from tests.integration.test_agi_server import env
from tests.integration.test_ami_pipeline import serving
from tests.unit.test_ami_fuzz import _frames, _mutate

# Races real processes (tests/fixtures/races.py).
pytestmark = RACES_PROCESSES


async def test_a_malformed_ami_stream_logs_a_handful_of_lines_not_one_per_bad_line(
    pool: DaemonPool, db: Database, database_url: str, traces_dir: Path, tmp_path: Path
) -> None:
    """20,000 header-less lines and 2,000 undecodable messages log tens of lines; the real call still lands."""
    trace = load_ami(traces_dir / "direct-answered.ami")
    junk = [
        *(
            Garbage(0.0, b"Event: Junk\r\n" + b"no colon on this line\r\n" * 100 + b"\r\n")
            for _ in range(200)
        ),
        *(Garbage(0.0, b"Event: Bad\r\nCallerIDName: \xff\xfe\r\n\r\n") for _ in range(2000)),
    ]
    calls = CallRepository(db)
    async with serving([*trace[:3], *junk, *trace[3:]], speed=50.0) as server:
        config, ports = daemon_config(tmp_path / "crmtel.toml", database_url, server.port)
        daemon = pool.spawn("--config", str(config), "run")
        await daemon.wait_http(ports.web_url + "/")

        async def ended() -> bool:
            return len((await stored_state(calls)).ended) == 1

        await wait_until(ended, limit=30)
        await daemon.terminate(limit=5)
    log = daemon.stderr().splitlines()
    headerless = [line for line in log if "without a header name" in line]
    undecodable = [line for line in log if "not valid UTF-8" in line]
    assert 1 <= len(headerless) <= 10, daemon.describe()
    assert 1 <= len(undecodable) <= 10, daemon.describe()
    assert "further ones suppressed" in headerless[-1]
    assert len(log) < 100, daemon.describe()


def rss_mb(pid: int) -> float:
    """Resident memory of a process from /proc, in MB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise AssertionError(f"no VmRSS for {pid}")


@asynccontextmanager
async def locked_store(database_url: str) -> AsyncIterator[None]:
    """Hold a write lock on the test database from another connection (the store "falls behind")."""
    url = make_url(database_url)
    if url.drivername.startswith("sqlite"):
        conn = sqlite3.connect(str(url.database), isolation_level=None)
        conn.execute("BEGIN EXCLUSIVE")
        try:
            yield
        finally:
            conn.execute("ROLLBACK")
            conn.close()
        return
    pg = await asyncpg.connect(url.set(drivername="postgresql").render_as_string(hide_password=False))
    tx = pg.transaction()
    await tx.start()
    # EXCLUSIVE, not ACCESS EXCLUSIVE: writes wait, reads (the start-up restore) still go through, as in
    # SQLite's WAL mode.
    await pg.execute("LOCK TABLE calls IN EXCLUSIVE MODE")
    try:
        yield
    finally:
        await tx.rollback()
        await pg.close()


JUNK_HEADERS = b"".join(b"X-Pad-%d: %s\r\n" % (i, b"v" * 8) for i in range(3000))


def huge_events(count: int) -> list[Garbage]:
    """``count`` new calls whose Newchannel carries 3,000 extra headers (~60 KB each)."""
    items: list[Garbage] = []
    for i in range(count):
        lid = f"1799{i:06d}.1"
        head = (
            f"Event: Newchannel\r\nChannel: PJSIP/trunk-{i:08x}\r\nChannelState: 4\r\n"
            f"CallerIDNum: 7916{i:07d}\r\nExten: 4951234567\r\nUniqueid: {lid}\r\nLinkedid: {lid}\r\n"
        ).encode()
        items.append(Garbage(0.0, head))
        items.append(Garbage(0.0, JUNK_HEADERS + b"\r\n"))
    return items


BOUND_MB = 300


@pytest.mark.slow
async def test_huge_events_while_the_store_is_locked_keep_rss_bounded_and_it_comes_back_down(
    pool: DaemonPool, db: Database, database_url: str, tmp_path: Path
) -> None:
    """2,000 events of 3,000 headers each (120 MB) with the database locked: past ``[calls] max_unwritten`` (1,000
    here) reading pauses, RSS stays under 300 MB, and once the store is back every call is written and RSS ends
    near where it started. (Below the bound tracking does not wait for the store: popups go out meanwhile.)"""
    async with serving(huge_events(2000), chunk_size=256 * 1024) as server:
        config, ports = daemon_config(tmp_path / "crmtel.toml", database_url, server.port)
        with config.open("a", encoding="utf-8") as extra:
            extra.write("\n[calls]\nmax_unwritten = 1000\n")
        async with locked_store(database_url):
            daemon = pool.spawn("--config", str(config), "run")
            await daemon.wait_http(ports.web_url + "/")
            start = rss_mb(daemon.pid)
            peak = start
            for _ in range(24):
                await asyncio.sleep(0.25)
                peak = max(peak, rss_mb(daemon.pid))
            assert not server.finished.is_set()  # the reader paused: the PBX could not send it all
        calls = CallRepository(db)

        async def all_stored() -> bool:
            stored = await stored_state(calls)
            return len(stored.live) + len(stored.ended) >= 2000

        await wait_until(all_stored, limit=120)
        for _ in range(8):
            await asyncio.sleep(0.25)
            peak = max(peak, rss_mb(daemon.pid))
        end = rss_mb(daemon.pid)
        await daemon.terminate(limit=10)
    print(f"huge events, store locked: RSS start {start:.0f} MB, peak {peak:.0f} MB, end {end:.0f} MB")
    assert peak < BOUND_MB, daemon.describe()
    assert end < start + 60, (start, peak, end)


async def test_a_frozen_crmtel_holds_a_fastagi_caller_but_the_http_variant_is_bounded(
    pool: DaemonPool, database_url: str, tmp_path: Path
) -> None:
    """With crmtel stopped (SIGSTOP), FastAGI gets no answer at all while GET /route with a 1 s total
    timeout (what CURLOPT(httptimeout)=1 does) gives up after 1 s; the text answer has every key."""
    async with serving([]) as server:
        config, ports = daemon_config(tmp_path / "crmtel.toml", database_url, server.port)
        daemon = pool.spawn("--config", str(config), "run")
        await daemon.wait_http(ports.web_url + "/")
        url = f"{ports.web_url}/route?format=text&caller=79161110001&did=4951234567"
        async with aiohttp.ClientSession() as http:
            async with http.get(url) as r:
                assert r.status == 200
                answer = parse_qs(await r.text())
            assert set(answer) >= {"kind", "target", "fallback_queue", "reason"}
            os.kill(daemon.pid, signal.SIGSTOP)
            try:
                reader, writer = await asyncio.open_connection("127.0.0.1", ports.agi)  # the kernel accepts
                writer.write(env())
                with pytest.raises(TimeoutError):
                    async with asyncio.timeout(3):
                        await reader.readline()  # Asterisk would wait here for as long as crmtel is frozen
                writer.close()
                started = time.monotonic()
                with pytest.raises(TimeoutError):
                    async with http.get(url, timeout=aiohttp.ClientTimeout(total=1)) as r:
                        await r.read()
                assert time.monotonic() - started < 1.5
            finally:
                os.kill(daemon.pid, signal.SIGCONT)
        assert await daemon.terminate(limit=10) == 0


def mixed_fuzz_stream(seed: int, copies: int) -> list[Garbage]:
    """Every real trace ``copies`` times, a third of the frames mutated (huge, duplicated, undecodable …)."""
    rnd = random.Random(seed)
    items: list[Garbage] = []
    for copy in range(copies):
        # Own ids per copy, so the calls are new calls and not late events of finished ones.
        ids = re.compile(rb"((?:Uniqueid|Linkedid): [0-9.]+)")
        suffix = rb"\g<1>%d" % copy
        for scenario in SCENARIOS:
            for raw in _frames(scenario)[1:]:
                frame = ids.sub(suffix, raw)
                kind = rnd.choice((1, 2, 2, 0, 3, 4, 5, 6)) if rnd.random() < 0.33 else 7
                items.append(Garbage(0.0, _mutate(frame, kind, rnd)))
    return items


@pytest.mark.slow
async def test_a_mixed_fuzz_stream_keeps_rss_bounded_and_it_comes_back_down(
    pool: DaemonPool, database_url: str, tmp_path: Path
) -> None:
    """30 copies of every real trace with a third of the frames mutated: RSS stays under 300 MB throughout,
    and when the stream is over it comes back near its start (before: 905 MB, never given back)."""
    async with serving(mixed_fuzz_stream(13, 30), chunk_size=64 * 1024) as server:
        config, ports = daemon_config(tmp_path / "crmtel.toml", database_url, server.port)
        daemon = pool.spawn("--config", str(config), "run")
        await daemon.wait_http(ports.web_url + "/")
        start = peak = rss_mb(daemon.pid)
        async with asyncio.timeout(120):
            while not server.finished.is_set():
                await asyncio.sleep(0.25)
                peak = max(peak, rss_mb(daemon.pid))
        for _ in range(24):
            await asyncio.sleep(0.25)
            peak = max(peak, rss_mb(daemon.pid))
        end = rss_mb(daemon.pid)
        assert daemon.alive(), daemon.describe()
        await daemon.terminate(limit=10)
    print(f"mixed fuzz stream: RSS start {start:.0f} MB, peak {peak:.0f} MB, end {end:.0f} MB")
    assert peak < BOUND_MB
    assert end < start + 40, (start, peak, end)


async def _trickle(host: str, port: int, body: bool) -> float:
    """A slowloris client: a request header (or, with ``body``, a JSON body) one line every 0.2 s until the
    server closes the connection; how long it was held. A hang guard stops it after 60 s."""
    reader, writer = await asyncio.open_connection(host, port)
    started = time.monotonic()
    if body:
        writer.write(
            b"POST /api/login HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b"Content-Length: 60000\r\n\r\n{"
        )
    else:
        writer.write(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
    try:
        while time.monotonic() - started < 60:
            await asyncio.sleep(0.2)
            writer.write(b" " if body else b"X-Slow: 1\r\n")
            await writer.drain()
            if reader.at_eof():
                break
            with contextlib.suppress(TimeoutError):
                # Whatever the server answers (a 408) ends the exchange from our side too.
                if await asyncio.wait_for(reader.read(1), 0.01):
                    break
    except (ConnectionResetError, BrokenPipeError):
        pass
    finally:
        writer.close()
    return time.monotonic() - started


async def test_slow_headers_and_slow_bodies_are_cut_off_while_others_are_served(
    pool: DaemonPool, database_url: str, traces_dir: Path, tmp_path: Path
) -> None:
    """30 clients trickling header lines and 10 trickling a body are each cut off (header_timeout 2 s, the body
    after 30 s) while /healthz keeps answering; without the deadline they were held for ever."""
    trace = load_ami(traces_dir / "direct-answered.ami")
    async with serving(trace[:3], speed=50.0) as server:
        config, ports = daemon_config(tmp_path / "crmtel.toml", database_url, server.port)
        config.write_text(
            config.read_text(encoding="utf-8").replace("[web]\n", "[web]\nheader_timeout = 2.0\n"),
            encoding="utf-8",
        )
        daemon = pool.spawn("--config", str(config), "run")
        await daemon.wait_http(ports.web_url + "/")
        slow = [asyncio.create_task(_trickle("127.0.0.1", ports.web, body=False)) for _ in range(30)]
        slow += [asyncio.create_task(_trickle("127.0.0.1", ports.web, body=True)) for _ in range(10)]
        await asyncio.sleep(0.5)
        async with aiohttp.ClientSession() as http:
            for _ in range(5):
                async with http.get(ports.web_url + "/healthz") as r:
                    assert r.status in (200, 503)
        held = await asyncio.gather(*slow)
        await daemon.terminate(limit=5)
    assert all(h < 55 for h in held), held
    # The headers were cut at the deadline, the bodies at theirs.
    assert max(held[:30]) < 25, held
    assert min(held[30:]) > 20, held
