"""``crmtel run`` stopped (SIGTERM) while the store stays locked LONGER than ``calls.stop_write_seconds``.

The stop has one budget, counted from the signal: the process must exit while the other writer still holds
the lock (a stop that waits for the lock to go away overran its budget — systemd would SIGKILL it at
TimeoutStopSec), with exit status 75 and a log naming the call it could not write and where it comes back
from. Condition-based: the lock is held until the process has exited (or a generous cap passes), then the
test checks the lock was still held when the process ended. SQLite (another process's ``BEGIN EXCLUSIVE``)
and PostgreSQL (``LOCK TABLE calls IN ACCESS EXCLUSIVE MODE``).
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import asyncpg  # type: ignore[import-untyped]
import pytest

from crmtel.app import EXIT_UNWRITTEN, migrate
from crmtel.fakepbx.server import load_ami
from crmtel.store.calls import CallRepository
from crmtel.store.db import Database
from crmtel.store.managers import ManagerRepository
from tests.fixtures.daemon import Daemon, DaemonPool, first_hangup, spawn_run, stored_state
from tests.fixtures.databases import PostgresRun, _dsn, pg_base_url
from tests.fixtures.fake_ami import wait_for, wait_until
from tests.fixtures.races import RACES_PROCESSES
from tests.fixtures.traces import load_expected
from tests.integration.test_ami_pipeline import serving

# Races real processes (tests/fixtures/races.py).
pytestmark = RACES_PROCESSES

# The stop's budget in these tests (calls.stop_write_seconds): shorter than SQLite's busy_timeout (5 s), so a
# single busy wait begun at full length would overrun it.
BUDGET = 3.0
# The longest the other writer holds its lock if crmtel never exits (the test then fails on it).
CAP = 90.0
# Anna owns the unknown caller's lead and task; the stop budget under test.
CALLS = f'[calls]\ndefault_owner = "anna"\nstop_write_seconds = {BUDGET}\n'
# The locker in another process: holds SQLite's write lock until told on stdin (or CAP), then says whether
# it was told ("released") or gave up ("cap").
_SQLITE_LOCKER = """
import select, sqlite3, sys
conn = sqlite3.connect(sys.argv[1], isolation_level=None, timeout=30)
conn.execute("BEGIN EXCLUSIVE")
print("locked", flush=True)
ready, _, _ = select.select([sys.stdin], [], [], float(sys.argv[2]))
conn.execute("COMMIT")
print("released" if ready else "cap", flush=True)
"""


async def _run_until_stopped(daemon: Daemon, web_url: str, linkedid: str, calls: CallRepository) -> None:
    await daemon.wait_http(web_url + "/")

    async def live_stored() -> bool:
        return (await stored_state(calls)).live == {linkedid}

    await wait_until(live_stored, limit=30)


def _check_stop(daemon: Daemon, code: int | None, linkedid: str, took: float, backend: str) -> None:
    print(f"\n{backend}: stop took {took:.1f} s with calls.stop_write_seconds={BUDGET}, exit {code}")
    log = daemon.stderr()
    assert code == EXIT_UNWRITTEN, log[-3000:]
    assert "stopping with 1 call(s) not written" in log, log[-3000:]
    assert f"not written: ended call {linkedid} on pbx" in log, log[-3000:]
    assert "LOST: this PBX has no CDR source" in log, log[-3000:]


@asynccontextmanager
async def _sqlite_locked(path: Path) -> AsyncIterator[asyncio.subprocess.Process]:
    locker = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        _SQLITE_LOCKER,
        str(path),
        str(CAP),
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
    )
    try:
        assert locker.stdout is not None
        assert await locker.stdout.readline() == b"locked\n"
        yield locker
    finally:
        if locker.returncode is None:
            locker.kill()
        await locker.communicate()


async def test_sigterm_with_sqlite_locked_longer_than_the_budget_exits_while_it_is_still_locked(
    pool: DaemonPool,
    tmp_path: Path,
    traces_dir: Path,
) -> None:
    """Another process holds SQLite's write lock from before the call ends until crmtel has exited: crmtel
    exits within its stop budget anyway (exit 75), naming the ended call it could not write."""
    path = tmp_path / "crmtel.db"
    url = f"sqlite+aiosqlite:///{path}"
    await migrate(url)
    db = Database(url)
    try:
        await ManagerRepository(db).save(login="anna", name="Анна", extensions=("101",))
        stream = load_ami(traces_dir / "direct-caller-gives-up.ami")
        linkedid = load_expected("direct-caller-gives-up")["linkedid"]
        calls = CallRepository(db)
        async with serving(stream, pause_after=first_hangup(stream)) as server:
            daemon, ports = spawn_run(pool, tmp_path, url, server.port, CALLS)
            await _run_until_stopped(daemon, ports.web_url, linkedid, calls)
            async with _sqlite_locked(path) as locker:
                server.resume()
                await wait_for(server.finished.is_set, limit=10)
                started = time.monotonic()
                daemon.proc.send_signal(signal.SIGTERM)
                code = await daemon.wait_exit(limit=CAP + 30)
                took = time.monotonic() - started
                assert locker.stdin is not None
                assert locker.stdout is not None
                locker.stdin.write(b"go\n")
                await locker.stdin.drain()
                # "released": still held when crmtel had exited; "cap": crmtel outlived the lock.
                assert await locker.stdout.readline() == b"released\n"
        _check_stop(daemon, code, linkedid, took, "SQLite")
        # Nothing written meanwhile, nothing half-written: the call is still stored as live.
        assert (await stored_state(calls)).live == {linkedid}
    finally:
        await db.dispose()


async def _postgres() -> PostgresRun:
    base = pg_base_url() or "postgresql+asyncpg://postgres@127.0.0.1:5432/test"
    try:
        conn = await asyncpg.connect(_dsn(base), timeout=5)
    except (OSError, asyncpg.PostgresError) as err:
        if os.environ.get("CI") == "true":
            raise
        pytest.skip(f"no PostgreSQL at {base}: {err}")
    await conn.close()
    run = PostgresRun(base)
    await asyncio.to_thread(run.create)
    return run


async def test_sigterm_with_postgres_calls_locked_longer_than_the_budget_exits_while_it_is_still_locked(
    pool: DaemonPool,
    tmp_path: Path,
    traces_dir: Path,
) -> None:
    """Another session holds ``LOCK TABLE calls IN ACCESS EXCLUSIVE MODE`` from before the call ends until
    crmtel has exited: the write waiting on it is bounded by the stop budget and crmtel exits (75)."""
    run = await _postgres()
    db = Database(run.url)
    try:
        await ManagerRepository(db).save(login="anna", name="Анна", extensions=("101",))
        stream = load_ami(traces_dir / "direct-caller-gives-up.ami")
        linkedid = load_expected("direct-caller-gives-up")["linkedid"]
        calls = CallRepository(db)
        async with serving(stream, pause_after=first_hangup(stream)) as server:
            daemon, ports = spawn_run(pool, tmp_path, run.url, server.port, CALLS)
            await _run_until_stopped(daemon, ports.web_url, linkedid, calls)
            locker = await asyncpg.connect(_dsn(run.url))
            try:
                lock = locker.transaction()
                await lock.start()
                await locker.execute("LOCK TABLE calls IN ACCESS EXCLUSIVE MODE")
                server.resume()
                await wait_for(server.finished.is_set, limit=10)
                started = time.monotonic()
                daemon.proc.send_signal(signal.SIGTERM)
                code = await daemon.wait_exit(limit=CAP)
                took = time.monotonic() - started
                # The lock was held all along: crmtel exited (code not None) before it was released.
                assert code is not None, "crmtel did not exit while the table stayed locked"
                assert (
                    await locker.fetchval(
                        "SELECT count(*) FROM pg_locks WHERE granted AND pid = pg_backend_pid() AND mode = 'AccessExclusiveLock'"
                    )
                ) >= 1
                await lock.rollback()
            finally:
                await locker.close()
        _check_stop(daemon, code, linkedid, took, "PostgreSQL")
        assert (await stored_state(calls)).live == {linkedid}
    finally:
        await db.dispose()
        await asyncio.to_thread(run.drop)
