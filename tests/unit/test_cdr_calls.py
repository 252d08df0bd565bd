"""Master.csv lines (as cdr_csv.c writes them) from the traces' real CDRs give each call its expected record."""

from __future__ import annotations

import csv
from datetime import UTC
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from crmtel.calls.tracker import new_state
from crmtel.cdr.calls import call_from_legs, caller_id, group_calls
from crmtel.cdr.csvsource import CdrCsvError, parse_line
from crmtel.cdr.models import CdrRow
from crmtel.domain import CallRecord
from crmtel.fakepbx.server import load_jsonl
from crmtel.phones import normalize
from tests.fixtures.cdr_data import csv_line, legs_of_stream
from tests.fixtures.traces import SCENARIOS, TRACES_DIR, expected_caller, load_expected

MOSCOW = ZoneInfo("Europe/Moscow")


def _rows(scenario: str, zone: Any = MOSCOW, **options: bool) -> list[CdrRow]:
    legs = legs_of_stream(load_jsonl(TRACES_DIR / f"{scenario}.jsonl"))
    lines = [csv_line(leg, zone, **options) for leg in legs]
    return [parse_line(next(csv.reader([line.rstrip("\n")])), zone) for line in lines]


def assert_same_call(record: CallRecord, expected: dict[str, Any], *, recording: str | None = None) -> None:
    """What a live run stores for the scenario (expected.json), within the CDR's one-second resolution."""
    assert record.linkedid == expected["linkedid"]
    assert record.direction.value == expected["direction"]
    assert record.caller_number == expected_caller(expected["caller_number"])
    name = expected["caller_name"]
    assert record.caller_name == (None if name == "<unknown>" else name)
    # cdr_csv's dst is the extension the dialplan ended up on: +79161110001 for a manager's 89161110001.
    assert normalize(record.dialled).e164 == normalize(expected["dialled"]).e164
    assert record.answered_by == expected["answered_by"]
    assert record.outcome is not None
    assert record.outcome.value == expected["outcome"]
    reason = record.missed_reason.value if record.missed_reason is not None else None
    assert reason == expected.get("missed_reason")
    assert list(record.rang) == expected["rang"]
    assert record.queue == expected.get("queue")
    assert record.ring_seconds == pytest.approx(expected["ring_seconds"], abs=1.0)
    assert record.talk_seconds == pytest.approx(expected["talk_seconds"], abs=1.0)
    assert record.recording_file == (recording if recording is not None else expected["recording_file"])
    assert record.ended_at is not None


@pytest.mark.parametrize("scenario", SCENARIOS)
@pytest.mark.parametrize("newcdrcolumns", [True, False], ids=["newcdrcolumns", "plain"])
def test_master_csv_of_each_trace_gives_the_live_record(scenario: str, newcdrcolumns: bool) -> None:
    """Parsed from Master.csv in the PBX's zone, with or without newcdrcolumns, the call is the one expected."""
    rows = _rows(scenario, newcdrcolumns=newcdrcolumns)
    calls = group_calls(rows)
    expected = load_expected(scenario)
    assert list(calls) == [expected["linkedid"]]
    record = call_from_legs(new_state("pbx1"), expected["linkedid"], calls[expected["linkedid"]])
    assert record is not None
    assert_same_call(record, expected)


def test_zone_and_usegmtime_give_the_same_instant() -> None:
    """The same call written in Moscow time or in UTC (usegmtime) starts at the same UTC instant."""
    moscow = _rows("direct-answered", MOSCOW)
    utc = _rows("direct-answered", UTC)
    assert [r.start for r in moscow] == [r.start for r in utc]
    assert moscow[0].start.tzinfo is not None
    assert moscow[0].start.isoformat() == "2026-11-23T19:27:17+00:00"


def test_extra_columns_by_count_loguniqueid_alone_and_userfield_alone() -> None:
    """17 columns: a Uniqueid-looking value is the uniqueid, anything else the userfield."""
    (leg, *_) = legs_of_stream(load_jsonl(TRACES_DIR / "direct-answered.jsonl"))
    only_uid = csv_line(leg, UTC, loguserfield=False, newcdrcolumns=False)
    row = parse_line(next(csv.reader([only_uid.strip()])), UTC)
    assert (row.uniqueid, row.userfield, row.linkedid, row.has_linkedid) == (
        leg.uniqueid,
        "",
        leg.uniqueid,
        False,
    )
    full = parse_line(next(csv.reader([csv_line(leg, UTC).strip()])), UTC)
    assert (full.linkedid, full.sequence, full.userfield) == (leg.linkedid, leg.sequence, leg.userfield)
    with pytest.raises(CdrCsvError, match="uniqueid"):
        parse_line(
            next(csv.reader([csv_line(leg, UTC, loguniqueid=False, newcdrcolumns=False).strip()])), UTC
        )


@pytest.mark.parametrize(
    "line",
    [
        '"","1","2"',
        '"a","b","c","d","e","f","g","h","i","2026-13-45 99:00:00","","2026-11-23 19:27:23",5,4,"ANSWERED","DOCUMENTATION","1.1",""',
        '"a","b","c","d","e","f","g","h","i","2026-11-23 19:27:17","","2026-11-23 19:27:23",five,4,"ANSWERED","DOCUMENTATION","1.1",""',
        '"a","b","c","d","e","f","g","h","i","","","",5,4,"ANSWERED","DOCUMENTATION","1.1",""',
        '"a","b","c","d","e","f","g","h","i","2026-11-23 19:27:17","","2026-11-23 19:27:23",5,4,"X","D","","","p","l","seq"',
    ],
    ids=["short", "bad-date", "bad-int", "no-times", "bad-sequence"],
)
def test_broken_lines_are_refused_with_a_reason(line: str) -> None:
    """A line that is not a cdr_csv record raises CdrCsvError (the reader skips and logs it)."""
    with pytest.raises(CdrCsvError):
        parse_line(next(csv.reader([line])), UTC)


@pytest.mark.parametrize(
    ("clid", "parts"),
    [
        ('"Ivan Petrov" <79161110001>', ("Ivan Petrov", "79161110001")),
        ('"" <anonymous>', (None, "anonymous")),
        ('"O\'Brien "Big" & Sons" <+7916>', ('O\'Brien "Big" & Sons', "+7916")),
        ('"<unknown>" <>', (None, None)),
        ("79161110001", (None, "79161110001")),
        ("", (None, None)),
    ],
)
def test_caller_id_splits_name_and_number(clid: str, parts: tuple[str | None, str | None]) -> None:
    """The CDR's clid ``"name" <number>`` in its real shapes."""
    assert caller_id(clid) == parts
