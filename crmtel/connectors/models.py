"""The outbox's value objects: a staged effect, one delivery attempt's result, the backlog."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any


class Kind(enum.StrEnum):
    """What happened to a call that an outside system may want to learn."""

    RINGING = "ringing"  # a manager's phone rings (payload: extension, direction, numbers)
    RING_STOPPED = "ring_stopped"  # it stopped without being answered
    ANSWERED = "answered"  # an extension answered
    ENDED = "ended"  # the call is over (payload: the record as stored)
    RECORDING = "recording"  # the conversation's recording exists (payload: file and URL)


class State(enum.StrEnum):
    """Where an outbox event is in its life."""

    PENDING = "pending"
    DELIVERED = "delivered"
    FAILED = "failed"


@dataclass(frozen=True, slots=True)
class Staged:
    """An effect to write into the outbox: ``key`` is its idempotency key (per call and event)."""

    pbx: str
    linkedid: str
    kind: Kind
    key: str
    payload: dict[str, Any]


@dataclass(frozen=True, slots=True)
class OutboxEvent:
    """A staged effect as a worker claims it."""

    id: int
    connector: str
    key: str
    pbx: str
    linkedid: str
    kind: Kind
    payload: dict[str, Any]
    attempts: int
    created_at: datetime
    # An earlier claim ran out with neither a result nor a release (its node died mid-delivery): whether the
    # outside system took that attempt is unknown.
    lapsed: bool = False
    # What the last attempt came to, as the delivery log words it (None: no attempt yet).
    last_error: str | None = None


class Verdict(enum.StrEnum):
    """What a delivery attempt came to."""

    DELIVERED = "delivered"  # the outside system took it (or already had it)
    RETRY = "retry"  # try again later (outage, 5xx, 429, rate limit, token trouble)
    FAILED = "failed"  # refused for good (a contract error): a person must look (list, then replay)


@dataclass(frozen=True, slots=True)
class Attempt:
    """One delivery attempt's result, with the outside system's answer for the delivery log."""

    verdict: Verdict
    answer: str
    status: int | None = None
    # Seconds the outside system asked us to wait (Retry-After), if it said.
    retry_after: float | None = None
    # What the connector remembers of the call after this event (saved only when delivered).
    memo: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class FailedEvent:
    """A failed delivery as ``crmtel connectors failed`` lists it."""

    id: int
    connector: str
    pbx: str
    linkedid: str
    kind: str
    attempts: int
    created_at: datetime
    last_error: str | None


@dataclass(frozen=True, slots=True)
class Backlog:
    """A connector's outbox at a glance (metrics, /healthz)."""

    connector: str
    pending: int
    failed: int
    # Age in seconds of the oldest pending event (0 when none).
    oldest_seconds: float
    # What the connector found wrong with its setup (e.g. a method the CRM refuses this way of signing in).
    problem: str | None = None
