"""Times read back from the store keep their instant: naive ones are UTC, aware ones are left as they are."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

from crmtel.timestamps import as_utc, assume_utc


def test_a_naive_stored_time_is_taken_as_utc() -> None:
    """SQLite's naive value becomes the same wall time in UTC, not a local-time guess."""
    assert assume_utc(datetime(2026, 12, 6, 10, 0)) == datetime(2026, 12, 6, 10, 0, tzinfo=UTC)
    assert assume_utc(datetime(2026, 12, 6, 10, 0)).tzinfo is UTC


def test_an_aware_time_keeps_its_offset_and_none_stays_none() -> None:
    """Unlike as_utc, an aware value is returned unchanged (offset included); None passes through."""
    moscow = datetime(2026, 12, 6, 13, 0, tzinfo=timezone(timedelta(hours=3)))
    assert assume_utc(moscow) is moscow
    assert as_utc(moscow).utcoffset() == timedelta(0)
    assert assume_utc(None) is None
