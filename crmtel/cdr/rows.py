"""Rules every CDR source applies to its rows, whatever it reads (pure: no I/O).

One row must never decide the fate of others: a row whose times cannot be true (a PBX clock in 2099, a leg
ending before it starts) is skipped and logged on its own; two calls that reuse one Linkedid (a PBX whose
clock went back, two PBXs with one ``systemname`` writing one table) are kept apart by their times; text
that is not UTF-8 is read as cp1251, as Russian FreePBX installations often write it.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta

from crmtel.cdr.models import CdrRow
from crmtel.cdr.times import uniqueid_time

# Asterisk keeps every CDR field in at most 256 characters (AST_MAX_USER_FIELD); longer is corruption.
MAX_FIELD = 4096
# A leg longer than this, or ending further than this ahead of our clock, comes from a wrong clock.
MAX_LEG = timedelta(days=7)
FUTURE = timedelta(days=1)
# CDR times are whole seconds.
_SLACK = timedelta(seconds=1)
# The legs of one call follow each other without a gap (party A's records are chained, each leg overlaps the
# call); a gap this long between legs sharing a Linkedid means a second call reusing it.
REUSE_GAP = timedelta(minutes=1)
# Legs of one call start within this of each other (a queue call offered for hours is rare): every source
# looks this far back for the first legs of a call ending in its period (the SQL query on its calldate index).
CALL_SPAN = timedelta(hours=12)


def calls_begin(rows: Sequence[CdrRow]) -> datetime | None:
    """The earliest start of the calls these legs belong to: a call's Linkedid names its first channel's
    creation (every leg ends after it), else its earliest leg seen; None without legs."""
    begins = [uniqueid_time(r.linkedid) or r.start for r in rows]
    begins += [r.start for r in rows]
    return min(begins, default=None)


def decode_text(data: bytes) -> tuple[str, bool]:
    """Bytes as text: UTF-8, else cp1251 (True when the fallback was needed)."""
    try:
        return data.decode("utf-8"), False
    except UnicodeDecodeError:
        return data.decode("cp1251", "replace"), True


def time_problem(row: CdrRow, now: datetime) -> str | None:
    """Why the row's times cannot be true (to skip it, alone), or None."""
    if row.end < row.start - _SLACK:
        return f"ends ({row.end:%Y-%m-%d %H:%M:%S}) before it starts ({row.start:%Y-%m-%d %H:%M:%S})"
    if row.answer is not None and not row.start - _SLACK <= row.answer <= row.end + _SLACK:
        return f"answered ({row.answer:%Y-%m-%d %H:%M:%S}) outside the leg"
    if row.end - row.start > MAX_LEG:
        return f"lasts {(row.end - row.start).days} days: a wrong clock"
    if row.end > now + FUTURE:
        return f"ends in the future ({row.end:%Y-%m-%d %H:%M:%S} UTC): a wrong clock"
    if row.duration < 0 or row.billsec < 0:
        return f"negative duration {row.duration} / billsec {row.billsec}"
    return None


def split_reused(legs: Sequence[CdrRow]) -> list[list[CdrRow]]:
    """The legs of one Linkedid as one list per call, in start order: a new call where a leg starts more than
    ``REUSE_GAP`` after every earlier leg has ended."""
    ordered = sorted(legs, key=lambda r: (r.start, r.sequence if r.sequence is not None else 0))
    calls: list[list[CdrRow]] = []
    reach: datetime | None = None
    for leg in ordered:
        if reach is None or leg.start > reach + REUSE_GAP:
            calls.append([])
            reach = leg.end
        calls[-1].append(leg)
        reach = max(reach, leg.end)
    return calls


def ended_within(rows: Iterable[CdrRow], since: datetime, until: datetime | None) -> list[CdrRow]:
    """The legs of the calls whose LAST leg ended in ``[since, until)``: a call belongs to one period only,
    whole, even when its first legs ended before the period began (calls reusing a Linkedid apart)."""
    by_key: dict[str, list[CdrRow]] = {}
    for row in rows:
        by_key.setdefault(row.linkedid, []).append(row)
    out: list[CdrRow] = []
    for legs in by_key.values():
        for call in split_reused(legs):
            last = max(r.end for r in call)
            if last >= since and (until is None or last < until):
                out.extend(call)
    return out


def reused_key(linkedid: str, started_at: datetime) -> str:
    """The key of a second call that reused ``linkedid``: the Linkedid and its start (stable across passes)."""
    suffix = f"@{int(started_at.timestamp())}"
    return linkedid[: 64 - len(suffix)] + suffix


def overlaps(a_start: datetime, a_end: datetime | None, b_start: datetime, b_end: datetime | None) -> bool:
    """Whether two calls' times overlap (give or take ``REUSE_GAP``): then they are one call, not a reuse."""
    a_stop = (a_end or a_start) + REUSE_GAP
    b_stop = (b_end or b_start) + REUSE_GAP
    return a_start <= b_stop and b_start <= a_stop
