"""The tracker on the recorded calls as FreePBX names their channels: each gives the record it gave on the lab PBX."""

from __future__ import annotations

from typing import Any

import pytest

from crmtel.calls.legs import classify, user_extension
from crmtel.calls.tracker import new_state
from crmtel.domain import CallAnswered, CallRecord, CallRinging, CallRingStopped
from crmtel.recordings import relpath
from tests.fixtures.freepbx import queue_members_from_queue, rename, second_device, through_local
from tests.fixtures.traces import (
    SCENARIOS,
    ended,
    expected_caller,
    load_expected,
    load_messages,
    run,
    to_events,
)

WEBRTC = ("99",)
# The personal manager each direct-dial scenario rang first (the route crmtel gave when it was recorded).
DIRECT = {
    "direct-answered": "101",
    "direct-noanswer-then-queue": "103",
    "direct-busy-then-queue": "101",
    "direct-caller-gives-up": "101",
}


def _facts(record: CallRecord) -> dict[str, Any]:
    reason = record.missed_reason.value if record.missed_reason is not None else None
    return {
        "linkedid": record.linkedid,
        "direction": record.direction.value,
        "caller_number": record.caller_number,
        "dialled": record.dialled,
        "answered_by": record.answered_by,
        "outcome": record.outcome.value if record.outcome is not None else None,
        "missed_reason": reason,
        "rang": list(record.rang),
        "queue": record.queue,
        "recording_file": record.recording_file,
    }


def _expected(scenario: str) -> dict[str, Any]:
    exp = load_expected(scenario)
    return {
        "linkedid": exp["linkedid"],
        "direction": exp["direction"],
        "caller_number": expected_caller(exp["caller_number"]),
        "dialled": exp["dialled"],
        "answered_by": exp["answered_by"],
        "outcome": exp["outcome"],
        "missed_reason": exp.get("missed_reason"),
        "rang": exp["rang"],
        "queue": exp.get("queue"),
        "recording_file": exp["recording_file"],
    }


def _only_record(state: Any, effects: list[Any]) -> CallRecord:
    records = ended(effects)
    assert len(records) == 1
    assert not state.calls
    assert not state.channels
    return records[0].record


def _check(scenario: str, record: CallRecord) -> None:
    assert _facts(record) == _expected(scenario)
    exp = load_expected(scenario)
    assert record.ring_seconds == pytest.approx(exp["ring_seconds"], abs=1.0)
    assert record.talk_seconds == pytest.approx(exp["talk_seconds"], abs=1.0)


def test_queue_members_local_from_queue_give_the_recorded_record() -> None:
    """Members ``Local/104@from-queue-…;1/;2`` dialling ``PJSIP/104-…``: 104 answered, the Local halves never did."""
    messages = queue_members_from_queue(load_messages("wholesale-local-members"))
    names = {v for i in messages for k, v in i.message.headers if k in ("Channel", "DestChannel")}
    assert any(n.startswith("Local/104@from-queue-") and n.endswith(";1") for n in names)
    assert not any("@agents" in n for n in names)
    state, effects = run(new_state("pbx1", device_prefixes=WEBRTC), to_events(messages))
    _check("wholesale-local-members", _only_record(state, effects))


@pytest.mark.parametrize("scenario", sorted(DIRECT))
def test_personal_manager_through_local_from_internal_gives_the_recorded_record(scenario: str) -> None:
    """The trunk dials ``Local/<ext>@from-internal-…;1`` whose ``;2`` dials the phone: same record as dialled directly."""
    messages = through_local(load_messages(scenario), DIRECT[scenario])
    names = {v for i in messages for k, v in i.message.headers if k == "DestChannel"}
    assert any(n.startswith(f"Local/{DIRECT[scenario]}@from-internal-") for n in names)
    state, effects = run(new_state("pbx1", device_prefixes=WEBRTC), to_events(messages))
    _check(scenario, _only_record(state, effects))
    rings = [e.extension for e in effects if isinstance(e, CallRinging)]
    assert rings[0] == DIRECT[scenario]


@pytest.mark.parametrize(
    "scenario", ["direct-noanswer-then-queue", "anonymous-caller", "direct-busy-then-queue"]
)
def test_webrtc_device_answering_counts_for_its_user(scenario: str) -> None:
    """``PJSIP/99102-…`` (FreePBX WebRTC device of user 102) answering gives answered_by 102, as the desk phone did."""
    messages = rename(load_messages(scenario), "PJSIP/102-", "PJSIP/99102-")
    state, effects = run(new_state("pbx1", device_prefixes=WEBRTC), to_events(messages))
    record = _only_record(state, effects)
    _check(scenario, record)
    assert record.answered_by == "102"
    # Without the prefix the device is taken for an extension of its own: the mapping is what makes it 102.
    _, plain = run(new_state("pbx1"), to_events(messages))
    assert ended(plain)[0].record.answered_by == "99102"


def test_all_devices_of_one_user_ring_one_card() -> None:
    """101's desk phone and WebRTC phone ring together: one ringing card for 101, not closed when 101 answers."""
    messages = second_device(through_local(load_messages("direct-answered"), "101"), "101", "99101")
    assert any(
        v.startswith("PJSIP/99101-") for i in messages for k, v in i.message.headers if k == "DestChannel"
    )
    state, effects = run(new_state("pbx1", device_prefixes=WEBRTC), to_events(messages))
    _check("direct-answered", _only_record(state, effects))
    assert [e.extension for e in effects if isinstance(e, CallRinging)] == ["101"]
    assert [e.extension for e in effects if isinstance(e, CallAnswered)] == ["101"]
    assert [e for e in effects if isinstance(e, CallRingStopped)] == []


def test_both_devices_ring_out_then_one_stop_for_the_user() -> None:
    """Nobody answers either device of 101 (busy, then the queue): 101's card stops ringing exactly once."""
    messages = second_device(load_messages("direct-busy-then-queue"), "101", "99101")
    state, effects = run(new_state("pbx1", device_prefixes=WEBRTC), to_events(messages))
    _check("direct-busy-then-queue", _only_record(state, effects))
    stopped = [e.extension for e in effects if isinstance(e, CallRingStopped)]
    assert stopped.count("101") == 1


@pytest.mark.parametrize(
    ("channel", "extension"),
    [
        ("PJSIP/99101-0000002a", "101"),
        ("PJSIP/101-0000002b", "101"),
        ("SIP/99104-00000001", "104"),
        ("PJSIP/9910-00000003", "10"),
        ("PJSIP/99-00000004", "99"),
        ("PJSIP/990-00000005", "990"),
    ],
)
def test_device_prefix_maps_to_the_user_extension(channel: str, extension: str) -> None:
    """A device ``99<ext>`` is user ``<ext>`` when what follows the prefix is itself an extension (2–6 digits)."""
    assert classify(channel, frozenset(), WEBRTC) == (classify(channel, frozenset())[0], extension)


def test_without_prefixes_a_device_is_its_own_extension() -> None:
    """Plain Asterisk (no prefixes configured) keeps 99101 as extension 99101."""
    assert user_extension("99101", ()) == "99101"
    assert user_extension("99101", ("98",)) == "99101"


def test_a_device_that_is_a_known_extension_is_that_phone() -> None:
    """With the browser phone on (prefix 99), desk phone 9913 of another manager answering is 9913's call, not
    extension 13's: the 99<ext> rule applies only to a device that is no known extension."""
    messages = rename(load_messages("direct-answered"), "PJSIP/101-", "PJSIP/9913-")
    state, effects = run(
        new_state("pbx1", device_prefixes=WEBRTC, known_extensions={"13", "9913"}), to_events(messages)
    )
    record = _only_record(state, effects)
    assert record.answered_by == "9913"
    assert [e.extension for e in effects if isinstance(e, CallRinging)] == ["9913"]
    # Unknown as an extension, the same device is extension 13's browser phone.
    _, browser = run(new_state("pbx1", device_prefixes=WEBRTC, known_extensions={"13"}), to_events(messages))
    assert ended(browser)[0].record.answered_by == "13"
    assert classify("PJSIP/9913-00000001", frozenset(), WEBRTC, frozenset({"9913"})) == (
        classify("PJSIP/9913-00000001", frozenset())[0],
        "9913",
    )


def test_relpath_keeps_freepbx_date_folders() -> None:
    """``{relpath}``: FreePBX's ``YYYY/MM/DD/`` below the spool stays; a foreign absolute path keeps its name."""
    spool = "/var/spool/asterisk/monitor"
    name = "in-4951234567-79161110001-20261201-093000-1795462037.14.wav"
    assert relpath(f"{spool}/2026/12/01/{name}", spool) == f"2026/12/01/{name}"
    assert relpath(f"2026/12/01/{name}", spool) == f"2026/12/01/{name}"
    assert relpath(f"/mnt/other/2026/12/01/{name}", spool) == name
    # crmtel sees the PBX's spool mounted elsewhere: the PBX's own path still gives the date folders.
    assert relpath(f"{spool}/2026/12/01/{name}", "/mnt/pbx-monitor") == f"2026/12/01/{name}"
    assert relpath(f"/mnt/pbx-monitor/2026/12/01/{name}", "/mnt/pbx-monitor") == f"2026/12/01/{name}"
    assert relpath(f"{spool}/../../etc/passwd", spool) is None
    assert relpath("", spool) is None


def test_recording_url_template_fills_relpath() -> None:
    """A FreePBX-style MixMonitor path gives a URL with the date folders through ``{relpath}``."""
    messages = rename(
        load_messages("direct-answered"),
        "/var/spool/asterisk/monitor/in-",
        "/var/spool/asterisk/monitor/2026/11/23/in-",
    )
    state = new_state("pbx1", recording_url_template="https://pbx.example/monitor/{relpath}")
    _, effects = run(state, to_events(messages))
    record = ended(effects)[0].record
    assert record.recording_url == "https://pbx.example/monitor/2026/11/23/in-4951234567-1795462037.14.wav"


def _freepbx(scenario: str) -> list[Any]:
    """The whole trace as FreePBX names it: Local/<ext>@from-internal for the manager, from-queue members, 99102."""
    messages = queue_members_from_queue(load_messages(scenario))
    if scenario in DIRECT:
        messages = through_local(messages, DIRECT[scenario])
    return rename(messages, "PJSIP/102-", "PJSIP/99102-")


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_every_trace_in_freepbx_names_gives_its_expected_record(scenario: str) -> None:
    """All nine recorded calls, every FreePBX rewrite applied at once, each still yield their expected.json."""
    state, effects = run(new_state("pbx1", device_prefixes=WEBRTC), to_events(_freepbx(scenario)))
    _check(scenario, _only_record(state, effects))
