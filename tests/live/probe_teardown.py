"""A rig that only holds: run by test_live_teardown.py in a pytest of its own, which it then signals.

Not collected with the tier (no ``test_`` prefix): ``pytest tests/live/probe_teardown.py`` runs it. It starts a
rig in a module fixture (``asyncio.run``, as the tier's batch modules do), writes the pids of its Asterisk, desk
phones (sipp) and ``crmtel run`` to ``$CRMTEL_PROBE_PIDS`` and waits to be stopped.
"""

from __future__ import annotations

import asyncio
import json
import os
from pathlib import Path

import pytest

from tests.fixtures.databases import PostgresRun, SqliteRun
from tests.live.asterisk import Install
from tests.live.conftest import module_database
from tests.live.crmtel_side import Staff
from tests.live.rig import RigSpec, live_rig
from tests.live.sipp import NeverAnswers

PIDS_VARIABLE = "CRMTEL_PROBE_PIDS"
SPEC = RigSpec(staff=(Staff("anna", "Anna", "191"),))


@pytest.fixture(scope="module")
def held(
    live_install: Install, tmp_path_factory: pytest.TempPathFactory, _database_run: PostgresRun | SqliteRun
) -> None:
    folder = tmp_path_factory.mktemp("live-probe")
    pids_file = Path(os.environ[PIDS_VARIABLE])

    async def run() -> None:
        async with live_rig(live_install, folder, module_database(_database_run, folder), SPEC) as rig:
            await rig.set_phones({"191": NeverAnswers()})
            assert rig.pbx.proc is not None
            assert rig.daemon is not None
            assert rig.phones is not None
            pids = {"asterisk": rig.pbx.proc.pid, "crmtel": rig.daemon.proc.pid, "sipp": rig.phones.proc.pid}
            await asyncio.to_thread(pids_file.write_text, json.dumps(pids), encoding="utf-8")
            # Held until the outer test signals this pytest (it never lets this run out).
            await asyncio.sleep(3600)

    asyncio.run(run())


def test_holds_a_rig(held: None) -> None:
    pass
