"""amoCRM has no call-by-uniq: a call whose earlier attempt's outcome is unknown is looked for before it is posted
again (``must_look``), among call notes (``noted``) and Unsorted (``unsorted_with``)."""

from __future__ import annotations

from datetime import UTC, datetime

from crmtel.amocrm.service import must_look, noted, unsorted_with
from crmtel.connectors.models import Kind, OutboxEvent


def _event(attempts: int = 0, lapsed: bool = False, last_error: str | None = None) -> OutboxEvent:
    return OutboxEvent(
        1, "amocrm", "k", "pbx1", "1.5", Kind.ENDED, {}, attempts, datetime.now(UTC), lapsed, last_error
    )


def test_a_first_attempt_posts_without_looking() -> None:
    """A call never tried before costs no look-up (the 7/s limit counts every request)."""
    assert not must_look(_event())


def test_a_lapsed_claim_or_an_earlier_attempt_makes_it_look_first() -> None:
    """A node that died mid-delivery, or an attempt that got no answer, may have left the call in amoCRM."""
    assert must_look(_event(lapsed=True))
    assert must_look(_event(attempts=1))
    assert must_look(_event(attempts=1, last_error="HTTP -: timeout"))
    assert must_look(_event(attempts=2, last_error="HTTP 503: Service Unavailable"))
    # A lookup that failed proves nothing about the post before it: look again.
    assert must_look(_event(attempts=3, last_error="lookup HTTP 429: Too Many Requests"))


def test_an_attempt_amocrm_refused_is_posted_again_without_looking() -> None:
    """A 429 or an expired token (4xx) created nothing: the retry posts at once — lookups after a burst of 429s
    would only add requests to a limit already overrun (two nodes with their own buckets never settled)."""
    assert not must_look(_event(attempts=1, last_error="HTTP 429: Too Many Requests"))
    assert not must_look(_event(attempts=4, last_error="HTTP 401: token expired"))
    assert must_look(_event(attempts=4, last_error="HTTP 401: token expired", lapsed=True))


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
