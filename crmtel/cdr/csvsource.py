"""``cdr_csv``'s ``Master.csv``, read with the csv module, columns exactly as Asterisk 22's ``cdr/cdr_csv.c``.

Each line is ``accountcode, src, dst, dcontext, clid, channel, dstchannel, lastapp, lastdata, start,
answer, end, duration, billsec, disposition, amaflags``, then ``uniqueid`` (``loguniqueid = yes``),
``userfield`` (``loguserfield = yes``) and ``peeraccount, linkedid, sequence`` (``newcdrcolumns = yes``).
Strings are quoted with doubled quotes, integers bare, an unset time is an empty field; a quoted field may
hold a newline (a caller name typed with one), so a record may span lines.

The file only grows, but nothing promises its order: a PBX whose clock was wrong for a while writes a block
of rows dated 2001 or 2099 among today's. The reader never assumes order: an index of the file in blocks
(each block's earliest and latest end time, kept per source and extended as the file grows) says which
blocks can hold legs of the period, and only those are read. Every line is bounded before it is read
(``MAX_LINE``), every field after (``MAX_FIELD``); text that is not UTF-8 is read as cp1251. A broken or
impossible row is skipped and logged on its own; a record the PBX is still writing (the file ends inside it)
is left for the next read, and the read says so (``incomplete``) so the watermark stays before it.
"""

from __future__ import annotations

import asyncio
import csv
import logging
import os
import re
import threading
from collections.abc import Collection, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, tzinfo
from pathlib import Path
from typing import BinaryIO

from crmtel.cdr.csvindex import BLOCK, Block, BlockBuilder, Pending, items
from crmtel.cdr.models import CdrRow, CdrSourceUnavailable
from crmtel.cdr.rows import CALL_SPAN, MAX_FIELD, calls_begin, decode_text, ended_within, time_problem
from crmtel.cdr.times import leg_times, parse_naive
from crmtel.errors import CrmtelError

log = logging.getLogger(__name__)

_BASE_COLUMNS = 16
_UNIQUEID = re.compile(r"\d+\.\d+$")


class CdrCsvError(CrmtelError):
    """A Master.csv line that is not a cdr_csv record."""


def parse_line(fields: list[str], zone: tzinfo) -> CdrRow:
    """One Master.csv record (already split by the csv module) -> a leg; CdrCsvError if it is not one."""
    count = len(fields)
    if count < _BASE_COLUMNS or count > _BASE_COLUMNS + 5:
        raise CdrCsvError(f"{count} columns (cdr_csv writes 16 to 21)")
    longest = max(range(count), key=lambda i: len(fields[i]))
    if len(fields[longest]) > MAX_FIELD:
        raise CdrCsvError(f"field {longest + 1} has {len(fields[longest])} characters (at most {MAX_FIELD})")
    extra = fields[_BASE_COLUMNS:]
    uniqueid = userfield = peeraccount = linkedid = ""
    sequence: int | None = None
    if count >= _BASE_COLUMNS + 3:
        # newcdrcolumns: the last three are peeraccount, linkedid, sequence (an integer).
        peeraccount, linkedid, seq = extra[-3:]
        if not seq.strip().lstrip("-").isdigit():
            raise CdrCsvError(f"sequence {seq[:20]!r} is not an integer")
        sequence = int(seq)
        extra = extra[:-3]
    if len(extra) == 2:
        uniqueid, userfield = extra
    elif len(extra) == 1:
        # loguniqueid or loguserfield alone: a Uniqueid looks like 1795462037.14.
        if _UNIQUEID.search(extra[0]):
            uniqueid = extra[0]
        else:
            userfield = extra[0]
    key = linkedid or uniqueid
    if not key:
        raise CdrCsvError("no uniqueid or linkedid (set loguniqueid = yes and newcdrcolumns = yes)")
    try:
        duration, billsec = int(fields[12]), int(fields[13])
        start, answer, end = leg_times(
            parse_naive(fields[9]),
            parse_naive(fields[10]),
            parse_naive(fields[11]),
            zone,
            uniqueid=uniqueid or key,
            duration=duration,
            billsec=billsec,
        )
    except (ValueError, OverflowError) as err:
        raise CdrCsvError(f"bad time or number: {err}") from err
    if start is None or end is None:
        raise CdrCsvError("no start or end time")
    return CdrRow(
        linkedid=key,
        uniqueid=uniqueid,
        channel=fields[5],
        dstchannel=fields[6],
        src=fields[1],
        dst=fields[2],
        clid=fields[4],
        lastapp=fields[7],
        lastdata=fields[8],
        start=start,
        answer=answer,
        end=end,
        duration=duration,
        billsec=billsec,
        disposition=fields[14],
        dcontext=fields[3],
        accountcode=fields[0],
        userfield=userfield,
        peeraccount=peeraccount,
        sequence=sequence,
        has_linkedid=bool(linkedid),
    )


def split_record(text: str) -> list[str]:
    """One record's text (newlines inside quoted fields kept) split into fields; csv.Error if it is not CSV."""
    rows = list(csv.reader([text.rstrip("\r\n")], strict=True))
    if len(rows) != 1:
        raise csv.Error("not one record")
    return rows[0]


# Legs of a call end before the call does (its CDR is written when it ends): blocks whose legs all ended up to
# this long before the period may still hold the first legs of a call ending in it.
SLACK = timedelta(hours=2)
# A file ending inside a record this long after its last change is a crash's leftover, not a write going on.
TAIL_GRACE = timedelta(minutes=5)
# Bad rows logged one by one per read; after that only counted.
_LOG_BAD = 20
_FINGERPRINT = 4096
_BAD_REMEMBERED = 100_000


@dataclass
class _Index:
    """What is known of one file: its identity, its first bytes and its blocks up to ``indexed_to``."""

    identity: tuple[int, int]
    fingerprint: bytes
    blocks: list[Block] = field(default_factory=list)

    @property
    def indexed_to(self) -> int:
        return self.blocks[-1].end if self.blocks else 0


class CsvCdrSource:
    """Reads one PBX's Master.csv (read-only; the file may be rotated or missing: then nothing is read)."""

    def __init__(self, path: str | Path, zone: tzinfo, *, block_size: int = BLOCK) -> None:
        self.path = Path(path)
        self.zone = zone
        self.block_size = block_size
        # Rows skipped as broken or impossible, over every read.
        self.skipped = 0
        # Whether the last read met a record the PBX is still writing (the watermark must stay before it).
        self.incomplete = False
        self.cp1251_rows = 0
        # Offsets of the bad rows counted and logged already: a row read by several passes counts once.
        self._bad_seen: set[int] = set()
        self._index: _Index | None = None
        # legs() and legs_of() run in worker threads and may overlap: one reads the file at a time.
        self._lock = threading.Lock()

    def describe(self) -> str:
        """Where the CDRs come from."""
        return f"csv:{self.path}"

    async def legs(self, since: datetime, until: datetime | None = None) -> list[CdrRow]:
        """Every leg of the calls whose last leg ended in ``[since, until)``."""
        return await asyncio.to_thread(self._read, since, until, None)

    async def legs_of(self, linkedids: Collection[str], since: datetime) -> list[CdrRow]:
        """The legs of these calls (or, without linkedid in the file, every leg since then)."""
        return await asyncio.to_thread(self._read, since, None, frozenset(linkedids))

    async def close(self) -> None:
        """Nothing to close: the file is opened for each read."""

    def _parse(self, data: bytes) -> CdrRow:
        if b"\x00" in data:
            raise CdrCsvError("NUL byte in the line")
        text, fell_back = decode_text(data)
        if not fell_back:
            return parse_line(split_record(text), self.zone)
        # Not UTF-8 as a whole: field by field, since one line may mix a cp1251 caller name (from the trunk)
        # with UTF-8 text from the dialplan. Latin-1 maps each byte to one character, so the split is the
        # bytes' own (quotes and commas are ASCII in both).
        fields = [decode_text(f.encode("latin-1"))[0] for f in split_record(data.decode("latin-1"))]
        row = parse_line(fields, self.zone)
        self.cp1251_rows += 1
        return row

    def _read(self, since: datetime, until: datetime | None, wanted: frozenset[str] | None) -> list[CdrRow]:
        now = datetime.now(UTC)
        with self._lock:
            try:
                fh = self.path.open("rb")
            except FileNotFoundError:
                log.warning("cdr %s: no such file (yet): nothing to read", self.path)
                self.incomplete = False
                return []
            except OSError as err:
                raise CdrSourceUnavailable(f"cannot read {self.path}: {err.strerror or err}") from err
            try:
                with fh:
                    pending = self._update_index(fh, now)
                    chosen = self._chosen(since - SLACK, until)
                    rows = self._rows(fh, chosen, now, wanted)
                    rows += self._first_legs(fh, rows, chosen, since, until, now, wanted)
                    modified = datetime.fromtimestamp(os.fstat(fh.fileno()).st_mtime, UTC)
            except OSError as err:
                raise CdrSourceUnavailable(f"cannot read {self.path}: {err.strerror or err}") from err
        self.incomplete = pending is not None and now - modified < TAIL_GRACE
        if pending is not None and not self.incomplete:
            log.warning(
                "cdr %s: the file ends inside a record unchanged since %s (a crash's leftover): not read",
                self.path,
                f"{modified:%Y-%m-%d %H:%M:%S} UTC",
            )
        return ended_within(rows, since, until)

    def _first_legs(
        self,
        fh: BinaryIO,
        rows: list[CdrRow],
        chosen: list[Block],
        since: datetime,
        until: datetime | None,
        now: datetime,
        wanted: frozenset[str] | None,
    ) -> list[CdrRow]:
        """The earlier legs of a long call ending in the period, in blocks before ``SLACK``: every leg of a call
        ends after the call began, so the blocks ending since then (at most ``CALL_SPAN`` back, as the SQL
        sources look) are read for those calls' legs."""
        ending = ended_within(rows, since, until)
        begins = calls_begin(ending)
        if begins is None or begins >= since - SLACK:
            return []
        keys = frozenset(r.linkedid for r in ending)
        more = [b for b in self._chosen(max(begins, since - CALL_SPAN), since - SLACK) if b not in chosen]
        return self._rows(fh, more, now, keys if wanted is None else keys & wanted)

    def _update_index(self, fh: BinaryIO, now: datetime) -> Pending | None:
        """Extend the index over what the file gained (rebuilt when it was replaced, cut or rewritten)."""
        info = os.fstat(fh.fileno())
        identity = (info.st_dev, info.st_ino)
        fingerprint = fh.read(_FINGERPRINT)
        index = self._index
        same = min(len(fingerprint), len(index.fingerprint)) if index is not None else 0
        if (
            index is None
            or index.identity != identity
            or info.st_size < index.indexed_to
            or fingerprint[:same] != index.fingerprint[:same]
        ):
            index = self._index = _Index(identity, fingerprint)
            self._bad_seen.clear()
        index.fingerprint = max(index.fingerprint, fingerprint, key=len)
        # The last block may have been cut short by the end of the file: read it again to fill it up.
        if index.blocks and index.blocks[-1].end - index.blocks[-1].offset < self.block_size:
            index.blocks.pop()
        builder = BlockBuilder(index.indexed_to, self.block_size)
        pending: Pending | None = None
        for item in items(fh, index.indexed_to, self._parse):
            if isinstance(item, Pending):
                pending = item
                break
            plausible = item.row is not None and time_problem(item.row, now) is None
            block = builder.add(item, plausible)
            if block is not None:
                index.blocks.append(block)
        last = builder.flush()
        if last is not None:
            index.blocks.append(last)
        return pending

    def _chosen(self, low: datetime, high: datetime | None) -> list[Block]:
        """The blocks that may hold legs ending in ``[low, high)``, with neighbours sharing a call at the border."""
        assert self._index is not None
        blocks = self._index.blocks
        picked: set[int] = set()
        for i, block in enumerate(blocks):
            if block.latest is None or block.earliest is None:
                continue
            if block.latest >= low and (high is None or block.earliest < high):
                picked.add(i)
        for i in sorted(picked):
            j = i
            while j > 0 and blocks[j].first_key is not None and blocks[j - 1].last_key == blocks[j].first_key:
                j -= 1
                picked.add(j)
            j = i
            while (
                j + 1 < len(blocks)
                and blocks[j].last_key is not None
                and blocks[j + 1].first_key == blocks[j].last_key
            ):
                j += 1
                picked.add(j)
        return [blocks[i] for i in sorted(picked)]

    def _rows(
        self, fh: BinaryIO, blocks: list[Block], now: datetime, wanted: frozenset[str] | None
    ) -> list[CdrRow]:
        out: list[CdrRow] = []
        bad = 0
        for offset, end in _runs(blocks):
            for item in items(fh, offset, self._parse, stop=end):
                if isinstance(item, Pending):
                    break
                row = item.row
                problem = item.problem if row is None else time_problem(row, now)
                if problem is not None:
                    if item.offset in self._bad_seen:
                        continue
                    if len(self._bad_seen) < _BAD_REMEMBERED:
                        self._bad_seen.add(item.offset)
                    bad += 1
                    if bad <= _LOG_BAD:
                        log.warning("cdr %s: line skipped (%s): %.120r", self.path, problem, item.raw or row)
                    continue
                assert row is not None
                if wanted is not None and row.has_linkedid and row.linkedid not in wanted:
                    continue
                out.append(row)
        if bad:
            self.skipped += bad
            log.warning("cdr %s: %d broken or impossible line(s) skipped", self.path, bad)
        return out


def _runs(blocks: list[Block]) -> Iterator[tuple[int, int]]:
    """Contiguous byte ranges covering the blocks (adjacent blocks read in one go)."""
    start: int | None = None
    end = 0
    for block in blocks:
        if start is not None and block.offset == end:
            end = block.end
            continue
        if start is not None:
            yield start, end
        start, end = block.offset, block.end
    if start is not None:
        yield start, end
