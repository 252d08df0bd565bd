"""Master.csv records found line by line within bounds: quoted newlines joined, stray quotes isolated, lines
without end skipped without being held, a record the PBX is still writing left for later."""

from __future__ import annotations

import io
from collections.abc import Sequence

from crmtel.cdr.csvindex import MAX_LINE, Item, Pending, items
from crmtel.cdr.models import CdrRow
from crmtel.cdr.rows import split_reused, time_problem
from crmtel.errors import CrmtelError
from tests.fixtures.cdr_rows import row

GOOD = b'"a","b\nc"\n'


def _parse(data: bytes) -> CdrRow:
    """A stand-in record parser: two quoted fields, the first names the row."""
    text = data.decode()
    if text.count(",") != 1 or not text.startswith('"'):
        raise CrmtelError("not two fields")
    return row(text.split(",")[0].strip('"'))


def _read(data: bytes) -> list[Item | Pending]:
    return list(items(io.BytesIO(data), 0, _parse))


def _names(found: Sequence[Item | Pending]) -> list[str | None]:
    return [i.row.linkedid if isinstance(i, Item) and i.row else None for i in found]


def test_a_newline_inside_quotes_joins_two_lines_into_one_record() -> None:
    """A quoted field holding a newline is one record spanning two lines."""
    found = _read(GOOD + b'"d","e"\n')
    assert _names(found) == ["a", "d"]
    assert isinstance(found[0], Item)
    assert (found[0].offset, found[0].end) == (0, len(GOOD))


def test_a_stray_quote_breaks_its_own_line_only() -> None:
    """A line with an unbalanced quote that no following lines complete is broken alone; the next 20 are read."""
    data = b'"broken,x\n' + b"".join(f'"r{i}","v"\n'.encode() for i in range(20))
    found = _read(data)
    assert _names(found) == [None, *(f"r{i}" for i in range(20))]
    assert isinstance(found[0], Item)
    assert found[0].problem == "unbalanced quotes"


def test_a_line_longer_than_the_limit_is_skipped_without_being_held() -> None:
    """A line of 10 x MAX_LINE bytes is one broken item; the record after it is read."""
    found = _read(b'"' + b"x" * (10 * MAX_LINE) + b'"\n"z","y"\n')
    assert _names(found) == [None, "z"]
    assert isinstance(found[0], Item)
    assert found[0].problem is not None
    assert "longer than" in found[0].problem


def test_a_file_ending_inside_a_record_is_pending_not_broken() -> None:
    """No newline at the end, or an open quote at the end: the record is being written (Pending at its start)."""
    assert _read(b'"a","b"\n"c","d') == [_read(b'"a","b"\n')[0], Pending(8)]
    found = _read(b'"a","b"\n"c","d\npart')
    assert isinstance(found[-1], Pending)
    assert found[-1].offset == 8


def test_impossible_times_are_named_and_plausible_ones_pass() -> None:
    """A leg ending in 2099, ending before it starts or lasting weeks is refused with a reason."""
    now = row("x").end
    assert time_problem(row("ok"), now) is None
    assert "future" in (time_problem(row("f", year=2099), now) or "")
    assert "before it starts" in (time_problem(row("b", backwards=True), now) or "")
    assert "days" in (time_problem(row("l", days=30), now) or "")


def test_a_reused_linkedid_is_split_by_a_gap_between_legs() -> None:
    """Legs chained without a gap are one call; a leg starting hours after the rest ended is another call."""
    first = [row("1.1", offset=0), row("1.1", offset=3)]
    later = [row("1.1", offset=7200)]
    calls = split_reused([*later, *first])
    assert [len(c) for c in calls] == [2, 1]
