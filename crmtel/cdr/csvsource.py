"""``cdr_csv``'s ``Master.csv``, read with the csv module, columns exactly as Asterisk 22's ``cdr/cdr_csv.c``.

Each line is ``accountcode, src, dst, dcontext, clid, channel, dstchannel, lastapp, lastdata, start,
answer, end, duration, billsec, disposition, amaflags``, then ``uniqueid`` (``loguniqueid = yes``),
``userfield`` (``loguserfield = yes``) and ``peeraccount, linkedid, sequence`` (``newcdrcolumns = yes``).
Strings are quoted with doubled quotes, integers bare, an unset time is an empty field. The file only grows,
one call's legs together when the call ends, so it is roughly ordered by end time: a read bisects to the
wanted period instead of scanning years of lines. A broken line is skipped and logged, never fatal.
"""

from __future__ import annotations

import asyncio
import csv
import logging
import re
from collections.abc import Collection
from datetime import datetime, timedelta, tzinfo
from pathlib import Path
from typing import BinaryIO

from crmtel.cdr.models import CdrRow, CdrSourceUnavailable
from crmtel.cdr.times import parse_cdr_time
from crmtel.errors import CrmtelError

log = logging.getLogger(__name__)

_BASE_COLUMNS = 16
_UNIQUEID = re.compile(r"\d+\.\d+$")
# How far the bisection may land before the period: a leg's end precedes the moment its call was written.
_BISECT_SLACK = timedelta(hours=2)
_BISECT_STOP = 64 * 1024
# Bad lines logged one by one; after that only counted.
_LOG_BAD = 20


class CdrCsvError(CrmtelError):
    """A Master.csv line that is not a cdr_csv record."""


def parse_line(fields: list[str], zone: tzinfo) -> CdrRow:
    """One Master.csv record (already split by the csv module) -> a leg; CdrCsvError if it is not one."""
    count = len(fields)
    if count < _BASE_COLUMNS or count > _BASE_COLUMNS + 5:
        raise CdrCsvError(f"{count} columns (cdr_csv writes 16 to 21)")
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
        start = parse_cdr_time(fields[9], zone)
        answer = parse_cdr_time(fields[10], zone)
        end = parse_cdr_time(fields[11], zone)
        duration, billsec = int(fields[12]), int(fields[13])
    except ValueError as err:
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


def _ended_within(rows: list[CdrRow], since: datetime, until: datetime | None) -> list[CdrRow]:
    """The legs of the calls whose LAST leg ended in ``[since, until)``: a call belongs to one period only,
    whole, even when its first legs ended before the period began."""
    last: dict[str, datetime] = {}
    for row in rows:
        if row.end > last.get(row.linkedid, row.end - timedelta(seconds=1)):
            last[row.linkedid] = row.end
    return [r for r in rows if last[r.linkedid] >= since and (until is None or last[r.linkedid] < until)]


def _split(raw: bytes) -> list[str] | None:
    text = raw.decode("utf-8", "replace").rstrip("\r\n")
    if not text:
        return None
    return next(csv.reader([text], strict=True))


class CsvCdrSource:
    """Reads one PBX's Master.csv (read-only; the file may be rotated or missing: then nothing is read)."""

    def __init__(self, path: str | Path, zone: tzinfo) -> None:
        self.path = Path(path)
        self.zone = zone
        self.skipped = 0

    def describe(self) -> str:
        """Where the CDRs come from."""
        return f"csv:{self.path}"

    async def legs(self, since: datetime, until: datetime | None = None) -> list[CdrRow]:
        """Every leg that ended in ``[since, until)`` (and the legs written with them)."""
        return await asyncio.to_thread(self._read, since, until, None)

    async def legs_of(self, linkedids: Collection[str], since: datetime) -> list[CdrRow]:
        """The legs of these calls (or, without linkedid in the file, every leg since then)."""
        return await asyncio.to_thread(self._read, since, None, frozenset(linkedids))

    async def close(self) -> None:
        """Nothing to close: the file is opened for each read."""

    def _read(self, since: datetime, until: datetime | None, wanted: frozenset[str] | None) -> list[CdrRow]:
        try:
            fh = self.path.open("rb")
        except FileNotFoundError:
            log.warning("cdr %s: no such file (yet): nothing to read", self.path)
            return []
        except OSError as err:
            raise CdrSourceUnavailable(f"cannot read {self.path}: {err.strerror or err}") from err
        out: list[CdrRow] = []
        bad = 0
        stop = until + _BISECT_SLACK if until is not None else None
        with fh:
            position = self._bisect(fh, since - _BISECT_SLACK)
            fh.seek(position)
            if position:
                fh.readline()  # the rest of a line cut by the bisection
            for raw in fh:
                try:
                    fields = _split(raw)
                    if fields is None:
                        continue
                    row = parse_line(fields, self.zone)
                except (CdrCsvError, csv.Error) as err:
                    bad += 1
                    if bad <= _LOG_BAD:
                        log.warning("cdr %s: line skipped (%s): %.120r", self.path, err, raw)
                    continue
                if stop is not None and row.end >= stop:
                    break
                if row.end < since - _BISECT_SLACK:
                    continue
                if wanted is not None and row.has_linkedid and row.linkedid not in wanted:
                    continue
                out.append(row)
        if bad:
            self.skipped += bad
            log.warning("cdr %s: %d broken line(s) skipped", self.path, bad)
        return _ended_within(out, since, until)

    def _bisect(self, fh: BinaryIO, target: datetime) -> int:
        """A file offset at or before the first line whose end time is ``target`` or later."""
        lo, hi = 0, fh.seek(0, 2)
        while hi - lo > _BISECT_STOP:
            mid = (lo + hi) // 2
            fh.seek(mid)
            fh.readline()
            end = self._next_end(fh, hi)
            if end is None or end >= target:
                hi = mid
            else:
                lo = mid
        return lo

    def _next_end(self, fh: BinaryIO, limit: int) -> datetime | None:
        while fh.tell() < limit:
            raw = fh.readline()
            if not raw:
                return None
            try:
                fields = _split(raw)
                if fields is not None:
                    return parse_line(fields, self.zone).end
            except (CdrCsvError, csv.Error):
                continue
        return None
