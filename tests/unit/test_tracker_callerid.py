"""caller_name is what the caller's network sent, even after the dialplan sets CALLERID(name) for the phones."""

from __future__ import annotations

import pytest

from crmtel.ami.protocol import Message
from crmtel.calls.tracker import new_state
from crmtel.domain import CallRinging
from crmtel.fakepbx.server import Recorded, load_jsonl
from tests.fixtures.callerid import with_dialplan_name, with_network_name
from tests.fixtures.traces import TRACES_DIR, TimedMessage, ended, load_expected, run, to_events


def _timed(stream: list[Recorded]) -> list[TimedMessage]:
    return [TimedMessage(item.t, Message(item.headers)) for item in stream]


@pytest.mark.parametrize("scenario", ["direct-answered", "direct-caller-gives-up", "wholesale-local-members"])
def test_dialplan_overwriting_callerid_name_keeps_the_network_name(scenario: str) -> None:
    """A NewCallerid with the CRM's name (and every later snapshot carrying it) leaves caller_name alone."""
    stream = with_dialplan_name(load_jsonl(TRACES_DIR / f"{scenario}.jsonl"), "ООО «Ромашка»")
    _, effects = run(new_state("pbx1"), to_events(_timed(stream)))
    (done,) = ended(effects)
    assert done.record.caller_name == load_expected(scenario)["caller_name"]
    assert done.record.outcome is not None
    assert done.record.outcome.value == load_expected(scenario)["outcome"]


def test_escaped_network_name_and_route_reason_come_out_plain() -> None:
    """``O\\'Brien & Sons`` from the network and an escaped route reason are stored as the caller wrote them."""
    stream = load_jsonl(TRACES_DIR / "direct-answered.jsonl")
    stream = with_network_name(stream, "O'Brien & Sons")
    stream = with_dialplan_name(stream, 'ООО "Ромашка"', route_reason="personal manager of client 'Ромашка'")
    _, effects = run(new_state("pbx1"), to_events(_timed(stream)))
    (done,) = ended(effects)
    assert done.record.caller_name == "O'Brien & Sons"
    assert done.record.route_reason == "personal manager of client 'Ромашка'"
    rings = [e for e in effects if isinstance(e, CallRinging)]
    assert rings
    assert {r.caller_name for r in rings} == {"O'Brien & Sons"}


def test_cyrillic_network_name_with_quotes_survives_escaping() -> None:
    """A Cyrillic name with quotes and a backslash, escaped by Asterisk, is the record's caller_name."""
    name = 'ИП "Петров\\Сидоров"'
    stream = with_network_name(load_jsonl(TRACES_DIR / "queue-abandoned.jsonl"), name)
    _, effects = run(new_state("pbx1"), to_events(_timed(stream)))
    (done,) = ended(effects)
    assert done.record.caller_name == name
