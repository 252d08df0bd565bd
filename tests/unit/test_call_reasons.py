"""Missed and stop reasons are stable codes: the words for every code are in both catalogues and the page knows
every code; rows, snapshots and events written with the old English texts read as the same reasons."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from pathlib import Path

import pytest

import crmtel.push
from crmtel.calls.reasons import MissedReason, StopReason
from crmtel.calls.tracker import new_state, restore, snapshot
from crmtel.calls.tracker.model import Call, TrackerState
from crmtel.cluster.codec import decode, encode
from crmtel.domain import CallRingStopped
from crmtel.i18n.catalogue import LANGUAGES, Catalogues

CODES = [r.value for r in MissedReason] + [r.value for r in StopReason]


@pytest.mark.parametrize("code", sorted(set(CODES)))
def test_every_reason_code_has_words_in_every_language_and_the_page_knows_it(code: str) -> None:
    """``page.reason.<code>`` exists in Russian and English, and words.js turns the code into that key."""
    catalogues = Catalogues.load()
    for lang in LANGUAGES:
        assert f"page.reason.{code}" in catalogues.language(lang), (lang, code)
    words = (Path(crmtel.push.__file__).parent / "static" / "words.js").read_text(encoding="utf-8")
    listed = re.search(r"const REASONS = \[(.*?)\];", words, re.DOTALL)
    assert listed is not None
    assert code in json.loads("[" + listed.group(1) + "]")


def test_codes_are_plain_identifiers_not_words() -> None:
    """A code is lower_snake_case: never a sentence that would be shown to anyone."""
    assert all(re.fullmatch(r"[a-z]+(_[a-z]+)*", code) for code in CODES)


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("caller hung up while the manager's phone rang", MissedReason.CALLER_HUNG_UP_RINGING),
        ("caller hung up in queue", MissedReason.ABANDONED_IN_QUEUE),
        ("no answer", MissedReason.NO_ANSWER),
        ("busy", MissedReason.BUSY),
        ("abandoned_in_queue", MissedReason.ABANDONED_IN_QUEUE),
    ],
)
def test_the_old_texts_read_as_the_same_missed_reason(text: str, reason: MissedReason) -> None:
    """What crmtel stored and sent before the codes is read as the same member (rows, snapshots, old nodes)."""
    assert MissedReason(text) is reason
    with pytest.raises(ValueError, match="is not a valid"):
        MissedReason("the caller was rude")


def test_a_live_snapshot_with_the_old_text_restores_its_reason() -> None:
    """A call snapshotted by an older crmtel (``calls.live_state``) still knows why it is unanswered."""
    at = datetime(2026, 12, 6, 12, 0, tzinfo=UTC)
    call = Call(linkedid="1.1", started_at=at, unanswered_reason=MissedReason.CALLER_HUNG_UP_RINGING)
    state = TrackerState(pbx="pbx1", calls={"1.1": call})
    data = snapshot(state, "1.1")
    assert data is not None
    assert data["unanswered_reason"] == "caller_hung_up_ringing"
    data["unanswered_reason"] = "caller hung up while the manager's phone rang"
    restored = restore(new_state("pbx1"), data)
    assert restored.calls["1.1"].unanswered_reason is MissedReason.CALLER_HUNG_UP_RINGING


def test_a_ring_stop_travels_between_nodes_as_its_code() -> None:
    """The cluster codec sends the code and reads it back as the member (an old node's text too)."""
    stop = CallRingStopped(
        "pbx1:1.1", "101", StopReason.ANSWERED_ELSEWHERE, "102", datetime(2026, 12, 6, tzinfo=UTC)
    )
    wire = encode(stop)
    assert b'"answered_elsewhere"' in wire
    assert decode(wire) == stop
    old = wire.replace(b'"answered_elsewhere"', b'"answered elsewhere"')
    assert decode(old) == stop
