"""Routing value objects: the request, the policy derived from settings, and the decision."""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass, field
from datetime import time
from decimal import Decimal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from crmtel.config import RoutingSettings
from crmtel.domain import PartyKind
from crmtel.errors import ConfigError
from crmtel.phones import Phone, normalize

# Extensions and queue names go straight into Dial()/Queue() arguments: anything outside this set
# (commas, '&', '$', spaces ...) could change what the dialplan does, so such targets are never used.
SAFE_TARGET = re.compile(r"^[A-Za-z0-9_.+\-]{1,64}$")


class RouteKind(enum.StrEnum):
    """Where a decision sends the call."""

    EXTENSION = "extension"
    QUEUE = "queue"


@dataclass(frozen=True, slots=True)
class RouteRequest:
    """An inbound call asking for a route: who calls (normalised once) and which number they dialled."""

    caller: Phone
    did: str | None = None

    @classmethod
    def from_raw(cls, caller: str | None, did: str | None, region: str) -> RouteRequest:
        """Normalise the raw caller id; the DID is kept as dialled."""
        did_text = (did or "").strip()[:64] or None
        return cls(caller=normalize(caller, region), did=did_text)


@dataclass(frozen=True, slots=True)
class Target:
    """A place a call can be sent to."""

    kind: RouteKind
    name: str


@dataclass(frozen=True, slots=True)
class Hours:
    """Working hours in the policy's time zone; ``open_at > close_at`` means the shift spans midnight."""

    open_at: time | None
    close_at: time | None
    working_days: frozenset[int]

    @property
    def configured(self) -> bool:
        """Whether these hours ever close (times given, or some weekday excluded)."""
        return (self.open_at is not None and self.close_at is not None) or len(self.working_days) < 7


@dataclass(frozen=True, slots=True)
class DidPolicy:
    """What one dialled number changes: its default queue, its hours and its after-hours target."""

    did: str
    default_queue: str | None
    hours: Hours | None
    after_hours: Target | None


@dataclass(frozen=True, slots=True)
class Policy:
    """Routing policy derived once from ``RoutingSettings`` (validated, with the time zone resolved)."""

    wholesale_threshold: Decimal
    retail_queue: str
    wholesale_queue: str
    default_queue: str
    tz: ZoneInfo
    hours: Hours
    after_hours: Target | None
    dids: dict[str, DidPolicy] = field(default_factory=dict)
    region: str = "RU"

    @classmethod
    def from_settings(cls, settings: RoutingSettings, region: str = "RU") -> Policy:
        """Build the policy; raises ConfigError for an unknown time zone or an unsafe queue/target name."""
        try:
            tz = ZoneInfo(settings.timezone)
        except (ZoneInfoNotFoundError, ValueError) as err:
            raise ConfigError(f"routing.timezone: unknown time zone {settings.timezone!r}") from err
        for label, name in (
            ("retail_queue", settings.retail_queue),
            ("wholesale_queue", settings.wholesale_queue),
            ("default_queue", settings.default_queue),
        ):
            _check_target(f"routing.{label}", name)
        _check_hours("routing", settings.open_at, settings.close_at)
        days = frozenset(settings.working_days)
        if not days <= frozenset(range(7)):
            raise ConfigError("routing.working_days: weekdays are 0 (Monday) .. 6 (Sunday)")
        dids: dict[str, DidPolicy] = {}
        for did, rule in settings.dids.items():
            if rule.default_queue is not None:
                _check_target(f"routing.dids.{did}.default_queue", rule.default_queue)
            _check_hours(f"routing.dids.{did}", rule.open_at, rule.close_at)
            hours = None
            if rule.open_at is not None or rule.close_at is not None:
                hours = Hours(rule.open_at, rule.close_at, days)
            policy = DidPolicy(
                did=did,
                default_queue=rule.default_queue,
                hours=hours,
                after_hours=_target(f"routing.dids.{did}", rule.after_hours_kind, rule.after_hours_target),
            )
            dids[did] = policy
            # Asterisk may present the DID as 4951234567, 74951234567 or +74951234567: match all of them.
            e164 = normalize(did, region).e164
            if e164 is not None:
                dids.setdefault(e164, policy)
        return cls(
            wholesale_threshold=Decimal(settings.wholesale_threshold),
            retail_queue=settings.retail_queue,
            wholesale_queue=settings.wholesale_queue,
            default_queue=settings.default_queue,
            tz=tz,
            hours=Hours(settings.open_at, settings.close_at, days),
            after_hours=_target("routing", settings.after_hours_kind, settings.after_hours_target),
            dids=dids,
            region=region,
        )

    def did_policy(self, did: str | None) -> DidPolicy | None:
        """The per-DID rule for a dialled number, matched as written or by its E.164 form."""
        if not did or not self.dids:
            return None
        found = self.dids.get(did)
        if found is not None:
            return found
        e164 = normalize(did, self.region).e164
        return self.dids.get(e164) if e164 is not None else None


def _check_target(label: str, name: str) -> None:
    if not SAFE_TARGET.match(name):
        raise ConfigError(f"{label}: {name!r} is not a safe queue/extension name (letters, digits, _ . + -)")


def _check_hours(label: str, open_at: time | None, close_at: time | None) -> None:
    if (open_at is None) != (close_at is None):
        raise ConfigError(f"{label}: give both open_at and close_at, or neither")


def _target(label: str, kind: str, name: str | None) -> Target | None:
    if name is None:
        return None
    _check_target(f"{label}.after_hours_target", name)
    return Target(RouteKind(kind), name)


@dataclass(frozen=True, slots=True)
class RuleCheck:
    """One rule that was considered, whether it decided the route, and why (for ``route explain``)."""

    rule: str
    applied: bool
    detail: str


@dataclass(frozen=True, slots=True)
class Decision:
    """Where to send the call, the queue to fall back to, and every rule considered on the way."""

    kind: RouteKind
    target: str
    fallback_queue: str
    reason: str
    rules: tuple[RuleCheck, ...]
    caller_name: str | None = None
    party_kind: PartyKind | None = None
    party_id: int | None = None
    manager_id: int | None = None

    def as_dict(self) -> dict[str, object]:
        """A JSON-ready view (the HTTP route answer)."""
        return {
            "kind": self.kind.value,
            "target": self.target,
            "fallback_queue": self.fallback_queue,
            "reason": self.reason,
            "caller_name": self.caller_name,
            "party_kind": self.party_kind.value if self.party_kind else None,
            "party_id": self.party_id,
            "manager_id": self.manager_id,
            "rules": [{"rule": r.rule, "applied": r.applied, "detail": r.detail} for r in self.rules],
        }
