"""Backfill from real CDR data into a real store: calls never seen are created as a live run would have
stored them, calls that ended while crmtel was away get their true times, and a second run changes nothing."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import sqlalchemy as sa

from crmtel.ami.client import AmiClient
from crmtel.ami.protocol import Message
from crmtel.calls.commands import replay_stream
from crmtel.calls.service import CallService
from crmtel.calls.tracker import new_state, snapshot
from crmtel.calls.tracker.model import Call, build_record
from crmtel.cdr import service as cdr_service
from crmtel.cdr.csvsource import CsvCdrSource
from crmtel.cdr.service import Backfill, CdrService
from crmtel.config import CallsSettings, Settings
from crmtel.domain import CallRecord, Direction, Outcome, QueueOutcome, QueueVisit
from crmtel.fakepbx.server import FakeAmiServer, Recorded, load_ami, load_jsonl, merge_streams
from crmtel.reports.models import Period
from crmtel.reports.queue_models import QueueReport
from crmtel.reports.queue_queries import QueueQueries
from crmtel.store.calls import CallRepository
from crmtel.store.db import Database
from crmtel.store.managers import ManagerRepository
from crmtel.store.parties import PartyRepository
from crmtel.store.tasks import TaskRepository
from crmtel.store.watermarks import WatermarkRepository
from tests.fixtures.cdr_data import Leg, legs_of_stream, write_master_csv
from tests.fixtures.cdr_databases import MysqlCdr
from tests.fixtures.fake_ami import assert_record_matches, running, settings_for, wait_until
from tests.fixtures.traces import SCENARIOS, TRACES_DIR, load_expected
from tests.unit.test_cdr_calls import assert_same_call

MOSCOW = ZoneInfo("Europe/Moscow")


def _legs() -> list[Leg]:
    return [leg for s in SCENARIOS for leg in legs_of_stream(load_jsonl(TRACES_DIR / f"{s}.jsonl"))]


def _service(db: Database) -> CallService:
    return CallService(db, CallsSettings(default_owner="anna"), PartyRepository(db))


def _period(legs: list[Leg]) -> tuple[object, object]:
    return min(x.start for x in legs) - timedelta(minutes=5), max(x.end for x in legs) + timedelta(minutes=5)


async def test_calls_never_seen_are_created_as_a_live_run_stores_them_and_twice_changes_nothing(
    db: Database, tmp_path: Path
) -> None:
    """Nine calls only in Master.csv (Moscow time): each stored as its expected record, with tasks and leads."""
    await ManagerRepository(db).save(login="anna", name="Анна Смирнова", extensions=("101",))
    legs = _legs()
    master = write_master_csv(tmp_path / "Master.csv", legs, MOSCOW)
    calls = _service(db)
    backfill = Backfill("pbx1", CsvCdrSource(master, MOSCOW), calls)
    since, until = _period(legs)
    first = await backfill.window(since, until)  # type: ignore[arg-type]
    assert (first.created, first.corrected, first.unchanged) == (len(SCENARIOS), 0, 0)
    stored = {s.record.linkedid: s.record for s in await CallRepository(db).between()}
    for scenario in SCENARIOS:
        expected = load_expected(scenario)
        assert_same_call(stored[expected["linkedid"]], expected)
    # The missed inbound calls became callback tasks, the unknown callers leads, as for a live call.
    missed = {r.caller_number for r in stored.values() if r.outcome is Outcome.MISSED and r.caller_number}
    assert {t.phone for t in await TaskRepository(db).open_tasks()} == missed
    assert all(
        r.party_kind is not None
        for r in stored.values()
        if r.direction.value == "inbound" and r.caller_number
    )

    again = await Backfill("pbx1", CsvCdrSource(master, MOSCOW), _service(db)).window(since, until)  # type: ignore[arg-type]
    assert (again.created, again.corrected, again.unchanged) == (0, 0, len(SCENARIOS))
    assert [t.missed_count for t in await TaskRepository(db).open_tasks()] == [1] * len(missed)


async def test_calls_seen_live_are_left_as_they_are(db: Database, traces_dir: Path, tmp_path: Path) -> None:
    """Every trace followed live, then a backfill over the same period: nothing changes (live details kept)."""
    settings = Settings(database_url=db.url)
    stream = merge_streams([(i * 30.0, load_ami(traces_dir / f"{s}.ami")) for i, s in enumerate(SCENARIOS)])
    await replay_stream(settings, db, [item for item in stream if isinstance(item, Recorded)], settle=0.05)
    before = {s.record.linkedid: s.record for s in await CallRepository(db).between()}
    legs = legs_of_stream([item for item in stream if isinstance(item, Recorded)])
    master = write_master_csv(tmp_path / "Master.csv", legs, MOSCOW)
    report = await Backfill("pbx1", CsvCdrSource(master, MOSCOW), _service(db)).window(*_period(legs))  # type: ignore[arg-type]
    assert (report.created, report.corrected, report.unchanged) == (0, 0, len(SCENARIOS))
    after = {s.record.linkedid: s.record for s in await CallRepository(db).between()}
    assert after == before


def _queue_figures(report: QueueReport) -> dict[str, tuple[object, ...]]:
    return {
        q.queue: (
            q.offered,
            q.answered,
            q.abandoned,
            q.exited,
            q.answered_within_sl,
            tuple((m.extension, m.offered, m.answered) for m in q.members),
        )
        for q in report.queues
    }


async def _queue_report(db: Database, records: list[CallRecord]) -> QueueReport:
    first = min(r.started_at for r in records).date()
    return await QueueQueries(db).queues(Period(first, first + timedelta(days=2), "UTC"))


async def test_the_queue_report_of_calls_rebuilt_from_the_cdr_is_the_live_one(
    db: Database, traces_dir: Path, tmp_path: Path
) -> None:
    """Every trace followed live, then the same calls known only from Master.csv (the store emptied): the queue
    report counts the same offers, answers, abandons and exits per queue and per member, waits within 1 s."""
    settings = Settings(database_url=db.url)
    stream = merge_streams([(i * 30.0, load_ami(traces_dir / f"{s}.ami")) for i, s in enumerate(SCENARIOS)])
    recorded = [item for item in stream if isinstance(item, Recorded)]
    await replay_stream(settings, db, recorded, settle=0.05)
    live_records = [s.record for s in await CallRepository(db).between()]
    live = await _queue_report(db, live_records)
    assert sum(q.offered for q in live.queues) >= 6, live
    async with db.engine.begin() as conn:
        for table in ("call_queue_offers", "call_queue_visits", "tasks", "calls"):
            await conn.execute(sa.text(f"DELETE FROM {table}"))
    legs = legs_of_stream(recorded)
    master = write_master_csv(tmp_path / "Master.csv", legs, MOSCOW)
    report = await Backfill("pbx1", CsvCdrSource(master, MOSCOW), _service(db)).window(*_period(legs))  # type: ignore[arg-type]
    assert report.created == len(SCENARIOS)
    rebuilt = await _queue_report(db, live_records)
    assert _queue_figures(rebuilt) == _queue_figures(live)
    for a, b in zip(live.queues, rebuilt.queues, strict=True):
        for x, y in ((a.wait_avg_s, b.wait_avg_s), (a.abandon_wait_avg_s, b.abandon_wait_avg_s)):
            assert (x is None) == (y is None)
            assert x is None or y is None or abs(x - y) <= 1.0, (a, b)


async def test_a_live_call_closed_without_its_tracker_keeps_its_queue_wait(db: Database) -> None:
    """A call stored as live while its caller waited in a queue, whose tracker state is gone (no CDR source):
    the pass that closes it stores its wait, so the queue report counts it (abandoned, offered to 102)."""
    at = datetime(2026, 12, 6, 9, 0, tzinfo=UTC)
    wait = QueueVisit(queue="retail", joined_at=at + timedelta(seconds=2), offered=("102",))
    call = Call(
        linkedid="1796500000.1",
        started_at=at,
        direction=Direction.INBOUND,
        caller_number="+79161110001",
        queue="retail",
        in_queue=True,
        rang=("102",),
        queue_visits=(wait,),
    )
    state = replace(new_state("pbx1"), calls={call.linkedid: call})
    live = snapshot(state, call.linkedid)
    assert live is not None
    record = build_record(state, call)
    repo = CallRepository(db)
    await repo.upsert(record, live)
    calls = _service(db)
    cdr = CdrService(calls, WatermarkRepository(db), {}, {})
    task = asyncio.create_task(cdr.run(), name="test-cdr")
    try:
        cdr.resynced("pbx1", at + timedelta(seconds=30))
        await asyncio.sleep(0)
        await cdr.idle()
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
    key = ("pbx1", call.linkedid)
    stored = (await repo.by_keys([key]))[key].record
    assert stored.ended_at == at + timedelta(seconds=30)
    assert [(w.queue, w.outcome, w.offered, w.wait_seconds) for w in stored.queue_visits] == [
        ("retail", QueueOutcome.ABANDONED, ("102",), 28.0)
    ]


def _lose_the_end(stream: list[Recorded], later: float) -> tuple[list[Recorded], int]:
    """The stream with a quiet event ``later`` seconds after its end; the index of the first Hangup."""
    first_hangup = next(i for i, item in enumerate(stream) if Message(item.headers).event == "Hangup")
    tail = Recorded(
        stream[-1].t + later,
        (("Event", "DeviceStateChange"), ("Device", "PJSIP/199"), ("State", "NOT_INUSE")),
    )
    return [*stream, tail], first_hangup


@pytest.mark.parametrize(
    "scenario", ["direct-answered", "direct-noanswer-then-queue", "wholesale-local-members"]
)
async def test_call_that_ended_while_away_gets_its_true_talk_time(
    db: Database, traces_dir: Path, tmp_path: Path, scenario: str
) -> None:
    """The connection drops before the hangups; crmtel is back 20 s later: the CDR gives the true end and talk."""
    expected = load_expected(scenario)
    stream, cut = _lose_the_end(load_ami(traces_dir / f"{scenario}.ami"), later=20.0)
    master = write_master_csv(tmp_path / "Master.csv", legs_of_stream(stream), MOSCOW)
    calls = _service(db)
    watermarks = WatermarkRepository(db)
    cdr = CdrService(calls, watermarks, {"pbx1": Backfill("pbx1", CsvCdrSource(master, MOSCOW), calls)}, {})
    calls.amender = cdr
    server = FakeAmiServer(stream, drop_after=cut, lose_on_drop=len(stream) - cut)
    await server.start()
    try:
        client = AmiClient(settings_for(server), calls)
        repo = CallRepository(db)

        async def ended() -> bool:
            found = await repo.get("pbx1", expected["linkedid"])
            return found is not None and found.record.ended_at is not None

        async with running(client):
            await wait_until(ended)
    finally:
        await server.close()
    stored = await repo.get("pbx1", expected["linkedid"])
    assert stored is not None
    # Everything the live run saw is kept (rang, route, recording path), and the times are the true ones.
    assert_record_matches(stored.record, expected)


async def test_freepbx_table_backfills_calls_never_seen(db: Database, mysql_cdr: MysqlCdr) -> None:
    """The same through FreePBX's cdr table in MariaDB: every call created once, a second pass unchanged."""
    from crmtel.cdr.models import CdrSpec
    from crmtel.cdr.sqlsource import SqlCdrSource

    legs = _legs()
    await mysql_cdr.insert(legs, MOSCOW)
    for attempt in range(2):
        source = SqlCdrSource(CdrSpec.parse(mysql_cdr.url, mysql_cdr.table), MOSCOW)
        try:
            report = await Backfill("pbx1", source, _service(db)).window(*_period(legs))  # type: ignore[arg-type]
        finally:
            await source.close()
        counts = (report.created, report.corrected, report.unchanged)
        assert counts == ((len(SCENARIOS), 0, 0) if attempt == 0 else (0, 0, len(SCENARIOS)))
    assert len(await CallRepository(db).count()) == len(SCENARIOS)


async def test_broken_csv_lines_are_skipped_and_logged(
    db: Database, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Garbage, a cut line and a bad date among the real lines: the good calls come in, the rest is logged."""
    legs = _legs()
    master = write_master_csv(tmp_path / "Master.csv", legs[:5], MOSCOW)
    with master.open("a", encoding="utf-8") as fh:
        fh.write('"garbage","with","too","few","columns"\n')
        fh.write('\x00\x01\xff not csv at all "\n')
        fh.write(
            '"","1","2","ctx","clid","PJSIP/a-1","","Dial","x","2026-02-31 10:00:00","","2026-02-31 10:00:01",1,0,"NO ANSWER","DOCUMENTATION","1.1",""\n'
        )
    write_master_csv(master, legs[5:], MOSCOW)
    source = CsvCdrSource(master, MOSCOW)
    with caplog.at_level(logging.WARNING, logger="crmtel.cdr.csvsource"):
        report = await Backfill("pbx1", source, _service(db)).window(*_period(legs))  # type: ignore[arg-type]
    assert report.created == len(SCENARIOS)
    assert source.skipped == 3
    assert "line skipped" in caplog.text


def _cut_after_queue_join(stream: list[Recorded], later: float) -> tuple[list[Recorded], int]:
    """The stream cut right after the caller joins the queue (the rest is lost), a quiet event ``later`` s on."""
    joined = next(i for i, item in enumerate(stream) if Message(item.headers).event == "QueueCallerJoin")
    tail = Recorded(
        stream[-1].t + later,
        (("Event", "DeviceStateChange"), ("Device", "PJSIP/199"), ("State", "NOT_INUSE")),
    )
    return [*stream, tail], joined + 1


@pytest.mark.parametrize(
    ("scenario", "outcome", "answered_by"),
    [
        ("queue-abandoned", QueueOutcome.ABANDONED, None),
        ("queue-ringall-answered", QueueOutcome.ANSWERED, "103"),
        ("direct-noanswer-then-queue", QueueOutcome.ANSWERED, "102"),
    ],
)
async def test_a_queue_wait_crmtel_did_not_see_end_gets_the_cdrs_outcome_and_wait(
    db: Database,
    traces_dir: Path,
    tmp_path: Path,
    scenario: str,
    outcome: QueueOutcome,
    answered_by: str | None,
) -> None:
    """The link drops while the caller waits in the queue; crmtel is back 600 s later and the resync closes the
    call: its stored queue wait is how the PBX ended it (answered by whom, or abandoned) and as long as it was,
    not "abandoned" after 600 s."""
    expected = load_expected(scenario)
    stream, cut = _cut_after_queue_join(load_ami(traces_dir / f"{scenario}.ami"), later=600.0)
    master = write_master_csv(tmp_path / "Master.csv", legs_of_stream(stream), MOSCOW)
    calls = _service(db)
    cdr = CdrService(
        calls, WatermarkRepository(db), {"pbx1": Backfill("pbx1", CsvCdrSource(master, MOSCOW), calls)}, {}
    )
    calls.amender = cdr
    server = FakeAmiServer(stream, drop_after=cut, lose_on_drop=len(stream) - 1 - cut)
    await server.start()
    repo = CallRepository(db)
    key = ("pbx1", expected["linkedid"])
    try:
        client = AmiClient(settings_for(server), calls)

        async def ended() -> bool:
            found = await repo.get(*key)
            return found is not None and found.record.ended_at is not None

        async with running(client):
            await wait_until(ended)
    finally:
        await server.close()
    stored = (await repo.by_keys([key]))[key].record
    assert stored.talk_seconds == pytest.approx(expected["talk_seconds"], abs=1.0)
    (visit,) = stored.queue_visits
    assert (visit.queue, visit.outcome, visit.answered_by) == (expected["queue"], outcome, answered_by)
    assert set(visit.offered) == set(expected["rang"])
    assert visit.wait_seconds is not None
    assert visit.wait_seconds < 15, visit


@pytest.mark.parametrize("with_cdr", [True, False], ids=["with-cdr", "without-cdr"])
async def test_periodic_check_closes_a_call_whose_hangup_never_came(
    db: Database, traces_dir: Path, tmp_path: Path, with_cdr: bool
) -> None:
    """The Hangups are lost on a connection that stays up: the periodic CoreShowChannels closes the call,
    with the CDR's end and talk time when there is a CDR, with what was known otherwise; it never stays live."""
    scenario = "direct-answered"
    expected = load_expected(scenario)
    stream, cut = _lose_the_end(load_ami(traces_dir / f"{scenario}.ami"), later=20.0)
    master = write_master_csv(tmp_path / "Master.csv", legs_of_stream(stream), MOSCOW)
    calls = _service(db)
    backfills = {"pbx1": Backfill("pbx1", CsvCdrSource(master, MOSCOW), calls)} if with_cdr else {}
    cdr = CdrService(calls, WatermarkRepository(db), backfills, {})
    calls.amender = cdr
    server = FakeAmiServer(stream, pause_after=cut)
    await server.start()
    repo = CallRepository(db)
    try:
        client = AmiClient(settings_for(server), calls)

        async def live() -> bool:
            found = await repo.get("pbx1", expected["linkedid"])
            return found is not None and found.record.ended_at is None

        async def ended() -> bool:
            found = await repo.get("pbx1", expected["linkedid"])
            return found is not None and found.record.ended_at is not None

        async with running(client):
            tasks = [
                asyncio.create_task(client.reconcile_every(0.2), name="test-reconcile"),
                asyncio.create_task(cdr.run(), name="test-cdr"),
            ]
            try:
                await wait_until(live)
                # The rest of the call happens, but its events never reach crmtel (the link stays up).
                server.advance(len(stream) - cut)
                await wait_until(ended)
            finally:
                for task in tasks:
                    task.cancel()
                for task in tasks:
                    with contextlib.suppress(asyncio.CancelledError):
                        await task
    finally:
        await server.close()
    stored = await repo.get("pbx1", expected["linkedid"])
    assert stored is not None
    assert stored.live_state is None
    if with_cdr:
        assert_record_matches(stored.record, expected)
    else:
        # Closed when crmtel noticed: 20 s of silence more than the real talk time.
        assert stored.record.talk_seconds > expected["talk_seconds"] + 15


async def test_a_long_period_is_read_slice_by_slice_and_each_call_lands_whole(
    db: Database, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With 2-second slices every call's legs end in several slices: each call still lands once, whole."""
    monkeypatch.setattr(cdr_service, "SLICE", timedelta(seconds=2))
    legs = _legs()
    master = write_master_csv(tmp_path / "Master.csv", legs, MOSCOW)
    report = await Backfill("pbx1", CsvCdrSource(master, MOSCOW), _service(db)).window(*_period(legs))  # type: ignore[arg-type]
    assert (report.created, report.corrected) == (len(SCENARIOS), 0)
    stored = {s.record.linkedid: s.record for s in await CallRepository(db).between()}
    for scenario in SCENARIOS:
        expected = load_expected(scenario)
        assert_same_call(stored[expected["linkedid"]], expected)


class _BrokenSource(CsvCdrSource):
    async def legs_of(self, linkedids: object, since: object) -> list[Any]:
        raise RuntimeError("a bug in reading")


async def test_a_failing_cdr_read_never_stops_a_resync_from_closing_calls(
    db: Database, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The CDR read blows up: the closed calls are kept as last seen (logged), nothing is raised into the resync."""
    calls = _service(db)
    service = CdrService(
        calls,
        WatermarkRepository(db),
        {"pbx1": Backfill("pbx1", _BrokenSource(tmp_path / "none.csv", MOSCOW), calls)},
        {},
    )
    record = CallRecord(
        pbx="pbx1",
        linkedid="1.1",
        direction=Direction.INBOUND,
        caller_number=None,
        caller_name=None,
        dialled=None,
        started_at=datetime(2026, 11, 23, 19, 0, tzinfo=UTC),
    )
    with caplog.at_level(logging.ERROR, logger="crmtel.cdr.service"):
        assert await service.amend("pbx1", [record], record.started_at) == {}
    assert "kept as last seen" in caplog.text
