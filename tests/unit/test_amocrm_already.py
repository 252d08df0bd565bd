"""amoCRM has no call-by-uniq: a call whose earlier attempt's outcome is unknown is looked for before it is posted
again (``must_look``), among call notes (``noted``) and Unsorted (``unsorted_with``)."""

from __future__ import annotations

from datetime import UTC, datetime

from crmtel.amocrm.service import must_look, noted, unsorted_with
from crmtel.connectors.models import Kind, OutboxEvent


def _event(attempts: int = 0, lapsed: bool = False) -> OutboxEvent:
    return OutboxEvent(1, "amocrm", "k", "pbx1", "1.5", Kind.ENDED, {}, attempts, datetime.now(UTC), lapsed)


def test_a_first_attempt_posts_without_looking() -> None:
    """A call never tried before costs no look-up (the 7/s limit counts every request)."""
    assert not must_look(_event())


def test_a_lapsed_claim_or_an_earlier_attempt_makes_it_look_first() -> None:
    """A node that died mid-delivery, or an attempt that got no answer, may have left the call in amoCRM."""
    assert must_look(_event(lapsed=True))
    assert must_look(_event(attempts=1))


def test_a_call_note_is_found_by_its_params_uniq_only() -> None:
    """The note whose params carry the uniq is the call; another call's note or a text note is not."""
    page = {
        "_embedded": {
            "notes": [
                {"id": 1, "note_type": "common", "params": {"text": "pbx1:1.5"}},
                {"id": 2, "note_type": "call_in", "params": {"uniq": "pbx1:1.6"}},
                {"id": 3, "note_type": "call_out", "entity_id": 9, "params": {"uniq": "pbx1:1.5"}},
            ]
        }
    }
    assert noted(page, "pbx1:1.5") == page["_embedded"]["notes"][2]
    assert noted(page, "pbx1:1.7") is None
    assert noted(None, "pbx1:1.5") is None  # 204: no notes at all


def test_an_unsorted_entry_is_found_by_its_call_metadata() -> None:
    """An Unsorted call is the one whose metadata (or source_uid) is the uniq."""
    page = {"_embedded": {"unsorted": [{"uid": "a", "metadata": {"uniq": "pbx1:1.5"}}, {"uid": "b"}]}}
    assert unsorted_with(page, "pbx1:1.5") == {"uid": "a", "metadata": {"uniq": "pbx1:1.5"}}
    assert unsorted_with(page, "pbx1:1.6") is None
