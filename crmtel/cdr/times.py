"""CDR times: Asterisk writes them in the PBX's local time (``usegmtime`` makes it UTC), to the second.

When DST ends the clocks show one hour twice: a naive local time in it has two readings, an hour apart. The
leg's own numbers say which one it is (``leg_times``): its Uniqueid holds the channel's creation in UTC.
"""

from __future__ import annotations

import contextlib
import functools
import os
from collections.abc import Callable
from datetime import UTC, datetime, timedelta, tzinfo
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from crmtel.errors import ConfigError

CDR_TIME_FORMAT = "%Y-%m-%d %H:%M:%S"
LOCALTIME = "/etc/localtime"


def pbx_zone(name: str | None, usegmtime: bool) -> tzinfo:
    """The zone CDR times are written in: UTC with ``usegmtime``, else ``name`` (None: this host's zone)."""
    if usegmtime:
        return UTC
    if name is None:
        return host_zone()
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as err:
        raise ConfigError(f"cdr_timezone {name!r} is not a known time zone") from err


def host_zone() -> tzinfo:
    """This host's zone with its rules (``TZ``, else ``/etc/localtime``), not just today's offset."""
    name = os.environ.get("TZ", "").lstrip(":")
    if name:
        with contextlib.suppress(ZoneInfoNotFoundError, ValueError):
            return ZoneInfo(name)
    try:
        with open(LOCALTIME, "rb") as tzfile:
            return ZoneInfo.from_file(tzfile, key="localtime")
    except (OSError, ValueError):
        # No zone database here: today's offset is the best there is (wrong across a DST change).
        local = datetime.now().astimezone().tzinfo
        return local if local is not None else UTC


def uniqueid_time(uniqueid: str | None) -> datetime | None:
    """When Asterisk made a channel, from its Uniqueid (``[systemname-]EPOCH.SEQ``): UTC, whole seconds."""
    if not uniqueid:
        return None
    head, dot, seq = uniqueid.rpartition(".")
    epoch = head.rpartition("-")[2]
    if not dot or not seq.isdigit() or not epoch.isdigit() or not 9 <= len(epoch) <= 11:
        return None
    return datetime.fromtimestamp(int(epoch), UTC)


def readings(value: datetime, zone: tzinfo) -> tuple[datetime, datetime | None]:
    """A naive local time in UTC, and its second reading when the clocks showed it twice (else None)."""
    offsets = _hour_offsets(zone, value.year, value.month, value.day, value.hour)
    if offsets is None:
        aware = value.replace(tzinfo=zone)
        offsets = aware.utcoffset(), aware.replace(fold=1).utcoffset()
    first, second = offsets
    if first is None or second is None:
        return value.replace(tzinfo=zone).astimezone(UTC), None
    utc = (value - first).replace(tzinfo=UTC)
    return utc, None if second == first else (value - second).replace(tzinfo=UTC)


@functools.lru_cache(maxsize=4096)
def _hour_offsets(
    zone: tzinfo, year: int, month: int, day: int, hour: int
) -> tuple[timedelta | None, timedelta | None] | None:
    """The zone's offsets (first reading, second reading) for a whole local hour, or None if they change in it.

    A year of Master.csv has millions of times in a few thousand hours: the zone's rules are asked once an hour.
    """
    found = set()
    start = datetime(year, month, day, hour)
    for moment in (start, start + timedelta(minutes=59, seconds=59)):
        aware = moment.replace(tzinfo=zone)
        found.add((aware.utcoffset(), aware.replace(fold=1).utcoffset()))
    return found.pop() if len(found) == 1 else None


def offset_swing(zone: tzinfo, at: datetime, around: timedelta = timedelta(days=1)) -> timedelta:
    """How far the zone's UTC offset moves within ``around`` of the instant ``at`` (zero away from DST changes).

    A naive local time is not in the order of the instants it names across a change (02:50 CEST is before
    02:05 CET): a window of instants read by naive local bounds must widen each bound by this much.
    """
    step = timedelta(minutes=15)
    first = at.astimezone(UTC) - around
    offsets = {(first + step * i).astimezone(zone).utcoffset() for i in range(int(2 * around / step) + 1)}
    known = [o for o in offsets if o is not None]
    return max(known) - min(known) if known else timedelta(0)


def local_to_utc(value: datetime, zone: tzinfo, near: datetime | None = None) -> datetime:
    """A naive PBX-local time (or an aware one, kept as it says) in UTC.

    A local time the clocks show twice (the hour repeated when DST ends) is the one of the two nearest to
    ``near`` (a UTC time the caller knows to be close: the channel's Uniqueid, the start plus the duration);
    without ``near``, the first.
    """
    if value.tzinfo is not None:
        return value.astimezone(UTC)
    first, second = readings(value, zone)
    if second is not None and near is not None and abs(second - near) < abs(first - near):
        return second
    return first


def parse_cdr_time(text: str, zone: tzinfo, near: datetime | None = None) -> datetime | None:
    """``2026-11-23 19:27:17`` in the PBX zone -> UTC; empty (never answered) -> None; ValueError if bad.

    ``near`` picks between the two readings of a time in the repeated hour (see ``local_to_utc``).
    """
    value = parse_naive(text)
    return None if value is None else local_to_utc(value, zone, near)


def leg_times(
    start: datetime | None,
    answer: datetime | None,
    end: datetime | None,
    zone: tzinfo,
    *,
    uniqueid: str | None,
    duration: int,
    billsec: int,
) -> tuple[datetime | None, datetime | None, datetime | None]:
    """A CDR leg's naive local start, answer and end in UTC, each in the right hour when DST ends.

    The start is placed by the leg's Uniqueid (the channel's creation, in UTC), the end by start + duration,
    the answer by end - billsec: a leg entirely inside the repeated hour, or one that spans the change, gets
    its true times and durations. Hints are worked out only for a time that has two readings.
    """
    start_utc = end_utc = answer_utc = None
    if start is not None:
        start_utc = _nearest(start, zone, lambda: uniqueid_time(uniqueid))
    if end is not None:
        end_utc = _nearest(end, zone, lambda: _plus(start_utc, duration))
    if answer is not None:
        answer_utc = _nearest(answer, zone, lambda: _plus(end_utc, -billsec))
    return start_utc, answer_utc, end_utc


def _plus(value: datetime | None, seconds: int) -> datetime | None:
    return None if value is None else value + timedelta(seconds=seconds)


def _nearest(value: datetime, zone: tzinfo, hint: Callable[[], datetime | None]) -> datetime:
    if value.tzinfo is not None:
        return value.astimezone(UTC)
    first, second = readings(value, zone)
    if second is None:
        return first
    near = hint()
    if near is not None and abs(second - near) < abs(first - near):
        return second
    return first


def parse_naive(text: str) -> datetime | None:
    """``2026-11-23 19:27:17`` as a naive local time; empty (never answered) -> None; ValueError if bad."""
    text = text.strip()
    if not text:
        return None
    if len(text) == 19 and text[4] == "-" and text[7] == "-" and text[10] == " " and text.isascii():
        # fromisoformat is ten times faster than strptime, and a year of Master.csv has millions of times.
        return datetime.fromisoformat(text)
    return datetime.strptime(text, CDR_TIME_FORMAT)
