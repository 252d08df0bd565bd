"""One field table makes the call record's row, its JSON between nodes and its public JSON: every field of
CallRecord is in it, and a record survives each form unchanged."""

from __future__ import annotations

import json
from dataclasses import fields, replace
from datetime import UTC, datetime, timedelta

import pytest

from crmtel.calls.record import FIELDS, from_json, from_row, public_json, table_problems, to_json, to_row
from crmtel.cluster.codec import BadEvent, decode, encode
from crmtel.domain import (
    CallEnded,
    CallRecord,
    Direction,
    MissedReason,
    Outcome,
    PartyKind,
    QueueOutcome,
    QueueVisit,
)

T0 = datetime(2026, 12, 6, 9, 30, 15, 123456, tzinfo=UTC)


def _full() -> CallRecord:
    """A record with every field set to something other than its default."""
    return CallRecord(
        pbx="pbx1",
        linkedid="1796560232.3",
        direction=Direction.INBOUND,
        caller_number="+79161110001",
        caller_name="Иван «Петров»",
        dialled="4951234567",
        started_at=T0,
        rang=("101", "102"),
        answered_by="102",
        queue="retail",
        outcome=Outcome.MISSED,
        missed_reason=MissedReason.ABANDONED_IN_QUEUE,
        answered_at=T0 + timedelta(seconds=3.25),
        ended_at=T0 + timedelta(seconds=40.5),
        ring_seconds=3.25,
        talk_seconds=37.25,
        recording_file="/var/spool/asterisk/monitor/in-1.wav",
        recording_url="https://rec.example/in-1.wav",
        route_kind="queue",
        route_target="retail",
        route_reason="new caller",
        party_kind=PartyKind.LEAD,
        party_id=7,
        party_name="Пётр",
        manager_id=3,
        originate_id="orig-1",
        extra={"party_number": "+79161110001", "caller_hidden": "true"},
        queue_visits=(
            QueueVisit(
                queue="retail",
                joined_at=T0 + timedelta(seconds=1),
                left_at=T0 + timedelta(seconds=3.25),
                outcome=QueueOutcome.ANSWERED,
                answered_by="102",
                offered=("101", "102"),
            ),
        ),
        answered_on="+79031112233",
        transferred_to="+79997770000",
    )


def test_every_field_of_the_record_is_in_the_table_once() -> None:
    """A field added to CallRecord without a line in FIELDS fails here (and the row, JSON and codec miss it)."""
    assert table_problems() == []
    defaults = CallRecord("p", "l", Direction.OUTBOUND, None, None, None, T0 - timedelta(days=1))
    full = _full()
    # The test record sets every field, so the round trips below prove each one.
    assert [f.name for f in fields(CallRecord) if getattr(full, f.name) == getattr(defaults, f.name)] == []


def test_the_row_keeps_every_column_field() -> None:
    """to_row/from_row: every column survives (seconds to the hundredth), waits and extras are not columns."""
    record = _full()
    row = to_row(record)
    assert set(row) == {f.name for f in FIELDS if f.column}
    assert row["missed_reason"] == "abandoned_in_queue"
    back = from_row(row)
    assert back == replace(record, extra={}, queue_visits=())


def test_a_row_from_sqlite_or_an_unknown_code_reads_safely() -> None:
    """Naive times are UTC; a reason a newer version wrote reads as unknown, not as an error."""
    row = to_row(_full())
    row["started_at"] = T0.replace(tzinfo=None)
    row["missed_reason"] = "a_reason_from_the_future"
    back = from_row(row)
    assert back.started_at == T0
    assert back.missed_reason is None


def test_the_json_form_is_exact_and_plain() -> None:
    """to_json/from_json give back the same record, every field; the JSON holds codes and times with offsets."""
    record = _full()
    data = json.loads(json.dumps(to_json(record)))
    assert data["started_at"] == "2026-12-06T09:30:15.123456Z"
    assert data["missed_reason"] == "abandoned_in_queue"
    assert from_json(data) == record


def test_a_json_record_with_nothing_optional_reads_with_defaults() -> None:
    """Only the key fields are needed: a hidden caller, no name, nothing dialled is a record too."""
    bare = CallRecord("pbx1", "1.1", Direction.INBOUND, None, None, None, T0)
    assert from_json(json.loads(json.dumps(to_json(bare)))) == bare
    assert (
        from_json({"pbx": "pbx1", "linkedid": "1.1", "direction": "inbound", "started_at": T0.isoformat()})
        == bare
    )


@pytest.mark.parametrize(
    "broken", [{"pbx": None}, {"started_at": "yesterday"}, {"rang": 5}, {"outcome": "won"}]
)
def test_a_malformed_json_record_is_refused(broken: dict[str, object]) -> None:
    """A record missing its key fields or with a bad value is a ValueError, not a half-filled record."""
    data = {**to_json(_full()), **broken}
    with pytest.raises(ValueError, match=r"call record|isoformat|not a valid"):
        from_json(data)


def test_the_cluster_codec_sends_the_record_in_the_tables_json() -> None:
    """A CallEnded crosses nodes with its whole record (waits, extras, owner) and comes back equal."""
    event = CallEnded("pbx1:1796560232.3", _full(), T0 + timedelta(seconds=41))
    wire = encode(event)
    assert json.loads(wire)["event"]["record"] == to_json(_full())
    assert decode(wire) == event
    with pytest.raises(BadEvent):
        decode(wire.replace(b'"direction":"inbound"', b'"direction":"sideways"'))


def test_the_public_json_shows_the_public_fields_rounded() -> None:
    """calls list's fields come from the table: codes, instants with Z, seconds to the hundredth."""
    record = replace(_full(), ring_seconds=3.256)
    shown = public_json(record)
    assert shown["ring_seconds"] == 3.26
    assert shown["missed_reason"] == "abandoned_in_queue"
    assert "manager_id" not in shown
    assert "extra" not in shown
