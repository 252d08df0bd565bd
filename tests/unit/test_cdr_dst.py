"""CDR times in the hour the clocks show twice when DST ends: each leg is read in its true hour.

Asterisk writes CDR times in the PBX's local time without an offset. On 2026-10-25 Berlin's clocks go from 03:00
CEST back to 02:00 CET, so 02:30 happens twice, an hour apart. The real ``direct-answered`` call, moved into that
night (its Uniqueids moved with it, as Asterisk would have made them), must come back from Master.csv with its
true start, answer, end and talk time.
"""

from __future__ import annotations

import csv
import re
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from crmtel.calls.tracker import new_state
from crmtel.cdr.calls import call_from_legs, group_calls
from crmtel.cdr.csvsource import parse_line
from crmtel.cdr.times import host_zone, leg_times, local_to_utc, offset_swing, uniqueid_time
from crmtel.domain import CallRecord
from crmtel.fakepbx.server import load_jsonl
from tests.fixtures.cdr_data import Leg, csv_line, legs_of_stream
from tests.fixtures.traces import TRACES_DIR, load_expected

BERLIN = ZoneInfo("Europe/Berlin")
# 02:30:00 local, first (CEST, +02:00) and second (CET, +01:00) time.
FIRST_0230 = datetime(2026, 10, 25, 0, 30, tzinfo=UTC)
SECOND_0230 = datetime(2026, 10, 25, 1, 30, tzinfo=UTC)
_EPOCH = re.compile(r"^(\d+)(\.\d+)$")


def _moved_id(value: str, delta: timedelta) -> str:
    match = _EPOCH.match(value)
    assert match is not None, value
    return f"{int(match.group(1)) + int(delta.total_seconds())}{match.group(2)}"


def moved_legs(starts_at: datetime) -> list[Leg]:
    """``direct-answered``'s legs as if the call had begun at ``starts_at`` (Uniqueids moved too)."""
    legs = legs_of_stream(load_jsonl(TRACES_DIR / "direct-answered.jsonl"))
    delta = starts_at - min(leg.start for leg in legs)
    return [
        replace(
            leg,
            start=leg.start + delta,
            answer=None if leg.answer is None else leg.answer + delta,
            end=leg.end + delta,
            uniqueid=_moved_id(leg.uniqueid, delta),
            linkedid=_moved_id(leg.linkedid, delta),
        )
        for leg in legs
    ]


def _from_master_csv(legs: list[Leg]) -> CallRecord:
    rows = [parse_line(next(csv.reader([csv_line(leg, BERLIN).rstrip("\n")])), BERLIN) for leg in legs]
    calls = group_calls(rows)
    (linkedid,) = calls
    record = call_from_legs(new_state("pbx1"), linkedid, calls[linkedid])
    assert record is not None
    return record


@pytest.mark.parametrize(
    "starts_at",
    [
        pytest.param(SECOND_0230, id="second-0230-CET"),
        pytest.param(FIRST_0230, id="first-0230-CEST"),
        pytest.param(datetime(2026, 10, 25, 0, 59, 58, tzinfo=UTC), id="across-the-change"),
        pytest.param(datetime(2026, 10, 25, 1, 59, 58, tzinfo=UTC), id="last-seconds-of-the-repeat"),
    ],
)
def test_a_call_in_the_repeated_hour_is_read_at_its_true_time(starts_at: datetime) -> None:
    """Master.csv written in Berlin time that night gives the call its true UTC start and end, and the live
    talk and ring times (before: the second 02:30 was read an hour early, a call across 03:00→02:00 ended
    before it began)."""
    legs = moved_legs(starts_at)
    record = _from_master_csv(legs)
    expected = load_expected("direct-answered")
    # Each at the middle of the second its whole-second reading stands for.
    assert record.started_at == starts_at + timedelta(seconds=0.5)
    last = max(leg.end for leg in legs)
    assert record.ended_at is not None
    assert last <= record.ended_at < last + timedelta(seconds=1)
    assert record.answered_by == expected["answered_by"]
    assert record.talk_seconds == pytest.approx(expected["talk_seconds"], abs=1.0)
    assert record.ring_seconds == pytest.approx(expected["ring_seconds"], abs=1.0)


def test_the_two_readings_of_a_repeated_time_are_told_apart_by_what_is_near() -> None:
    """02:30 that night is 00:30 or 01:30 UTC: the one nearest the hint; no hint, the first."""
    naive = datetime(2026, 10, 25, 2, 30)
    assert local_to_utc(naive, BERLIN) == FIRST_0230
    assert local_to_utc(naive, BERLIN, SECOND_0230 + timedelta(seconds=3)) == SECOND_0230
    assert local_to_utc(naive, BERLIN, FIRST_0230 - timedelta(seconds=3)) == FIRST_0230
    # An ordinary time has one reading whatever the hint.
    assert local_to_utc(datetime(2026, 7, 1, 12, 0), BERLIN, SECOND_0230) == datetime(
        2026, 7, 1, 10, 0, tzinfo=UTC
    )


def test_leg_times_place_the_end_and_answer_by_the_durations() -> None:
    """A leg from 02:59:50 CEST to 02:00:20 CET (30 s, answered for 25): end and answer after the start."""
    start, answer, end = leg_times(
        datetime(2026, 10, 25, 2, 59, 50),
        datetime(2026, 10, 25, 2, 59, 55),
        datetime(2026, 10, 25, 2, 0, 20),
        BERLIN,
        uniqueid=f"{int(datetime(2026, 10, 25, 0, 59, 50, tzinfo=UTC).timestamp())}.7",
        duration=30,
        billsec=25,
    )
    assert start == datetime(2026, 10, 25, 0, 59, 50, tzinfo=UTC)
    assert answer == datetime(2026, 10, 25, 0, 59, 55, tzinfo=UTC)
    assert end == datetime(2026, 10, 25, 1, 0, 20, tzinfo=UTC)


def test_uniqueid_time_reads_plain_and_systemname_ids() -> None:
    """``EPOCH.SEQ`` and ``systemname-EPOCH.SEQ`` carry the channel's creation; anything else nothing."""
    assert uniqueid_time("1795462037.14") == datetime.fromtimestamp(1795462037, UTC)
    assert uniqueid_time("pbx-a-1795462037.14") == datetime.fromtimestamp(1795462037, UTC)
    assert uniqueid_time("") is None
    assert uniqueid_time("not-an-id") is None


def test_the_host_zone_keeps_its_dst_rules(monkeypatch: pytest.MonkeyPatch) -> None:
    """No cdr_timezone: the host's zone with its rules (winter and summer differ), not today's fixed offset."""
    monkeypatch.setenv("TZ", "Europe/Berlin")
    zone = host_zone()
    assert datetime(2026, 1, 15, 12, tzinfo=zone).utcoffset() == timedelta(hours=1)
    assert datetime(2026, 7, 15, 12, tzinfo=zone).utcoffset() == timedelta(hours=2)


def test_the_offset_swing_is_the_zones_change_near_a_fold_and_zero_elsewhere() -> None:
    """SQL sources widen their naive local bounds by it: an hour around 2026-10-25 in Berlin, nothing a week before."""
    fold = datetime(2026, 10, 25, 1, 10, tzinfo=UTC)
    assert offset_swing(BERLIN, fold) == timedelta(hours=1)
    assert offset_swing(BERLIN, fold - timedelta(days=7)) == timedelta(0)
    assert offset_swing(UTC, fold) == timedelta(0)
