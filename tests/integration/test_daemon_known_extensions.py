"""A manager added while ``crmtel run`` runs is classified right at once, not only after a restart: with the
browser phone on, petr's desk phone 9913 added by `crmtel manager add` beside ivan's 13 is petr's phone."""

from __future__ import annotations

import contextlib
from collections.abc import Awaitable, Callable
from pathlib import Path

from crmtel.fakepbx.server import Recorded, load_ami
from crmtel.store.calls import CallRepository
from crmtel.store.db import Database
from crmtel.store.managers import ManagerRepository
from tests.fixtures.daemon import DaemonPool, clean_log, crmtel_cli, spawn_run, stored_state
from tests.fixtures.fake_ami import wait_until
from tests.fixtures.races import RACES_PROCESSES
from tests.fixtures.traces import load_expected
from tests.integration.test_ami_pipeline import serving

# Races real processes (tests/fixtures/races.py).
pytestmark = RACES_PROCESSES

WEBPHONE = '[webphone]\nenabled = true\nws_url = "wss://pbx.example.com:8089/ws"\n'


def _desk_phone_9913(traces_dir: Path) -> tuple[list[Recorded], int]:
    """The recorded direct-answered call, answered on PJSIP/9913 instead of 101, and where the call begins."""
    stream = [
        Recorded(item.t, tuple((k, v.replace("PJSIP/101-", "PJSIP/9913-")) for k, v in item.headers))
        for item in load_ami(traces_dir / "direct-answered.ami")
        if isinstance(item, Recorded)
    ]
    first = next(i for i, item in enumerate(stream) if dict(item.headers).get("Event") == "Newchannel")
    return stream, first


async def test_a_manager_added_by_the_cli_while_running_is_classified_without_a_restart(
    pool: DaemonPool, db: Database, database_url: str, tmp_path: Path, traces_dir: Path
) -> None:
    """`crmtel manager add petr --extension 9913` while the daemon runs: the next call petr's desk phone answers
    is petr's (answered_by 9913), not ivan's browser phone (13) as until a restart before."""
    await ManagerRepository(db).save(login="ivan", name="Иван", extensions=("13",))
    stream, call_starts = _desk_phone_9913(traces_dir)
    linkedid = load_expected("direct-answered")["linkedid"]
    calls = CallRepository(db)
    async with serving(stream, pause_after=call_starts) as server:
        daemon, ports = spawn_run(pool, tmp_path, database_url, server.port, WEBPHONE)
        await daemon.wait_http(ports.web_url + "/")
        added = await crmtel_cli(
            "--config",
            str(tmp_path / "crmtel.toml"),
            "manager",
            "add",
            "--login",
            "petr",
            "--name",
            "Пётр",
            "--extension",
            "9913",
            cwd=tmp_path,
        )
        assert added.returncode == 0, added.stderr
        # The daemon says when it read the managers again; before the fix it never did (and the wait ran out).
        with contextlib.suppress(TimeoutError):
            await wait_until(_said(daemon.stderr, "added: 9913"), limit=15)
        server.resume()

        async def ended() -> bool:
            return linkedid in (await stored_state(calls)).ended

        await wait_until(ended, limit=30)
        assert daemon.alive(), daemon.describe()
        assert await daemon.terminate(limit=10) == 0, daemon.describe()
    assert clean_log(daemon.stderr()) == [], daemon.describe()
    stored = await calls.get("pbx1", linkedid)
    assert stored is not None
    assert stored.record.answered_by == "9913", daemon.describe()
    assert stored.record.rang == ("9913",)


def _said(read: Callable[[], str], text: str) -> Callable[[], Awaitable[bool]]:
    """An async predicate: the daemon's log says ``text``."""

    async def check() -> bool:
        return text in read()

    return check
