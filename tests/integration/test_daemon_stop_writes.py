"""``crmtel run`` stopped (SIGTERM) while a call ends and another program holds SQLite's write lock: nothing lost."""

from __future__ import annotations

import asyncio
import signal
from pathlib import Path

from sqlalchemy import func, select

from crmtel.app import migrate
from crmtel.fakepbx.server import load_ami
from crmtel.store.calls import CallRepository
from crmtel.store.db import Database
from crmtel.store.managers import ManagerRepository
from crmtel.store.models import LeadRow, TaskRow
from tests.fixtures.daemon import DaemonPool, clean_log, first_hangup, spawn_run, state_after, stored_state
from tests.fixtures.fake_ami import wait_for, wait_until
from tests.fixtures.races import RACES_PROCESSES
from tests.fixtures.sqlite_lock import WriteLock
from tests.fixtures.traces import load_expected
from tests.integration.test_ami_pipeline import serving

# Races real processes (tests/fixtures/races.py).
pytestmark = RACES_PROCESSES

# How long the other writer holds the database (longer than SQLite's busy_timeout of 5 s would be too:
# the daemon must retry, not give up).
LOCK_SECONDS = 5.0


async def count(db: Database, row: type[LeadRow] | type[TaskRow]) -> int:
    """Rows of one table."""
    async with db.session() as session:
        return int((await session.execute(select(func.count()).select_from(row))).scalar_one())


async def test_sigterm_while_a_call_ends_and_sqlite_is_locked_stores_call_lead_and_task_once(
    pool: DaemonPool, tmp_path: Path, traces_dir: Path
) -> None:
    """SIGTERM just after a missed call's hangup, the database locked by another writer for 5 s: the daemon
    waits for it, and after it exits the call, the unknown caller's lead and the callback task are stored once."""
    path = tmp_path / "crmtel.db"
    url = f"sqlite+aiosqlite:///{path}"
    await migrate(url)
    db = Database(url)
    try:
        await ManagerRepository(db).save(login="anna", name="Анна Смирнова", extensions=("101",))
        stream = load_ami(traces_dir / "direct-caller-gives-up.ami")
        linkedid = load_expected("direct-caller-gives-up")["linkedid"]
        pause = first_hangup(stream)
        assert state_after(stream[:pause]).live == {linkedid}
        calls = CallRepository(db)
        async with serving(stream, pause_after=pause) as server:
            daemon, ports = spawn_run(pool, tmp_path, url, server.port, '[calls]\ndefault_owner = "anna"\n')
            await daemon.wait_http(ports.web_url + "/")

            async def live_stored() -> bool:
                return (await stored_state(calls)).live == {linkedid}

            await wait_until(live_stored, limit=20)
            lock = WriteLock(path, LOCK_SECONDS)
            lock.start()
            server.resume()
            await wait_for(server.finished.is_set, limit=10)
            daemon.proc.send_signal(signal.SIGTERM)  # as systemd's stop
            # The daemon cannot have written the end yet: the other writer still holds the database.
            assert not lock.released.is_set()
            assert (await stored_state(calls)).live == {linkedid}
            code = await daemon.wait_exit(limit=60)
            await asyncio.to_thread(lock.join)
        assert code == 0, daemon.describe()
        assert lock.released.is_set()
        assert clean_log(daemon.stderr()) == [], daemon.describe()
        assert await calls.count() == {("pbx1", linkedid): 1}
        (stored,) = await calls.between()
        assert stored.record.ended_at is not None
        assert stored.live_state is None
        assert await count(db, LeadRow) == 1
        assert await count(db, TaskRow) == 1
    finally:
        await db.dispose()
