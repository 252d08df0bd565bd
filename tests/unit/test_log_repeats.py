"""Repeated warnings of one kind are rate-limited with a count (crmtel/logging.py), with a fake clock."""

from __future__ import annotations

import logging

from crmtel.logging import RepeatLimiter
from tests.unit.test_push_sessions import Clock


def _record(
    msg: object, *args: object, level: int = logging.WARNING, name: str = "crmtel.ami"
) -> logging.LogRecord:
    return logging.LogRecord(name, level, __file__, 1, msg, args or None, None)


def test_a_burst_passes_then_the_rest_are_counted_and_reported_once() -> None:
    """Ten warnings of a kind pass per window, the tenth says more will be suppressed, the next window counts them."""
    clock = Clock()
    limiter = RepeatLimiter(burst=10, interval=10, clock=clock)
    records = [_record("ami line without a header name skipped: %.80r", f"junk {i}") for i in range(1000)]
    passed = [r for r in records if limiter.filter(r)]
    assert len(passed) == 10
    assert "further ones suppressed" in passed[-1].getMessage()
    assert "junk 9" in passed[-1].getMessage()
    clock.now += 10
    later = _record("ami line without a header name skipped: %.80r", "junk again")
    assert limiter.filter(later)
    assert later.getMessage() == "ami line without a header name skipped: 'junk again' [990 more suppressed]"


def test_kinds_are_separate_and_info_is_never_limited() -> None:
    """Another message template or logger has its own budget; info records always pass."""
    limiter = RepeatLimiter(burst=2, interval=10, clock=Clock())
    assert [limiter.filter(_record("a %s", i)) for i in range(3)] == [True, True, False]
    assert limiter.filter(_record("b %s", 1))
    assert limiter.filter(_record("a %s", 1, name="crmtel.web"))
    assert all(limiter.filter(_record("a %s", i, level=logging.INFO)) for i in range(100))


def test_structlog_events_are_limited_by_event_name_and_carry_the_count() -> None:
    """A structlog event dict is keyed by its event name; the count is added as fields."""
    clock = Clock()
    limiter = RepeatLimiter(burst=1, interval=5, clock=clock)
    assert limiter.filter(_record({"event": "agi.bad_request", "peer": 1}))
    assert not limiter.filter(_record({"event": "agi.bad_request", "peer": 2}))
    clock.now += 5
    record = _record({"event": "agi.bad_request", "peer": 3})
    assert limiter.filter(record)
    assert isinstance(record.msg, dict)
    assert record.msg["suppressed"] == 1


def test_the_table_of_kinds_stays_bounded() -> None:
    """Distinct templates beyond max_kinds evict the oldest: memory does not grow with hostile variety."""
    limiter = RepeatLimiter(max_kinds=50, clock=Clock())
    for i in range(5000):
        limiter.filter(_record(f"template {i}"))
    assert len(limiter._windows) == 50
