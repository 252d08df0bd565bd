"""Value objects shared by every package: parties, calls and the live call events."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal

# Reasons are the call domain's stable codes; re-exported here, where every value object of a call lives.
from crmtel.calls.reasons import MissedReason as MissedReason
from crmtel.calls.reasons import StopReason as StopReason


class Direction(enum.StrEnum):
    """Which way a call went, seen from the company."""

    INBOUND = "inbound"
    OUTBOUND = "outbound"
    INTERNAL = "internal"


class Outcome(enum.StrEnum):
    """How a call ended."""

    ANSWERED = "answered"
    MISSED = "missed"


class PartyKind(enum.StrEnum):
    """What a phone number belongs to in the CRM."""

    CLIENT = "client"
    LEAD = "lead"


class Role(enum.StrEnum):
    """A manager's role: a plain sales manager or a head of sales."""

    MANAGER = "manager"
    HEAD = "head"


class Category(enum.StrEnum):
    """The sales line a client or a manager belongs to."""

    RETAIL = "retail"
    WHOLESALE = "wholesale"


class LeadStatus(enum.StrEnum):
    """Where a lead is in its life."""

    NEW = "new"
    IN_WORK = "in_work"
    CONVERTED = "converted"
    REFUSED = "refused"


class DealStatus(enum.StrEnum):
    """Whether a deal is still open, won or lost."""

    OPEN = "open"
    WON = "won"
    LOST = "lost"


@dataclass(frozen=True, slots=True)
class Manager:
    """A sales manager (or head) and the extensions their phones answer on."""

    id: int
    name: str
    login: str
    role: Role
    active: bool
    speciality: Category | None
    extensions: tuple[str, ...]
    # The language the person chose on the page; None follows their browser.
    locale: str | None = None
    # The manager's mobile (E.164): click-to-call "via my mobile" and the follow-me step ring it.
    mobile: str | None = None


@dataclass(frozen=True, slots=True)
class PartyMatch:
    """One CRM record a phone number belongs to; ``rank`` 0 is the best kind of match."""

    kind: PartyKind
    id: int
    name: str
    rank: int
    company: str | None = None
    category: Category | None = None
    manager_id: int | None = None
    manager_name: str | None = None
    manager_extensions: tuple[str, ...] = ()
    manager_active: bool = False
    turnover: Decimal | None = None
    turnover_month: date | None = None
    stop_list: bool = False
    via_contact: str | None = None


@dataclass(frozen=True, slots=True)
class LookupResult:
    """Every match for a number, best first; ``tie`` is true when the best rank is shared."""

    e164: str | None
    matches: tuple[PartyMatch, ...] = ()

    @property
    def best(self) -> PartyMatch | None:
        """The best match, or None for an unknown number."""
        return self.matches[0] if self.matches else None

    @property
    def tie(self) -> bool:
        """Whether two or more records share the best rank (reported, never silently dropped)."""
        return len(self.matches) > 1 and self.matches[0].rank == self.matches[1].rank


class QueueOutcome(enum.StrEnum):
    """How a caller's wait in a queue ended."""

    ANSWERED = "answered"  # a member of the queue picked up
    ABANDONED = "abandoned"  # the caller hung up while waiting
    EXITED = "exited"  # the queue let the caller go unanswered (timeout, no members): the dialplan goes on


@dataclass(frozen=True, slots=True)
class QueueVisit:
    """One wait of a caller in one queue: joined, offered to members, then answered, abandoned or exited."""

    queue: str
    joined_at: datetime
    left_at: datetime | None = None
    outcome: QueueOutcome | None = None  # None while the caller is still waiting
    answered_by: str | None = None
    # Extensions of the real phones the queue rang, in first-offer order (``Local/`` members by their phone).
    offered: tuple[str, ...] = ()

    @property
    def wait_seconds(self) -> float | None:
        """Join to answer (or to abandon/exit); None while waiting."""
        if self.left_at is None:
            return None
        return max(0.0, round((self.left_at - self.joined_at).total_seconds(), 3))


@dataclass(frozen=True, slots=True)
class CallRecord:
    """The one record a finished (or, while ``ended_at`` is None, a live) call yields."""

    pbx: str
    linkedid: str
    direction: Direction
    caller_number: str | None
    caller_name: str | None
    dialled: str | None
    started_at: datetime
    rang: tuple[str, ...] = ()
    answered_by: str | None = None
    queue: str | None = None
    outcome: Outcome | None = None
    missed_reason: MissedReason | None = None
    answered_at: datetime | None = None
    ended_at: datetime | None = None
    ring_seconds: float = 0.0
    talk_seconds: float = 0.0
    recording_file: str | None = None
    recording_url: str | None = None
    route_kind: str | None = None
    route_target: str | None = None
    route_reason: str | None = None
    party_kind: PartyKind | None = None
    party_id: int | None = None
    party_name: str | None = None
    manager_id: int | None = None
    # The click-to-call attempt (AMI Originate, ``CRMTEL_ORIGINATE_ID``) this call came from.
    originate_id: str | None = None
    extra: dict[str, str] = field(default_factory=dict)
    queue_visits: tuple[QueueVisit, ...] = ()
    # The outside number (E.164) ``answered_by`` answered on: a call forwarded to (followed to) their mobile.
    answered_on: str | None = None
    # The outside number (E.164 when it is one) a blind transfer sent the call on to, answered there through the
    # trunk: the call stays ``answered_by``'s.
    transferred_to: str | None = None


def call_id(pbx: str, linkedid: str) -> str:
    """The public id of a live call, stable across its legs: ``pbx:linkedid``."""
    return f"{pbx}:{linkedid}"


@dataclass(frozen=True, slots=True)
class CallRinging:
    """A manager's phone (``extension``) started ringing for a call."""

    call_id: str
    pbx: str
    linkedid: str
    extension: str
    direction: Direction
    caller_number: str | None
    caller_name: str | None
    dialled: str | None
    queue: str | None
    at: datetime
    # Set on the placing phone's own card of a click-to-call (outbound; the phone is not offered a call).
    originate_id: str | None = None


@dataclass(frozen=True, slots=True)
class CallRingStopped:
    """An extension stopped ringing without answering (no answer, busy, or answered elsewhere)."""

    call_id: str
    extension: str
    reason: StopReason
    answered_by: str | None
    at: datetime


@dataclass(frozen=True, slots=True)
class CallAnswered:
    """``extension`` answered the call (for outbound calls: the far end answered the manager's call)."""

    call_id: str
    extension: str
    at: datetime


@dataclass(frozen=True, slots=True)
class CallEnded:
    """The call is over; ``record`` is its final record."""

    call_id: str
    record: CallRecord
    at: datetime


@dataclass(frozen=True, slots=True)
class CallQueued:
    """A caller joined a queue (``outcome`` None: waiting) or left it (answered, abandoned, exited)."""

    call_id: str
    queue: str
    caller_number: str | None
    caller_name: str | None
    joined_at: datetime
    outcome: QueueOutcome | None
    at: datetime


@dataclass(frozen=True, slots=True)
class CallDiscarded:
    """A "call" that never was one (a failed Originate): it leaves no record; a live row is removed."""

    call_id: str
    linkedid: str
    originate_id: str | None
    at: datetime


CallEvent = CallRinging | CallRingStopped | CallAnswered | CallEnded | CallQueued
