"""``crmtel run`` with Bitrix24, killed with SIGKILL while a finish is on the wire: the portal keeps one call each."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import select

from crmtel.bitrix24.fake import FakeBitrix24
from crmtel.bitrix24.web import PATH
from crmtel.store.calls import CallRepository
from crmtel.store.db import Database
from crmtel.store.models import ConnectorDeliveryRow
from tests.fixtures.bitrix24 import (
    CLIENT_ID,
    CLIENT_SECRET,
    assert_one_activity_per_call,
    fake_portal,
    recordings,
    settled,
)
from tests.fixtures.daemon import DaemonPool, free_ports, linkedids, pbx_settings, write_config
from tests.fixtures.fake_ami import wait_for, wait_until
from tests.fixtures.races import RACES_PROCESSES
from tests.fixtures.traces import SCENARIOS
from tests.integration.test_ami_pipeline import serving
from tests.integration.test_daemon_crash import busy_pbx, wait_all_ended, wait_logins

# Races real processes (tests/fixtures/races.py).
pytestmark = RACES_PROCESSES


def _config(
    path: Path, database_url: str, ami_port: int, fake: FakeBitrix24, monitor: Path
) -> tuple[Path, str]:
    web, agi = free_ports(2)
    write_config(
        path,
        {
            "ami": pbx_settings("pbx1", ami_port),
            "routing": {"agi_host": "127.0.0.1", "agi_port": agi},
            "web": {"host": "127.0.0.1", "port": web, "recordings_dir": str(monitor)},
            "log": {"level": "info", "json_output": False},
            "outbox": {
                "lease_seconds": 5,
                "poll_seconds": 0.1,
                "retry_min_seconds": 0.2,
                "retry_max_seconds": 1,
            },
            "bitrix24": {
                "portal": fake.url,
                "client_id": CLIENT_ID,
                "client_secret": CLIENT_SECRET,
                "oauth_server": fake.url,
                "rate_per_second": 25.0,
            },
        },
        database_url=database_url,
    )
    return path, f"http://127.0.0.1:{web}"


async def test_kill_9_with_a_finish_on_the_wire_leaves_one_bitrix24_call_per_call(
    pool: DaemonPool, db: Database, database_url: str, traces_dir: Path, tmp_path: Path
) -> None:
    """The portal recorded a finish whose answer crmtel never got (SIGKILL); the restart neither loses nor doubles."""
    monitor = recordings(tmp_path / "monitor")
    stream = busy_pbx(traces_dir)
    half = len(stream) // 2
    async with fake_portal() as fake, serving(stream, pause_after=half, speed=8.0) as server:
        config, web = _config(tmp_path / "crmtel.toml", database_url, server.port, fake, monitor)
        first = pool.spawn("--config", str(config), "run", name="first")
        await first.wait_http(web + "/")
        assert await fake.install(web + PATH) == 200
        # The portal does the work of every finish but holds its answer: the first finish is on the wire.
        fake.answer_delay["telephony.externalcall.finish"] = 30.0
        await wait_for(lambda: len(fake.activities) >= 1, limit=30)
        await first.kill9()
        fake.answer_delay.clear()
        second = pool.spawn("--config", str(config), "run", name="second")
        await second.wait_http(web + "/")
        await wait_logins(server, 2)
        server.resume()
        await wait_all_ended(CallRepository(db), linkedids(stream), limit=60)
        await wait_until(lambda: settled(db), limit=60)
        assert await second.terminate(limit=10) == 0, second.describe()
    # The portal follows crmtel's record: a call stored without its recording gets none attached.
    unrecorded = {
        s.record.linkedid for s in await CallRepository(db).between() if not s.record.recording_file
    }
    assert_one_activity_per_call(fake, SCENARIOS, unrecorded=unrecorded)
    assert any("finished before" in answer for answer in await _all_answers(db)), "no redelivered finish"


async def _all_answers(db: Database) -> list[str]:
    async with db.session() as session:
        return list((await session.execute(select(ConnectorDeliveryRow.answer))).scalars())
