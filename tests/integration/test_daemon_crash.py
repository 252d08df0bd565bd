"""``crmtel run`` killed with SIGKILL, or cut off from its PBX, in the middle of calls: no call lost or doubled."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from crmtel.fakepbx.server import FakeAmiServer, StreamItem, load_ami, merge_streams
from crmtel.store.calls import CallRepository
from crmtel.store.db import Database
from tests.fixtures.daemon import (
    DaemonPool,
    StoredState,
    clean_log,
    daemon_config,
    linkedids,
    state_after,
    stored_state,
)
from tests.fixtures.fake_ami import assert_record_matches, wait_for, wait_until
from tests.fixtures.races import RACES_PROCESSES
from tests.fixtures.traces import SCENARIOS, load_expected
from tests.integration.test_ami_pipeline import serving

# Races real processes (tests/fixtures/races.py).
pytestmark = RACES_PROCESSES


# The fake PBX plays its stream in real time, sped up: a PBX sends events as calls happen, so the kill
# lands while calls are in progress rather than after a burst that delivered the whole stream at once.
SPEED = 8.0


def busy_pbx(traces_dir: Path, gap: float = 1.5) -> list[StreamItem]:
    """The nine real traces overlapping in time: several calls at once, as on a busy PBX."""
    return merge_streams([(i * gap, load_ami(traces_dir / f"{s}.ami")) for i, s in enumerate(SCENARIOS)])


def expectations() -> dict[str, dict[str, Any]]:
    """Every scenario's expected record, by Linkedid."""
    return {load_expected(s)["linkedid"]: load_expected(s) for s in SCENARIOS}


async def assert_each_call_once(calls: CallRepository, wanted: set[str]) -> None:
    """Exactly one row per call of the stream, every one finished (no live state left behind)."""
    counts = await calls.count()
    assert set(counts) == {("pbx1", linkedid) for linkedid in wanted}
    assert set(counts.values()) == {1}
    stored = await calls.between()
    assert all(s.record.ended_at is not None and s.live_state is None for s in stored)


async def wait_stored(calls: CallRepository, wanted: StoredState, limit: float = 30.0) -> None:
    """Poll the database until it holds exactly ``wanted`` (live and ended calls)."""

    async def reached() -> bool:
        return await stored_state(calls) == wanted

    try:
        await wait_until(reached, limit=limit)
    except TimeoutError:
        raise AssertionError(f"stored {await stored_state(calls)}, wanted {wanted}") from None


async def wait_all_ended(calls: CallRepository, wanted: set[str], limit: float = 30.0) -> None:
    """Poll the database until every call in ``wanted`` has ended."""

    async def reached() -> bool:
        return (await stored_state(calls)).ended >= wanted

    try:
        await wait_until(reached, limit=limit)
    except TimeoutError:
        raise AssertionError(f"stored {await stored_state(calls)}, wanted all ended of {wanted}") from None


async def wait_logins(server: FakeAmiServer, count: int, limit: float = 20.0) -> None:
    """Poll until the fake PBX has seen ``count`` logins in all."""
    await wait_for(lambda: server.logins >= count, limit=limit)


def restored_live(stderr: str) -> int | None:
    """The number of live calls the daemon said it restored from the database at start-up."""
    found = re.search(r"calls\.restored\b.*\blive=(\d+)", stderr)
    return int(found.group(1)) if found else None


@pytest.mark.parametrize("stop", ["kill-9", "sigterm"])
async def test_stop_mid_calls_then_restart_stores_every_call_once_with_its_outcome(
    pool: DaemonPool, db: Database, database_url: str, traces_dir: Path, tmp_path: Path, stop: str
) -> None:
    """SIGKILL or SIGTERM (systemctl restart) with calls in progress; the next daemon finishes each as expected."""
    stream = busy_pbx(traces_dir)
    expected = expectations()
    half = len(stream) // 2
    at_kill = state_after(stream[:half])
    assert at_kill.live, "the kill must land while calls are in progress"
    calls = CallRepository(db)
    async with serving(stream, pause_after=half, speed=SPEED) as server:
        config, ports = daemon_config(tmp_path / "crmtel.toml", database_url, server.port)
        first = pool.spawn("--config", str(config), "run", name="first")
        await first.wait_http(ports.web_url + "/")
        # Everything sent before the pause is written out (the daemon writes whenever it runs dry).
        await wait_stored(calls, at_kill)
        if stop == "kill-9":
            await first.kill9()
        else:
            assert await first.terminate(limit=5) == 0, first.describe()
            assert clean_log(first.stderr()) == [], first.describe()
            # A clean stop is not the end of the calls: they stay live, to be picked up by the next start.
            assert await stored_state(calls) == at_kill

        second = pool.spawn("--config", str(config), "run", name="second")
        await second.wait_http(ports.web_url + "/")
        assert restored_live(second.stderr()) == len(at_kill.live), second.describe()
        await wait_logins(server, 2)
        server.resume()
        await wait_all_ended(calls, set(expected))
        code = await second.terminate(limit=5)
    assert code == 0, second.describe()
    assert clean_log(second.stderr()) == [], second.describe()
    await assert_each_call_once(calls, set(expected))
    for stored in await calls.between():
        assert_record_matches(stored.record, expected[stored.record.linkedid])


async def test_kill_9_while_the_pbx_keeps_talking_loses_and_doubles_no_call(
    pool: DaemonPool, db: Database, database_url: str, traces_dir: Path, tmp_path: Path
) -> None:
    """SIGKILL at an arbitrary moment of a real-time stream, no waiting for writes: the restart ends every call once."""
    stream = busy_pbx(traces_dir, gap=0.7)
    wanted = linkedids(stream)
    calls = CallRepository(db)
    async with serving(stream, speed=SPEED) as server:
        config, ports = daemon_config(tmp_path / "crmtel.toml", database_url, server.port)
        first = pool.spawn("--config", str(config), "run", name="first")
        await first.wait_http(ports.web_url + "/")

        async def some_live() -> bool:
            return len((await stored_state(calls)).live) >= 2

        await wait_until(some_live, limit=20)
        await wait_for(lambda: server.cursor >= len(stream) // 2, limit=20)
        await first.kill9()
        killed_at = server.cursor
        assert killed_at < len(stream), "the stream must still be going when the daemon dies"

        second = pool.spawn("--config", str(config), "run", name="second")
        await second.wait_http(ports.web_url + "/")
        await wait_all_ended(calls, wanted)
        await wait_for(lambda: server.finished.is_set(), limit=20)
        code = await second.terminate(limit=5)
    assert code == 0, second.describe()
    assert clean_log(second.stderr()) == [], second.describe()
    assert server.logins == 2
    await assert_each_call_once(calls, wanted)


@pytest.mark.parametrize("lost", [0, 150], ids=["nothing-lost", "events-lost"])
async def test_pbx_connection_dropped_mid_calls_daemon_reconnects_and_stores_every_call_once(
    pool: DaemonPool, db: Database, database_url: str, traces_dir: Path, tmp_path: Path, lost: int
) -> None:
    """The AMI connection breaks mid-call (optionally losing events): the running daemon reconnects, resyncs, and every call is stored once."""
    stream = busy_pbx(traces_dir)
    expected = expectations()
    wanted = linkedids(stream)
    assert wanted == set(expected)
    calls = CallRepository(db)
    async with serving(stream, drop_after=len(stream) // 3, lose_on_drop=lost, speed=SPEED) as server:
        config, ports = daemon_config(tmp_path / "crmtel.toml", database_url, server.port)
        daemon = pool.spawn("--config", str(config), "run")
        await daemon.wait_http(ports.web_url + "/")
        await wait_all_ended(calls, wanted)
        assert server.logins == 2
        code = await daemon.terminate(limit=5)
    assert code == 0, daemon.describe()
    assert clean_log(daemon.stderr()) == [], daemon.describe()
    await assert_each_call_once(calls, wanted)
    if not lost:
        for stored in await calls.between():
            assert_record_matches(stored.record, expected[stored.record.linkedid])
