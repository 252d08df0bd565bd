"""The CDR reader never lets one row decide the fate of others (issue 27): rows with a wrong clock, files out of
order, lines without end, quoted newlines, cp1251, Linkedids used twice, rows still being written."""

from __future__ import annotations

import asyncio
import contextlib
import random
import tracemalloc
from collections.abc import Sequence
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import aiomysql  # type: ignore[import-untyped]

from crmtel.calls.service import CallService
from crmtel.cdr.csvsource import CsvCdrSource
from crmtel.cdr.models import CdrSpec
from crmtel.cdr.service import Backfill, CdrService
from crmtel.cdr.sqlsource import SqlCdrSource
from crmtel.config import CallsSettings
from crmtel.fakepbx.server import load_jsonl
from crmtel.store.calls import CallRepository
from crmtel.store.db import Database
from crmtel.store.parties import PartyRepository
from crmtel.store.watermarks import WatermarkRepository
from tests.fixtures.cdr_data import FREEPBX_CDR_TABLE, Leg, csv_line, legs_of_stream, write_master_csv
from tests.fixtures.cdr_databases import MYSQL, MysqlCdr, PgCdr
from tests.fixtures.traces import TRACES_DIR, load_expected
from tests.unit.test_cdr_calls import assert_same_call

MOSCOW = ZoneInfo("Europe/Moscow")
FUTURE = datetime(2099, 6, 1, 12, 0, tzinfo=UTC)
PAST = datetime(2001, 3, 1, 9, 0, tzinfo=UTC)


def _leg(scenario: str) -> Leg:
    (leg,) = legs_of_stream(load_jsonl(TRACES_DIR / f"{scenario}.jsonl"))
    return leg


def _copy(leg: Leg, linkedid: str, start: datetime, **changes: object) -> Leg:
    """The same one-leg call under another Linkedid, moved to ``start``."""
    shift = start - leg.start
    return replace(
        leg,
        linkedid=linkedid,
        uniqueid=linkedid,
        start=start,
        answer=leg.answer + shift if leg.answer is not None else None,
        end=leg.end + shift,
        **changes,  # type: ignore[arg-type]
    )


def _service(db: Database) -> CallService:
    return CallService(db, CallsSettings(create_leads_for_unknown=False), PartyRepository(db))


def _around(legs: Sequence[Leg]) -> tuple[datetime, datetime]:
    plausible = [leg for leg in legs if PAST.year < leg.start.year < FUTURE.year]
    return min(x.start for x in plausible) - timedelta(minutes=5), max(x.end for x in plausible) + timedelta(
        minutes=5
    )


async def _stored(db: Database) -> dict[str, object]:
    return {s.record.linkedid: s.record for s in await CallRepository(db).between()}


async def test_a_row_dated_2099_between_two_calls_hides_neither(db: Database, tmp_path: Path) -> None:
    """A 3-line Master.csv: a call, a row ending in 2099, a call: both calls are created, the 2099 row is
    skipped and logged alone."""
    first, second = _leg("direct-answered"), _leg("direct-caller-gives-up")
    future = _copy(first, "4084164000.1", FUTURE)
    master = write_master_csv(tmp_path / "Master.csv", [first, future, second], MOSCOW)
    source = CsvCdrSource(master, MOSCOW)
    report = await Backfill("pbx1", source, _service(db)).window(*_around([first, second]))
    assert (report.created, source.skipped) == (2, 1)
    stored = await _stored(db)
    for scenario in ("direct-answered", "direct-caller-gives-up"):
        expected = load_expected(scenario)
        assert_same_call(stored[expected["linkedid"]], expected)  # type: ignore[arg-type]
    assert "4084164000.1" not in stored


async def _one_pass(cdr: CdrService, at: datetime) -> None:
    cdr.resynced("pbx1", at)
    await asyncio.sleep(0)
    await cdr.idle()


async def test_the_daemon_s_passes_read_past_a_2099_row_and_keep_the_watermark_before_a_row_being_written(
    db: Database, tmp_path: Path
) -> None:
    """Passes over a file with a 2099 row create every call; a record the PBX is still writing (the file ends
    inside it) holds the watermark, and the next pass, once it is whole, creates that call too."""
    first, second = _leg("direct-answered"), _leg("direct-caller-gives-up")
    third = _copy(first, "1795470000.1", first.start + timedelta(hours=1))
    master = write_master_csv(tmp_path / "Master.csv", [first, _copy(first, "4084164000.1", FUTURE)], MOSCOW)
    calls = _service(db)
    watermarks = WatermarkRepository(db)
    mark = first.start - timedelta(minutes=1)
    await watermarks.advance("pbx1", mark)
    cdr = CdrService(calls, watermarks, {"pbx1": Backfill("pbx1", CsvCdrSource(master, MOSCOW), calls)}, {})
    runner = asyncio.create_task(cdr.run(), name="test-cdr")
    try:
        write_master_csv(master, [second], MOSCOW)
        line = csv_line(third, MOSCOW)
        with master.open("a", encoding="utf-8") as fh:
            fh.write(line[:40])
        await _one_pass(cdr, third.end + timedelta(minutes=1))
        assert set(await _stored(db)) == {first.linkedid, second.linkedid}
        assert await watermarks.get("pbx1") == mark
        with master.open("a", encoding="utf-8") as fh:
            fh.write(line[40:])
        at = third.end + timedelta(minutes=2)
        await _one_pass(cdr, at)
        assert set(await _stored(db)) == {first.linkedid, second.linkedid, third.linkedid}
        assert await watermarks.get("pbx1") == at
    finally:
        runner.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await runner


async def test_an_unordered_file_with_a_block_dated_2001_gives_every_call(
    db: Database, tmp_path: Path
) -> None:
    """2,000 calls written out of order with 200 rows dated 2001 in the middle, read with small index blocks:
    every call is created once, a second read changes nothing (the full-size figure: bench/cdr_reader.py)."""
    base = _leg("direct-answered")
    calls = [_copy(base, f"1795{i:06d}.{i}", base.start + timedelta(seconds=7 * i)) for i in range(2000)]
    old = [_copy(base, f"9830{i:06d}.{i}", PAST + timedelta(seconds=7 * i)) for i in range(200)]
    rng = random.Random(27)
    chunks = [calls[i : i + 50] for i in range(0, len(calls), 50)]
    rng.shuffle(chunks)
    order = (
        [leg for chunk in chunks[:20] for leg in chunk]
        + old
        + [leg for chunk in chunks[20:] for leg in chunk]
    )
    master = write_master_csv(tmp_path / "Master.csv", order, MOSCOW)
    source = CsvCdrSource(master, MOSCOW, block_size=4096)
    backfill = Backfill("pbx1", source, _service(db))
    report = await backfill.window(*_around(calls))
    assert (report.created, report.corrected, source.skipped) == (2000, 0, 0)
    again = await backfill.window(*_around(calls))
    assert (again.created, again.unchanged) == (0, 2000)
    assert len(await _stored(db)) == 2000


async def test_quoted_newlines_cp1251_and_lines_without_end_cost_no_other_call(
    db: Database, tmp_path: Path
) -> None:
    """A caller name with a newline inside its quotes, a cp1251 name, a NUL, a 50 MB line and a 10,000-character
    field: the two real calls come in with their names; the reader's memory stays within a few MB."""
    first, second = _leg("direct-answered"), _leg("direct-caller-gives-up")
    newline = replace(first, clid='"Ivan\nPetrov" <79161110001>')
    cyrillic = csv_line(replace(second, clid='"Иван Петров" <79161110001>'), MOSCOW).encode("cp1251")
    third = _copy(first, "1795470000.1", first.start + timedelta(minutes=30))
    master = tmp_path / "Master.csv"
    with master.open("wb") as fh:
        fh.write(csv_line(newline, MOSCOW).encode())
        fh.write(b'"garbage with a stray quote,"x",1,2\n')
        fh.write(b"\x00" * 10 + b"\n")
        fh.write(b'"' + b"x" * (50 * 1024 * 1024) + b'"\n')
        fh.write(csv_line(replace(third, lastdata="y" * 10_000), MOSCOW).encode())
        fh.write(cyrillic)
    source = CsvCdrSource(master, MOSCOW)
    tracemalloc.start()
    try:
        rows = await source.legs(*_around([first, second, third]))
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 8 * 1024 * 1024, peak
    assert {r.linkedid for r in rows} == {first.linkedid, second.linkedid}
    assert source.skipped == 4
    report = await Backfill("pbx1", source, _service(db)).window(*_around([first, second, third]))
    assert report.created == 2
    stored = await _stored(db)
    assert stored[first.linkedid].caller_name == "Ivan\nPetrov"  # type: ignore[attr-defined]
    assert stored[second.linkedid].caller_name == "Иван Петров"  # type: ignore[attr-defined]
    assert source.cp1251_rows >= 1


async def test_a_linkedid_used_by_two_calls_gives_two_calls(db: Database, tmp_path: Path) -> None:
    """The PBX's clock went back and a later call got an old Linkedid: both calls are stored apart (the later
    keyed by Linkedid and start), read together or in separate passes, and a second backfill changes nothing."""
    first = _leg("direct-answered")
    later = _copy(
        first,
        first.linkedid,
        first.start + timedelta(hours=3),
        clid='"Olga" <79165550005>',
        src="79165550005",
    )
    master = write_master_csv(tmp_path / "Master.csv", [first, later], MOSCOW)
    backfill = Backfill("pbx1", CsvCdrSource(master, MOSCOW), _service(db))
    report = await backfill.window(first.start - timedelta(minutes=1), first.end + timedelta(minutes=1))
    report2 = await backfill.window(later.start - timedelta(minutes=1), later.end + timedelta(minutes=1))
    assert (report.created, report2.created) == (1, 1)
    again = await backfill.window(*_around([first, later]))
    assert (again.created, again.corrected, again.unchanged) == (0, 0, 2)
    stored = await _stored(db)
    reused = f"{first.linkedid}@{int(later.start.timestamp())}"
    assert set(stored) == {first.linkedid, reused}
    assert stored[first.linkedid].caller_number == "+79161110001"  # type: ignore[attr-defined]
    assert stored[reused].caller_number == "+79165550005"  # type: ignore[attr-defined]


async def test_freepbx_table_with_a_2099_row_cp1251_in_latin1_and_a_reused_linkedid(
    db: Database, mysql_cdr: MysqlCdr
) -> None:
    """MariaDB: a 2099 row between two calls hides neither; a latin1 table holding cp1251 bytes gives the
    Cyrillic name; a reused Linkedid gives two calls."""
    first, second = _leg("direct-answered"), _leg("direct-caller-gives-up")
    later = _copy(first, first.linkedid, first.start + timedelta(hours=3), src="79165550005")
    await mysql_cdr.execute("DROP TABLE {table}")
    await mysql_cdr.execute(FREEPBX_CDR_TABLE.replace("utf8mb4", "latin1"))
    await mysql_cdr.insert([first, _copy(first, "4084164000.1", FUTURE), later], MOSCOW)
    # Written by a PBX speaking cp1251 to a latin1 table: the bytes are cp1251.
    conn = await aiomysql.connect(**MYSQL, charset="latin1", autocommit=True)
    try:
        async with conn.cursor() as cur:
            await cur.execute(
                f"INSERT INTO {mysql_cdr.table} (calldate, clid, src, dst, dcontext, channel, dstchannel, lastapp,"
                " lastdata, duration, billsec, disposition, uniqueid, linkedid, sequence)"
                " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)",
                (
                    second.start.astimezone(MOSCOW).replace(tzinfo=None),
                    '"Иван Петров" <79161110001>'.encode("cp1251").decode("latin1"),
                    second.src,
                    second.dst,
                    second.dcontext,
                    second.channel,
                    second.dstchannel,
                    second.lastapp,
                    second.lastdata,
                    second.duration,
                    second.billsec,
                    second.disposition,
                    second.uniqueid,
                    second.linkedid,
                    second.sequence,
                ),
            )
    finally:
        conn.close()
    source = SqlCdrSource(CdrSpec.parse(mysql_cdr.url, mysql_cdr.table), MOSCOW)
    try:
        report = await Backfill("pbx1", source, _service(db)).window(*_around([first, second, later]))
        # Read up to "now" (no end), the 2099 row is selected too: skipped alone.
        open_ended = await source.legs(_around([first])[0])
    finally:
        await source.close()
    assert report.created == 3
    assert source.skipped == 1
    assert "4084164000.1" not in {r.linkedid for r in open_ended}
    stored = await _stored(db)
    assert stored[second.linkedid].caller_name == "Иван Петров"  # type: ignore[attr-defined]
    assert f"{first.linkedid}@{int(later.start.timestamp())}" in stored


async def test_cdr_pgsql_table_with_a_2099_row_and_a_huge_field(db: Database, pg_cdr: PgCdr) -> None:
    """PostgreSQL: a 2099 row between two calls hides neither; a 1 MB userfield is cut by the server (the row
    is still read)."""
    first, second = _leg("direct-answered"), _leg("direct-caller-gives-up")
    await pg_cdr.conn.execute(f"ALTER TABLE {pg_cdr.table} ALTER COLUMN userfield TYPE text")
    await pg_cdr.insert(
        [first, _copy(first, "4084164000.1", FUTURE), replace(second, userfield="u" * 1_000_000)]
    )
    source = SqlCdrSource(CdrSpec.parse(pg_cdr.url, pg_cdr.table), UTC)
    try:
        rows = await source.legs(*_around([first, second]))
        report = await Backfill("pbx1", source, _service(db)).window(*_around([first, second]))
    finally:
        await source.close()
    assert {r.linkedid for r in rows} == {first.linkedid, second.linkedid}
    assert max(len(r.userfield) for r in rows) == 4096
    assert report.created == 2
