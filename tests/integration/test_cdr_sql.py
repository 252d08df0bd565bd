"""SQL CDR tables in real MariaDB (FreePBX's asteriskcdrdb.cdr) and PostgreSQL (cdr_pgsql), read-only."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from crmtel.calls.tracker import new_state
from crmtel.cdr.calls import call_from_legs, group_calls
from crmtel.cdr.models import CdrSourceUnavailable, CdrSpec
from crmtel.cdr.sqlsource import SqlCdrSource
from crmtel.domain import CallRecord
from crmtel.fakepbx.server import load_jsonl
from tests.fixtures.cdr_data import Leg, leg_of_row, legs_of_stream
from tests.fixtures.cdr_databases import MysqlCdr, PgCdr
from tests.fixtures.traces import SCENARIOS, TRACES_DIR, load_expected
from tests.unit.test_cdr_calls import assert_same_call
from tests.unit.test_cdr_dst import BERLIN, SECOND_0230, moved_legs
from tests.unit.test_cdr_same_rules import (
    WEBRTC,
    assert_one_call,
    clicks_master_csv,
    renamed,
    tracker_records,
)

MOSCOW = ZoneInfo("Europe/Moscow")


def _legs(scenario: str) -> list[Leg]:
    return legs_of_stream(load_jsonl(TRACES_DIR / f"{scenario}.jsonl"))


def _all_legs() -> list[Leg]:
    return [leg for scenario in SCENARIOS for leg in _legs(scenario)]


def _window(legs: list[Leg]) -> tuple[object, object]:
    return min(leg.start for leg in legs) - timedelta(minutes=1), max(leg.end for leg in legs) + timedelta(
        minutes=1
    )


async def test_freepbx_cdr_table_gives_every_trace_its_live_record(mysql_cdr: MysqlCdr) -> None:
    """Rows written as FreePBX writes them (Moscow time, calldate + duration/billsec) give each expected record."""
    legs = _all_legs()
    await mysql_cdr.insert(legs, MOSCOW)
    source = SqlCdrSource(CdrSpec.parse(mysql_cdr.url, mysql_cdr.table), MOSCOW)
    try:
        since, until = _window(legs)
        calls = group_calls(await source.legs(since, until))  # type: ignore[arg-type]
    finally:
        await source.close()
    assert len(calls) == len(SCENARIOS)
    for scenario in SCENARIOS:
        expected = load_expected(scenario)
        record = call_from_legs(new_state("pbx1"), expected["linkedid"], calls[expected["linkedid"]])
        assert record is not None
        # FreePBX keeps the recording's file name, not its folder.
        assert_same_call(record, expected, recording=expected["recording_file"].rpartition("/")[2])


async def test_freepbx_source_reads_only_its_period_and_by_linkedid(mysql_cdr: MysqlCdr) -> None:
    """Calls ending outside [since, until) are left out; legs_of fetches exactly the calls asked for."""
    legs = _all_legs()
    await mysql_cdr.insert(legs, MOSCOW)
    source = SqlCdrSource(CdrSpec.parse(mysql_cdr.url, mysql_cdr.table), MOSCOW)
    try:
        first = load_expected("direct-answered")["linkedid"]
        ends = {leg.linkedid: leg.end for leg in legs if leg.linkedid == first}
        rows = await source.legs(ends[first] - timedelta(seconds=1), ends[first] + timedelta(seconds=1))
        assert {r.linkedid for r in rows} == {first}
        wanted = {load_expected("wholesale-local-members")["linkedid"], first}
        rows = await source.legs_of(wanted, min(leg.start for leg in legs))
        assert {r.linkedid for r in rows} == wanted
        assert len(rows) == 3
    finally:
        await source.close()


async def test_bad_freepbx_rows_are_skipped_not_fatal(mysql_cdr: MysqlCdr) -> None:
    """A row with an impossible billsec or no ids is logged and skipped; the good calls still come."""
    legs = _legs("direct-answered")
    await mysql_cdr.insert(legs, MOSCOW)
    await mysql_cdr.execute(
        "INSERT INTO {table} (calldate, duration, billsec, uniqueid, linkedid) VALUES (%s, 5, 99, 'x.1', 'x.1')",
        legs[0].start.astimezone(MOSCOW).replace(tzinfo=None),
    )
    await mysql_cdr.execute(
        "INSERT INTO {table} (calldate, duration, billsec) VALUES (%s, 1, 0)",
        legs[0].start.astimezone(MOSCOW).replace(tzinfo=None),
    )
    source = SqlCdrSource(CdrSpec.parse(mysql_cdr.url, mysql_cdr.table), MOSCOW)
    try:
        rows = await source.legs(*_window(legs))  # type: ignore[arg-type]
    finally:
        await source.close()
    assert {r.linkedid for r in rows} == {legs[0].linkedid}
    assert source.skipped == 2


async def test_freepbx_session_is_read_only(mysql_cdr: MysqlCdr) -> None:
    """crmtel's sessions refuse writes on the server side, whatever the grant."""
    source = SqlCdrSource(CdrSpec.parse(mysql_cdr.url, mysql_cdr.table), MOSCOW)
    try:
        with pytest.raises(CdrSourceUnavailable, match="READ ONLY"):
            await source._query(f"DELETE FROM {mysql_cdr.table}", {})
    finally:
        await source.close()


async def test_cdr_pgsql_table_gives_every_trace_its_live_record(pg_cdr: PgCdr) -> None:
    """A cdr_pgsql table with start/answer/end columns (and newcdrcolumns) gives each expected record."""
    legs = _all_legs()
    await pg_cdr.insert(legs, MOSCOW)
    source = SqlCdrSource(CdrSpec.parse(pg_cdr.url, pg_cdr.table), MOSCOW)
    try:
        calls = group_calls(await source.legs(*_window(legs)))  # type: ignore[arg-type]
        with pytest.raises(CdrSourceUnavailable, match="read-only"):
            await source._query(f"DELETE FROM {pg_cdr.table}", {})
    finally:
        await source.close()
    assert len(calls) == len(SCENARIOS)
    for scenario in SCENARIOS:
        expected = load_expected(scenario)
        record = call_from_legs(new_state("pbx1"), expected["linkedid"], calls[expected["linkedid"]])
        assert record is not None
        assert_same_call(record, expected)


async def test_unreachable_database_is_a_clear_error() -> None:
    """A CDR database that refuses the connection raises CdrSourceUnavailable naming it, without the password."""
    source = SqlCdrSource(CdrSpec.parse("mysql://crmtel:s3cret@127.0.0.1:1/asteriskcdrdb"), MOSCOW)
    try:
        with pytest.raises(CdrSourceUnavailable) as info:
            await source.legs(*_window(_legs("direct-answered")))  # type: ignore[arg-type]
    finally:
        await source.close()
    assert "s3cret" not in str(info.value)
    assert "crmtel:***@127.0.0.1:1" in str(info.value)


async def _clicks_from(table: MysqlCdr | PgCdr) -> list[tuple[str, str | None]]:
    rows = [row for legs in clicks_master_csv().values() for row in legs]
    legs = [leg_of_row(row) for row in rows]
    await table.insert(legs, MOSCOW)
    source = SqlCdrSource(CdrSpec.parse(table.url, table.table), MOSCOW)
    try:
        calls = group_calls(await source.legs(*_window(legs)))  # type: ignore[arg-type]
    finally:
        await source.close()
    assert len(calls) == 6
    records = [call_from_legs(new_state("pbx1"), lid, legs) for lid, legs in calls.items()]
    return sorted((r.direction.value, r.caller_number) for r in records if r is not None)


KEPT = [("inbound", "+79991110035"), ("outbound", "131"), ("outbound", "135")]


async def test_failed_click_to_calls_are_no_calls_from_freepbx_mariadb(mysql_cdr: MysqlCdr) -> None:
    """The real click-to-call CDR (busy, rang out, declined: ``AppDial2``, never answered) in FreePBX's MariaDB
    table: those three are no calls; the answered click-to-calls and the queue call are."""
    assert await _clicks_from(mysql_cdr) == KEPT


async def test_failed_click_to_calls_are_no_calls_from_cdr_pgsql(pg_cdr: PgCdr) -> None:
    """The same CDR in a cdr_pgsql table: only the answered click-to-calls and the queue call are calls."""
    assert await _clicks_from(pg_cdr) == KEPT


async def test_freepbx_rows_in_the_repeated_dst_hour_are_read_at_their_true_time(mysql_cdr: MysqlCdr) -> None:
    """FreePBX's calldate (Berlin time, no offset) at the second 02:30 of 2026-10-25: the call starts at 01:30 UTC
    with its live talk time, not an hour early."""
    legs = moved_legs(SECOND_0230)
    await mysql_cdr.insert(legs, BERLIN)
    source = SqlCdrSource(CdrSpec.parse(mysql_cdr.url, mysql_cdr.table), BERLIN)
    try:
        since, until = _window(legs)
        calls = group_calls(await source.legs(since, until))  # type: ignore[arg-type]
    finally:
        await source.close()
    (linkedid,) = calls
    record = call_from_legs(new_state("pbx1"), linkedid, calls[linkedid])
    assert record is not None
    expected = load_expected("direct-answered")
    # At the middle of the second its reading stands for.
    assert record.started_at == SECOND_0230 + timedelta(seconds=0.5)
    assert record.talk_seconds == pytest.approx(expected["talk_seconds"], abs=1.0)


async def _call_across_the_fold_is_read(table: MysqlCdr | PgCdr) -> None:
    """A 15-minute call from 02:50 CEST (00:50 UTC) to 02:05 CET (01:05 UTC) across the end of DST, read by
    backfill passes every 5 minutes as ``CdrService`` makes them (since = the previous until - 300 s): every
    pass whose period holds the call's true end returns it, with its true times (none skips it)."""
    start = datetime(2026, 10, 25, 0, 50, tzinfo=UTC)
    longer = timedelta(minutes=15) - (max(leg.end for leg in moved_legs(start)) - start)
    legs = [
        replace(
            leg,
            end=leg.end + longer,
            duration=leg.duration + int(longer.total_seconds()),
            billsec=leg.billsec + (int(longer.total_seconds()) if leg.answer is not None else 0),
        )
        for leg in moved_legs(start)
    ]
    await table.insert(legs, BERLIN)
    source = SqlCdrSource(CdrSpec.parse(table.url, table.table), BERLIN)
    windows: list[tuple[datetime, datetime]] = []
    returned: list[tuple[datetime, datetime]] = []
    ends: set[datetime] = set()
    try:
        until = start - timedelta(minutes=5)
        for _ in range(40):
            since, until = until - timedelta(seconds=300), until + timedelta(minutes=5)
            windows.append((since, until))
            calls = group_calls(await source.legs(since, until))
            if not calls:
                continue
            (linkedid,) = calls
            record = call_from_legs(new_state("pbx1"), linkedid, calls[linkedid])
            assert record is not None
            assert record.started_at == start + timedelta(seconds=0.5)
            # FreePBX keeps no end (calldate + duration, whole seconds).
            assert record.ended_at is not None
            assert abs(record.ended_at - (start + timedelta(minutes=15))) <= timedelta(seconds=1)
            # A pass holds the call by the CDR's reading of its end.
            ends.add(max(leg.end for leg in calls[linkedid]))
            returned.append((since, until))
    finally:
        await source.close()
    assert returned, "no pass read the call: the watermark moved past a call never stored"
    (end,) = ends
    assert returned == [(lo, hi) for lo, hi in windows if lo <= end < hi]


async def test_freepbx_call_across_the_end_of_dst_is_read_by_the_passes(mysql_cdr: MysqlCdr) -> None:
    """calldate 02:50 (first reading) is above the naive bound 02:10 (second reading) of the pass that holds the
    call's end: the window is widened by the zone's offset change and kept by true instants, so it is read."""
    await _call_across_the_fold_is_read(mysql_cdr)


async def test_cdr_pgsql_call_across_the_end_of_dst_is_read_by_the_passes(pg_cdr: PgCdr) -> None:
    """The same call in a cdr_pgsql table (``start`` in local time without zone)."""
    await _call_across_the_fold_is_read(pg_cdr)


async def _webrtc_calls_from(table: MysqlCdr | PgCdr, *, file_name_only: bool) -> None:
    """Every trace with its phones as FreePBX's WebRTC devices ``99<ext>``, written into ``table`` and read back:
    each call is the tracker's record, queue waits included, with users (not devices) named."""
    state = new_state("pbx1", device_prefixes=WEBRTC)
    live: dict[str, CallRecord] = {}
    legs: list[Leg] = []
    for scenario in SCENARIOS:
        messages = renamed(scenario)
        record, stream = tracker_records(state, messages)
        live[record.linkedid] = record
        legs += legs_of_stream(stream)
    await table.insert(legs, MOSCOW)
    source = SqlCdrSource(CdrSpec.parse(table.url, table.table), MOSCOW)
    try:
        calls = group_calls(await source.legs(*_window(legs)))  # type: ignore[arg-type]
    finally:
        await source.close()
    assert set(calls) == set(live)
    for linkedid, record in live.items():
        cdr = call_from_legs(state, linkedid, calls[linkedid])
        assert cdr is not None
        if file_name_only and record.recording_file:
            # FreePBX keeps the recording's file name, not its folder.
            record = replace(record, recording_file=record.recording_file.rpartition("/")[2])
        assert_one_call(record, cdr)
        assert not any(ext.startswith("99") for ext in (*cdr.rang, cdr.answered_by or "")), cdr


async def test_freepbx_webrtc_devices_and_queue_waits_from_mariadb(mysql_cdr: MysqlCdr) -> None:
    """FreePBX's MariaDB CDR of calls rung on 99<ext> devices: the tracker's records, users and queue waits."""
    await _webrtc_calls_from(mysql_cdr, file_name_only=True)


async def test_webrtc_devices_and_queue_waits_from_cdr_pgsql(pg_cdr: PgCdr) -> None:
    """The same calls in a cdr_pgsql table: the tracker's records, users and queue waits."""
    await _webrtc_calls_from(pg_cdr, file_name_only=False)
