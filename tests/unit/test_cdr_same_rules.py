"""The CDR path and the live tracker build one call with one set of rules: for every recorded trace, the record
rebuilt from the trace's own CDR (as ``Master.csv`` lines) is the record the tracker made from its AMI events —
direction, parties, who answered, who was offered it, why it was missed, its queue waits — also when the phones
are FreePBX's WebRTC devices ``99<ext>``; and a failed click-to-call is no call on either path."""

from __future__ import annotations

import csv
from collections.abc import Sequence
from datetime import UTC
from pathlib import Path

import pytest

from crmtel.calls.tracker import new_state
from crmtel.calls.tracker.model import TrackerState
from crmtel.cdr.calls import call_from_legs, group_calls
from crmtel.cdr.csvsource import parse_line
from crmtel.cdr.models import CdrRow
from crmtel.domain import CallRecord, QueueOutcome
from crmtel.fakepbx.server import Recorded
from tests.fixtures.cdr_data import csv_line, legs_of_stream
from tests.fixtures.traces import SCENARIOS, TimedMessage, ended, load_messages, run, to_events

WEBRTC = ("99",)
CLICKS = Path(__file__).resolve().parents[1] / "fixtures" / "cdr" / "click-to-call.Master.csv"


def _renamed(messages: Sequence[TimedMessage], devices: dict[str, str]) -> list[TimedMessage]:
    out = []
    for item in messages:
        headers = []
        for key, value in item.message.headers:
            for ext, device in devices.items():
                value = value.replace(f"PJSIP/{ext}-", f"PJSIP/{device}-")
            headers.append((key, value))
        out.append(TimedMessage(item.t, type(item.message)(tuple(headers))))
    return out


def renamed(scenario: str) -> list[TimedMessage]:
    """A trace with every phone (101…104) renamed to its WebRTC device ``99<ext>``."""
    return _renamed(load_messages(scenario), {ext: f"99{ext}" for ext in ("101", "102", "103", "104")})


def tracker_records(
    state: TrackerState, messages: Sequence[TimedMessage]
) -> tuple[CallRecord, list[Recorded]]:
    """The tracker's one record of a trace, and the trace as a stream (for its CDR legs)."""
    _, effects = run(state, to_events(messages))
    (live,) = [e.record for e in ended(effects)]
    return live, [Recorded(m.t, m.message.headers) for m in messages]


def _cdr_rows(messages: Sequence[TimedMessage]) -> list[CdrRow]:
    stream = [Recorded(m.t, m.message.headers) for m in messages]
    lines = [csv_line(leg, UTC) for leg in legs_of_stream(stream)]
    return [parse_line(next(csv.reader([line.rstrip("\n")])), UTC) for line in lines]


def _both(state: TrackerState, messages: Sequence[TimedMessage]) -> tuple[CallRecord, CallRecord]:
    _, effects = run(state, to_events(messages))
    (live,) = [e.record for e in ended(effects)]
    calls = group_calls(_cdr_rows(messages))
    assert list(calls) == [live.linkedid]
    cdr = call_from_legs(state, live.linkedid, calls[live.linkedid])
    assert cdr is not None
    return live, cdr


def _facts(record: CallRecord) -> tuple[object, ...]:
    return (
        record.direction,
        record.caller_number,
        record.caller_name,
        record.answered_by,
        record.rang,
        record.outcome,
        record.missed_reason,
        record.queue,
        record.recording_file,
    )


def _visits(record: CallRecord) -> list[tuple[object, ...]]:
    return [(v.queue, v.outcome, v.answered_by, v.offered) for v in record.queue_visits]


def assert_one_call(live: CallRecord, cdr: CallRecord) -> None:
    """Same facts and queue waits; times within the CDR's one-second resolution."""
    assert _facts(cdr) == _facts(live)
    assert _visits(cdr) == _visits(live)
    for a, b in zip(live.queue_visits, cdr.queue_visits, strict=True):
        assert b.wait_seconds == pytest.approx(a.wait_seconds, abs=1.0)
        # The two paths' clocks differ (the trace's receive times, the PBX's CDR): compare from each call's start.
        joined = (b.joined_at - cdr.started_at) - (a.joined_at - live.started_at)
        assert abs(joined.total_seconds()) <= 1.0
    assert cdr.ring_seconds == pytest.approx(live.ring_seconds, abs=1.0)
    assert cdr.talk_seconds == pytest.approx(live.talk_seconds, abs=1.0)


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_the_cdr_of_each_trace_rebuilds_the_trackers_record_with_its_queue_waits(scenario: str) -> None:
    """Master.csv of a recorded call gives the tracker's record, queue visits (offers, outcome, wait) included."""
    live, cdr = _both(new_state("pbx1"), load_messages(scenario))
    assert_one_call(live, cdr)


def test_a_queue_call_rebuilt_from_the_cdr_counts_in_the_queue_report() -> None:
    """The abandoned retail caller: one wait offered to 102 and 103, abandoned after 6 s (not a call without waits)."""
    _, cdr = _both(new_state("pbx1"), load_messages("queue-abandoned"))
    assert _visits(cdr) == [("retail", QueueOutcome.ABANDONED, None, ("102", "103"))]
    assert cdr.queue_visits[0].wait_seconds == pytest.approx(6.0, abs=1.0)


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_webrtc_devices_count_for_their_users_on_the_cdr_path_too(scenario: str) -> None:
    """Every phone renamed to FreePBX's WebRTC device ``99<ext>``: the CDR names users 101…104, as the tracker does."""
    messages = renamed(scenario)
    assert any("PJSIP/99" in v for m in messages for _, v in m.message.headers)
    state = new_state("pbx1", device_prefixes=WEBRTC)
    live, cdr = _both(state, messages)
    assert_one_call(live, cdr)
    assert not any(
        ext.startswith("99") for ext in (*cdr.rang, cdr.answered_by or "", cdr.caller_number or "")
    )


def clicks_master_csv() -> dict[str, list[CdrRow]]:
    """The legs of the recorded click-to-call Master.csv, by call."""
    with CLICKS.open(encoding="utf-8", newline="") as fh:
        return group_calls(parse_line(row, UTC) for row in csv.reader(fh))


def test_failed_click_to_calls_in_a_real_master_csv_are_no_calls() -> None:
    """Asterisk 22.10.1's Master.csv of click-to-calls to a busy, an unanswered and a declining phone (AppDial2,
    never answered): no record; the answered click-to-calls and the queue call around them still are calls."""
    calls = clicks_master_csv()
    records = {lid: call_from_legs(new_state("pbx1"), lid, legs) for lid, legs in calls.items()}
    failed = {lid for lid, legs in calls.items() if legs[0].lastapp == "AppDial2"}
    assert len(failed) == 3
    assert {lid for lid, r in records.items() if r is None} == failed
    kept = sorted(
        (r.direction.value, r.caller_number, r.answered_by) for r in records.values() if r is not None
    )
    assert kept == [
        ("inbound", "+79991110035", None),
        ("outbound", "131", "131"),
        ("outbound", "135", "135"),
    ]
