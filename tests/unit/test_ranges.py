"""Byte ranges decided as RFC 7233 says, for every form a browser or an attacker sends."""

from __future__ import annotations

import pytest

from crmtel.push.ranges import Part, Unsatisfiable, Whole, decide, if_range_matches

SIZE = 1000


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        (None, Whole()),
        ("bytes=0-", Part(0, 999)),
        ("bytes=0-0", Part(0, 0)),
        ("bytes=10-19", Part(10, 19)),
        ("bytes=990-5000", Part(990, 999)),
        ("bytes=-1", Part(999, 999)),
        ("bytes=-100", Part(900, 999)),
        ("bytes=-5000", Part(0, 999)),
        ("BYTES = 5-6", Part(5, 6)),
        ("bytes= 5-6 , ", Part(5, 6)),
        # A suffix of zero bytes selects nothing: 416, never the whole file.
        ("bytes=-0", Unsatisfiable()),
        ("bytes=1000-", Unsatisfiable()),
        ("bytes=1000-2000", Unsatisfiable()),
        ("bytes=" + "9" * 5000 + "-", Unsatisfiable()),
        ("bytes=1000-,-0", Unsatisfiable()),
        # One satisfiable range among unsatisfiable ones is served.
        ("bytes=5000-,10-19", Part(10, 19)),
        # Invalid syntax anywhere: the header is ignored (200), not refused.
        ("bytes=5-2", Whole()),
        ("bytes=abc", Whole()),
        ("bytes=1-2-3", Whole()),
        ("bytes=-", Whole()),
        ("bytes=", Whole()),
        ("bytes=0-1,x", Whole()),
        ("bytes=١-٢", Whole()),
        ("bytes=+1-2", Whole()),
        ("items=0-5", Whole()),
        ("0-5", Whole()),
        # Several ranges: the whole file rather than multipart.
        ("bytes=0-1,5-6", Whole()),
        ("bytes=" + ",".join(["0-0"] * 33), Whole()),
    ],
)
def test_each_range_form_gets_the_rfc_answer(header: str | None, expected: object) -> None:
    """Satisfiable single ranges → 206 part; none satisfiable → 416; invalid, foreign or several → 200."""
    assert decide(header, SIZE) == expected


def test_an_empty_file_satisfies_no_range() -> None:
    """Every range of a zero-byte file is unsatisfiable; without a Range header it is a plain 200."""
    assert decide("bytes=0-", 0) == Unsatisfiable()
    assert decide("bytes=-5", 0) == Unsatisfiable()
    assert decide(None, 0) == Whole()


def test_if_range_that_does_not_match_sends_the_whole_file() -> None:
    """If-Range with another ETag, a weak one, or another date: 200 whole; the same strong ETag or date: the part."""
    assert decide("bytes=0-9", SIZE, if_range_matches=False) == Whole()
    assert if_range_matches(None, "abc", 0)
    assert if_range_matches('"abc"', "abc", 0)
    assert not if_range_matches('"abd"', "abc", 0)
    assert not if_range_matches('W/"abc"', "abc", 0)
    assert if_range_matches("Sun, 06 Dec 2026 09:00:00 GMT", "abc", 1796547600.4)
    assert not if_range_matches("Sun, 06 Dec 2026 09:00:01 GMT", "abc", 1796547600.4)
    assert not if_range_matches("not a date", "abc", 0)
