"""The CDR path on the live tier's own Master.csv: the forwarded, transferred and unanswered desk-phone calls get
the records the tracker gives them live (``crmtel/fakepbx/data/live``: the AMI traces and the Master.csv of one run).
"""

from __future__ import annotations

import csv
from dataclasses import replace
from datetime import UTC, timedelta

import pytest

from crmtel.calls.tracker import new_state
from crmtel.cdr.calls import call_from_legs, group_calls
from crmtel.cdr.csvsource import parse_line
from crmtel.domain import CallRecord
from tests.fixtures.traces import LIVE_SCENARIOS, LIVE_TRACES_DIR, load_expected


def _records() -> dict[str, CallRecord]:
    rows = []
    # phones.Master.csv (test_live_phones' run) and one file per later live run (blind-transfer-outside).
    for path in sorted(LIVE_TRACES_DIR.glob("*.Master.csv")):
        with path.open(encoding="utf-8", newline="") as fh:
            rows += [parse_line(fields, UTC) for fields in csv.reader(fh)]
    state = new_state("pbx1")
    out: dict[str, CallRecord] = {}
    for linkedid, legs in group_calls(rows).items():
        record = call_from_legs(state, linkedid, legs)
        if record is not None:
            out[linkedid] = record
    return out


# Calls whose CDR answer is not the far end's: click-to-call "via my mobile" is an Originate(Local/<ext>@crmtel-mobile)
# whose ``;1`` half comes up when the manager presses 1 on the mobile, and Asterisk's CDR answers a party A already up
# at that moment — the client's answer (1 s later in the recording) is in no Master.csv column. Its ring time ends
# at the confirmation and its talk time includes the client's ringing; their sum is the call's (asserted below).
_ANSWER_IS_THE_CONFIRMATION = {"click-mobile-answered"}


@pytest.mark.parametrize("scenario", LIVE_SCENARIOS)
def test_the_cdr_gives_each_live_call_the_trackers_record(scenario: str) -> None:
    """Direction, caller, dialled, phones offered, who answered (and on which number), who handed it over, outcome,
    ring and talk time (±1 s: the CDR counts whole seconds) — as the expected record of the AMI trace."""
    expected = load_expected(scenario, LIVE_TRACES_DIR)
    record = _records()[expected["linkedid"]]
    assert record.direction.value == expected["direction"]
    assert record.caller_number == expected["caller_number"]
    # A blind transfer rewrites the caller's rows' dst to its target: without a did column the CDR has no DID left.
    assert record.dialled == expected.get("cdr_dialled", expected["dialled"])
    assert list(record.rang) == expected["rang"]
    assert record.answered_by == expected["answered_by"]
    assert record.answered_on == expected.get("answered_on")
    assert record.extra.get("transferred_from") == expected.get("transferred_from")
    assert record.transferred_to == expected.get("transferred_to")
    assert record.outcome is not None
    assert record.outcome.value == expected["outcome"]
    if scenario in _ANSWER_IS_THE_CONFIRMATION:
        assert record.ring_seconds <= expected["ring_seconds"] + 1.0
        assert record.talk_seconds >= expected["talk_seconds"] - 1.0
        assert record.ring_seconds + record.talk_seconds == pytest.approx(
            expected["ring_seconds"] + expected["talk_seconds"], abs=1.0
        )
    else:
        assert record.ring_seconds == pytest.approx(expected["ring_seconds"], abs=1.0)
        assert record.talk_seconds == pytest.approx(expected["talk_seconds"], abs=1.0)


def test_a_click_to_call_via_the_mobile_is_the_managers_answered_on_the_mobile() -> None:
    """Originate(Local/151@crmtel-mobile): the ``;2`` half dialled 151's mobile (89160000051) through the trunk, the
    ``;1`` half the client; the CDR has no CRMTEL_* variables, yet the record is 151's as the tracker's is."""
    record = _records()["1796574652.7"]
    assert (record.direction.value, record.caller_number, record.dialled) == (
        "outbound",
        "151",
        "89991110051",
    )
    assert (record.answered_by, record.answered_on, record.rang) == ("151", "+79160000051", ())
    assert record.answered_at == record.started_at + timedelta(seconds=2)  # the 1 pressed on the mobile


def test_a_click_to_call_the_mobile_never_confirmed_is_no_call() -> None:
    """The mobile answered without pressing 1 (the client was not dialled): as live, no call is stored."""
    assert "1796574652.4" not in _records()


def test_a_click_to_call_whose_half_rang_a_desk_phone_is_not_via_the_mobile() -> None:
    """The same legs with the ``;2`` half dialling a desk phone, not the trunk: the mobile rule does not take it
    (neither 151 from the Local channel's name nor a mobile number)."""
    with (LIVE_TRACES_DIR / "phones.Master.csv").open(encoding="utf-8", newline="") as fh:
        rows = [parse_line(fields, UTC) for fields in csv.reader(fh)]
    legs = [
        replace(r, dstchannel="PJSIP/151-00000005", lastdata="PJSIP/151,20")
        if r.channel.endswith(";2")
        else r
        for r in group_calls(rows)["1796574652.7"]
    ]
    record = call_from_legs(new_state("pbx1"), "1796574652.7", legs)
    assert record is not None
    assert (record.caller_number, record.answered_on) == (None, None)


def test_a_call_forwarded_to_the_mobile_is_answered_on_the_cdr_path_too() -> None:
    """Master.csv has no ``Forward``: 127's leg says NO ANSWER and the trunk leg to the mobile ANSWERED; the call
    is 127's, answered on +79997770127, not missed."""
    record = _records()["1796560192.5"]
    assert (record.answered_by, record.answered_on, record.missed_reason) == ("127", "+79997770127", None)


def test_a_call_the_dialplan_alone_sent_outside_is_nobodys_answer() -> None:
    """The same call without the leg that rang 127 (no manager's phone was offered it): answered outside by
    nobody of ours, so it stays missed — the forwarding rule needs a manager whose phone rang."""
    with (LIVE_TRACES_DIR / "phones.Master.csv").open(encoding="utf-8", newline="") as fh:
        rows = [parse_line(fields, UTC) for fields in csv.reader(fh)]
    legs = [r for r in group_calls(rows)["1796560192.5"] if not r.dstchannel.startswith("PJSIP/127-")]
    record = call_from_legs(new_state("pbx1"), "1796560192.5", legs)
    assert record is not None
    assert (record.rang, record.answered_by, record.answered_on) == ((), None, None)
    assert record.outcome is not None
    assert record.outcome.value == "missed"
