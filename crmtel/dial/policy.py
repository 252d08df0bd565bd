"""Click-to-call policy, pure: which numbers may be called, and how many attempts a manager and a PBX may make.

Toll fraud is the classic attack on a PBX: a stolen session or a script rings the manager's phone (with
auto-answer it picks up by itself) and dials premium or foreign numbers. So every attempt — from the page, the
CLI or another cluster node — passes the PBX's number patterns, and attempts are counted in a sliding window
per manager and per PBX.
"""

from __future__ import annotations

import fnmatch
import math
from collections import OrderedDict, deque
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta

from crmtel.config import OriginateSettings
from crmtel.dial.models import serves
from crmtel.phones import PhoneKind


@dataclass(frozen=True, slots=True)
class Verdict:
    """Why a number may not be called: the catalogue key and the pattern that decided (None: allowed)."""

    key: str
    pattern: str | None = None


def _matches(number: str, patterns: tuple[str, ...]) -> str | None:
    return next((p for p in patterns if fnmatch.fnmatchcase(number, p)), None)


def check_number(number: str, kind: PhoneKind, settings: OriginateSettings) -> Verdict | None:
    """None when ``number`` (E.164 or an extension) may be called on this PBX, else why not."""
    if kind is PhoneKind.E164:
        allow, deny = settings.allow, settings.deny
    elif kind is PhoneKind.EXTENSION and number.isascii() and number.isdigit():
        # An internal number: one the policy allows (by default exactly the 3-digit extensions the shipped
        # dialplan rings) or one of this PBX's configured extensions — anything else would reach the trunk.
        allow, deny = settings.allow_extensions, settings.deny_extensions
        if serves(settings, number):
            allow = (number,)
    else:
        return Verdict("dial.bad_number")
    denied = _matches(number, deny)
    if denied is not None:
        return Verdict("dial.number_denied", denied)
    if _matches(number, allow) is None:
        return Verdict("dial.number_not_allowed")
    return None


class SlidingWindow:
    """At most ``limit`` events per key in any ``seconds``; remembers at most ``max_keys`` keys (oldest first
    forgotten), each with at most ``limit`` times, so memory is bounded whatever a script sends."""

    def __init__(self, limit: int, seconds: float, *, max_keys: int = 10_000) -> None:
        self.limit = limit
        self.seconds = seconds
        self._max_keys = max_keys
        self._times: OrderedDict[str, deque[float]] = OrderedDict()

    def wait(self, key: str, now: float) -> float:
        """Seconds until ``key`` may have one more event (0: now)."""
        times = self._times.get(key)
        if times is None:
            return 0.0
        while times and now - times[0] >= self.seconds:
            times.popleft()
        if len(times) < self.limit:
            return 0.0
        return times[0] + self.seconds - now

    def take(self, key: str, now: float) -> float:
        """Count one event for ``key`` if the window allows it (returns 0), else the seconds to wait."""
        wait = self.wait(key, now)
        if wait > 0:
            return wait
        times = self._times.get(key)
        if times is None:
            times = self._times[key] = deque(maxlen=self.limit)
            while len(self._times) > self._max_keys:
                self._times.popitem(last=False)
        self._times.move_to_end(key)
        times.append(now)
        return 0.0


@dataclass(frozen=True, slots=True)
class RateRefusal:
    """Too many attempts: the catalogue key (per manager or per PBX) and whole seconds until the next may go."""

    key: str
    retry_after: int


def _refusal(key: str, wait: float) -> RateRefusal:
    return RateRefusal(key, max(1, math.ceil(wait)))


class DialLimits:
    """The per-manager and per-PBX windows of every PBX's ``originate`` settings."""

    def __init__(self, settings: Mapping[str, OriginateSettings]) -> None:
        self._managers = {
            pbx: SlidingWindow(s.max_per_manager, s.rate_seconds) for pbx, s in settings.items()
        }
        self._pbxes = {pbx: SlidingWindow(s.max_per_pbx, s.rate_seconds) for pbx, s in settings.items()}

    def take(self, pbx: str, manager: str | None, now: float) -> RateRefusal | None:
        """Count an attempt on ``pbx`` by ``manager`` (None: a script, the PBX's window only), or why not."""
        managers, pbxes = self._managers[pbx], self._pbxes[pbx]
        if manager is not None:
            wait = managers.wait(manager, now)
            if wait > 0:
                return _refusal("dial.rate_manager", wait)
        wait = pbxes.take(pbx, now)
        if wait > 0:
            return _refusal("dial.rate_pbx", wait)
        if manager is not None:
            managers.take(manager, now)
        return None


@dataclass(frozen=True, slots=True)
class LogWindows:
    """The windows an attempt is counted in across processes (the audit log every node shares): the manager's
    (``manager``: their login; None for the CLI) and the PBX's, each at most ``limit`` placed in ``seconds``."""

    pbx: str
    manager: str | None
    per_manager: int
    per_pbx: int
    seconds: float


def log_refusal(
    windows: LogWindows, manager_full: datetime | None, pbx_full: datetime | None, now: datetime
) -> RateRefusal | None:
    """Whether the log's windows have room for one more attempt at ``now``: ``manager_full`` / ``pbx_full`` is
    the time of the limit-th newest placed attempt still in that window (None: fewer, room). A window is full
    until that attempt leaves it, which is the wait the refusal names."""
    span = timedelta(seconds=windows.seconds)
    if windows.manager is not None and manager_full is not None and manager_full + span > now:
        return _refusal("dial.rate_manager", (manager_full + span - now).total_seconds())
    if pbx_full is not None and pbx_full + span > now:
        return _refusal("dial.rate_pbx", (pbx_full + span - now).total_seconds())
    return None
