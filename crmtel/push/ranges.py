"""HTTP byte ranges (RFC 7233, RFC 9110 §14) for a file of known size: pure, no I/O.

aiohttp's own handling serves the whole file for ``bytes=-0`` (an unsatisfiable range: 416) and refuses
a syntactically invalid or multi-range header with 416 (it must be ignored, 200); this one follows the RFC.
"""

from __future__ import annotations

from dataclasses import dataclass
from email.utils import parsedate_to_datetime

# More ranges than this in one header is abuse (RFC 9110 §14.2 lets a server ignore the header).
MAX_RANGES = 32
# Bigger than any file: a position of 19+ digits needs no exact value (and int() caps digits anyway).
_HUGE = 1 << 63


@dataclass(frozen=True, slots=True)
class Whole:
    """Send the whole file with 200 (no Range, an invalid one, several, or If-Range not matching)."""


@dataclass(frozen=True, slots=True)
class Part:
    """Send bytes ``start`` to ``end`` inclusive with 206 and ``Content-Range: bytes start-end/size``."""

    start: int
    end: int


@dataclass(frozen=True, slots=True)
class Unsatisfiable:
    """No range of the header lies in the file: 416 with ``Content-Range: bytes */size``."""


Decision = Whole | Part | Unsatisfiable


def _number(text: str) -> int | None:
    if not text or not text.isascii() or not text.isdigit():
        return None
    return _HUGE if len(text) > 18 else int(text)


def _spec(text: str, size: int) -> Part | Unsatisfiable | None:
    """One byte-range-spec: the part it selects, Unsatisfiable, or None when it is not valid syntax."""
    first_text, sep, last_text = text.partition("-")
    if not sep:
        return None
    if not first_text:
        suffix = _number(last_text)
        if suffix is None:
            return None
        # A suffix of zero bytes selects nothing (RFC 7233 §2.1: "bytes=-0" is unsatisfiable).
        if suffix == 0 or size == 0:
            return Unsatisfiable()
        return Part(max(0, size - suffix), size - 1)
    first = _number(first_text)
    if first is None:
        return None
    last: int | None = None
    if last_text:
        last = _number(last_text)
        if last is None or last < first:
            return None
    if first >= size:
        return Unsatisfiable()
    return Part(first, size - 1 if last is None else min(last, size - 1))


def decide(range_header: str | None, size: int, *, if_range_matches: bool = True) -> Decision:
    """What to send for ``Range: range_header`` on a file of ``size`` bytes (RFC 7233 §2–4)."""
    if range_header is None or not if_range_matches:
        return Whole()
    unit, sep, ranges = range_header.partition("=")
    if not sep or unit.strip().lower() != "bytes":
        # A unit we do not know is ignored, not refused.
        return Whole()
    specs = [s.strip() for s in ranges.split(",")]
    specs = [s for s in specs if s]
    if not specs or len(specs) > MAX_RANGES:
        return Whole()
    found: list[Part] = []
    for spec in specs:
        result = _spec(spec, size)
        if result is None:
            # One invalid spec makes the whole header ignored (RFC 7233 §2.1).
            return Whole()
        if isinstance(result, Part):
            found.append(result)
    if not found:
        return Unsatisfiable()
    if len(found) == 1:
        return found[0]
    # Several satisfiable ranges: a server may send the whole representation instead of multipart.
    return Whole()


def if_range_matches(if_range: str | None, etag: str, last_modified: float) -> bool:
    """Whether ``If-Range`` allows a partial answer: absent, the same strong ETag, or exactly the Last-Modified."""
    if if_range is None:
        return True
    value = if_range.strip()
    if value.startswith(('"', "W/")):
        # Weak validators never match (RFC 7233 §3.2).
        return value == f'"{etag}"'
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return False
    return int(when.timestamp()) == int(last_modified)
