"""Master.csv as records with their file offsets, and an index of the file in blocks of end times.

Records are read line by line with every line bounded before it is read (``MAX_LINE``): a line of 200 MB
costs 64 KiB, not 200 MB. A line leaving a quote open is joined with the next ones (a quoted field holding
a newline) when that gives a valid record; otherwise the line alone is broken and reading goes on with the
next one. A file ending inside a record means the PBX is writing it: it is ``pending``, not broken.
"""

from __future__ import annotations

import csv
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import BinaryIO

from crmtel.cdr.models import CdrRow
from crmtel.errors import CrmtelError

# One physical line; cdr_csv writes at most 21 fields of at most 256 characters (a few KiB).
MAX_LINE = 64 * 1024
# A record spanning lines (a quoted field with newlines): at most this many lines and bytes together.
MAX_JOIN = 16
MAX_RECORD = 64 * 1024
# Quotes of a broken line tried as the start of a whole record appended after a cut-short one.
_SALVAGE_TRIES = 64
# The index's block size in bytes of the file (a few hundred legs each).
BLOCK = 256 * 1024


Parse = Callable[[bytes], CdrRow]


@dataclass(frozen=True, slots=True)
class Item:
    """One record of the file: ``[offset, end)`` with its leg, or the problem that made it unreadable."""

    offset: int
    end: int
    row: CdrRow | None
    problem: str | None = None
    raw: bytes = b""


@dataclass(frozen=True, slots=True)
class Pending:
    """The file ends inside a record starting at ``offset``: the PBX is writing it; read it next time."""

    offset: int


def _line(fh: BinaryIO) -> tuple[bytes, bool]:
    """The next physical line, and whether it was longer than MAX_LINE (then skipped, never held whole)."""
    line = fh.readline(MAX_LINE + 1)
    if len(line) <= MAX_LINE or line.endswith(b"\n"):
        return line, False
    while True:
        more = fh.readline(MAX_LINE)
        if not more or more.endswith(b"\n"):
            return b"", True


def _balanced(data: bytes) -> bool:
    # cdr_csv doubles quotes inside fields: a complete record has an even number of them.
    return data.count(b'"') % 2 == 0


def items(fh: BinaryIO, start: int, parse: Parse, stop: int | None = None) -> Iterator[Item | Pending]:
    """The records from ``start`` (a record boundary) up to ``stop`` (or the end of the file)."""
    position = start
    fh.seek(position)
    while stop is None or position < stop:
        line, too_long = _line(fh)
        after = fh.tell()
        if too_long:
            yield Item(position, after, None, f"line longer than {MAX_LINE} bytes")
            position = after
            continue
        if not line:
            return
        if not line.endswith(b"\n"):
            yield Pending(position)
            return
        if _balanced(line):
            item = _parsed(position, after, line, parse)
            yield from [item] if item.row is not None else _salvaged(item, line, parse)
            position = after
            continue
        joined, end, outcome = _join(fh, line)
        if outcome == "pending":
            yield Pending(position)
            return
        if outcome == "closed":
            item = _parsed(position, end, joined, parse)
            if item.row is not None:
                yield item
                position = end
                continue
        # Not a record with a newline inside: this line alone is broken; go on with the next one.
        yield from _salvaged(Item(position, after, None, "unbalanced quotes", line[:200]), line, parse)
        position = after
        fh.seek(position)


def _salvaged(broken: Item, line: bytes, parse: Parse) -> list[Item]:
    """A broken line, or — when a record was cut short (a full disk, the PBX killed mid-write) and the next
    one appended right after it — the fragment broken and the whole record after it read: cdr_csv writes each
    record with one fputs, so the next begins with a quote somewhere in the line."""
    start = 1
    for _ in range(_SALVAGE_TRIES):
        at = line.find(b'"', start)
        if at < 0:
            break
        item = _parsed(broken.offset + at, broken.end, line[at:], parse)
        if item.row is not None:
            return [
                Item(
                    broken.offset,
                    item.offset,
                    None,
                    f"a record cut short ({broken.problem})",
                    line[:at][:200],
                ),
                item,
            ]
        start = at + 1
    return [broken]


def _join(fh: BinaryIO, first: bytes) -> tuple[bytes, int, str]:
    """Lines after ``first`` until the quotes balance: (record, its end, "closed" | "pending" | "open")."""
    parts = [first]
    size = len(first)
    for _ in range(MAX_JOIN):
        more, too_long = _line(fh)
        if too_long or not more:
            break
        if not more.endswith(b"\n"):
            return b"", 0, "pending"
        parts.append(more)
        size += len(more)
        if size > MAX_RECORD:
            break
        joined = b"".join(parts)
        if _balanced(joined):
            return joined, fh.tell(), "closed"
    return b"", 0, "open"


def _parsed(offset: int, end: int, data: bytes, parse: Parse) -> Item:
    try:
        return Item(offset, end, parse(data))
    except (CrmtelError, csv.Error, ValueError) as err:
        return Item(offset, end, None, str(err), data[:200])


@dataclass(frozen=True, slots=True)
class Block:
    """``[offset, end)`` of the file: the earliest and latest end of its plausible legs, the first and last
    Linkedid (a call whose legs straddle two blocks shows as the same key at their border)."""

    offset: int
    end: int
    earliest: datetime | None
    latest: datetime | None
    first_key: str | None
    last_key: str | None


class BlockBuilder:
    """Accumulates items into blocks of about ``size`` bytes."""

    def __init__(self, offset: int, size: int = BLOCK) -> None:
        self.offset = offset
        self.size = size
        self._reset(offset)

    def _reset(self, offset: int) -> None:
        self._start = offset
        self._low: datetime | None = None
        self._high: datetime | None = None
        self._first: str | None = None
        self._last: str | None = None

    def add(self, item: Item, counts: bool) -> Block | None:
        """Take one item (``counts``: its times are plausible); a finished block when it is full."""
        row = item.row
        if row is not None:
            if self._first is None:
                self._first = row.linkedid
            self._last = row.linkedid
            if counts:
                self._low = row.end if self._low is None else min(self._low, row.end)
                self._high = row.end if self._high is None else max(self._high, row.end)
        self.offset = item.end
        if item.end - self._start >= self.size:
            return self.flush()
        return None

    def flush(self) -> Block | None:
        """The block so far (None when empty)."""
        if self.offset == self._start:
            return None
        block = Block(self._start, self.offset, self._low, self._high, self._first, self._last)
        self._reset(self.offset)
        return block
