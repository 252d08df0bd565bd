"""Pure routing rules: (call, match, policy, now) -> decision. No I/O, no awaiting.

Rules, in the order they are considered (``route explain`` lists every one):

1. **working hours** (per DID, else global): outside them, a configured after-hours target wins.
   Without an after-hours target the hours change nothing.
2. **stop list**: a caller whose best match is on the stop list never reaches a personal manager or the
   wholesale queue; the call goes to the default queue (per DID, else global), flagged in the reason.
3. **personal manager** of the client (or lead), when active and with an extension that is safe to dial.
   A tie between records with *different* usable managers picks none of them (reported); a tie whose
   records share one manager still goes to that manager.
4. **turnover**: last month's turnover at or above the threshold -> wholesale queue, below -> retail queue.
   Turnover dated earlier than last month is stale and treated as missing; a figure for the current month
   is used; an undated figure is used as is (flagged). Missing turnover, leads and unknown callers -> the
   default queue. In a tie the highest valid turnover counts.

The queue of rule 4 is also the fallback queue the dialplan uses when the personal manager does not answer.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

from crmtel.domain import LookupResult, PartyKind, PartyMatch
from crmtel.phones import PhoneKind
from crmtel.routing.models import (
    SAFE_TARGET,
    Decision,
    DidPolicy,
    Hours,
    Policy,
    RouteKind,
    RouteRequest,
    RuleCheck,
    Target,
)

_WEEKDAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")


@dataclass(frozen=True, slots=True)
class _Outcome:
    """What one rule says: a target (when it would decide) and its explanation."""

    target: Target | None
    detail: str


def decide(call: RouteRequest, match: LookupResult, policy: Policy, now: datetime) -> Decision:
    """Decide where an inbound call goes and why; never raises for any match data."""
    local = _local(now, policy)
    did = policy.did_policy(call.did)
    default_queue = did.default_queue if did is not None and did.default_queue else policy.default_queue
    group = _best_group(match)
    who = _describe_caller(call, group)

    queue_target, queue_detail = _turnover_rule(group, policy, default_queue, local.date(), who)
    outcomes: list[tuple[str, _Outcome]] = [
        ("working hours", _hours_rule(did, policy, local)),
        ("stop list", _stop_list_rule(group, default_queue)),
        ("personal manager", _manager_rule(group, match.tie)),
        ("turnover", _Outcome(queue_target, queue_detail)),
    ]
    fallback = queue_target.name

    checks: list[RuleCheck] = [
        RuleCheck(
            "dialled number",
            did is not None,
            f"DID {call.did}: default queue {default_queue}"
            if did is not None
            else f"DID {call.did or '(none)'} has no rule; default queue {default_queue}",
        )
    ]
    # The turnover rule always names a queue, so it decides when nothing before it did.
    rule_name, target, reason = "turnover", queue_target, queue_detail
    decided = False
    for name, outcome in outcomes:
        decides = not decided and outcome.target is not None
        if decides and outcome.target is not None:
            rule_name, target, reason, decided = name, outcome.target, outcome.detail, True
        checks.append(RuleCheck(name, decides, outcome.detail))

    if target.kind is RouteKind.QUEUE:
        # A queue is its own fallback: the dialplan never falls from one queue into another.
        fallback = target.name
    else:
        reason += f"; no answer -> queue {fallback}"
    if match.tie:
        reason = f"tie between {len(group)} records; {reason}"

    best = group[0] if group else None
    manager_id = _chosen_manager(group) if rule_name == "personal manager" else None
    return Decision(
        kind=target.kind,
        target=target.name,
        fallback_queue=fallback,
        reason=reason,
        rules=tuple(checks),
        caller_name=_display_name(best),
        party_kind=best.kind if best else None,
        party_id=best.id if best else None,
        manager_id=manager_id if manager_id is not None else (best.manager_id if best else None),
    )


def _local(now: datetime, policy: Policy) -> datetime:
    aware = now if now.tzinfo is not None else now.replace(tzinfo=UTC)
    try:
        return aware.astimezone(policy.tz)
    except OverflowError:  # a clock at the very edge of the calendar: keep its own zone
        return aware


def _best_group(match: LookupResult) -> tuple[PartyMatch, ...]:
    """The matches sharing the best rank (one, unless there is a tie)."""
    best = match.best
    if best is None:
        return ()
    return tuple(m for m in match.matches if m.rank == best.rank)


def _describe_caller(call: RouteRequest, group: tuple[PartyMatch, ...]) -> str:
    if not group:
        if call.caller.kind is PhoneKind.E164:
            return f"unknown caller {call.caller.value}"
        return f"unknown caller ({call.caller.kind.value})"
    return ", ".join(f"{m.kind.value} {m.name!r}" for m in group)


def is_open(hours: Hours, local: datetime) -> bool:
    """Whether ``local`` (already in the policy's zone) falls within the working hours."""
    if not hours.configured:
        return True
    if local.weekday() not in hours.working_days:
        return False
    if hours.open_at is None or hours.close_at is None or hours.open_at == hours.close_at:
        return True
    now_t = local.time().replace(tzinfo=None)
    if hours.open_at < hours.close_at:
        return hours.open_at <= now_t < hours.close_at
    return now_t >= hours.open_at or now_t < hours.close_at


def _hours_rule(did: DidPolicy | None, policy: Policy, local: datetime) -> _Outcome:
    hours = did.hours if did is not None and did.hours is not None else policy.hours
    after = did.after_hours if did is not None and did.after_hours is not None else policy.after_hours
    stamp = f"{_WEEKDAYS[local.weekday()]} {local:%H:%M} {policy.tz.key}"
    if not hours.configured:
        return _Outcome(None, "no working hours configured")
    if is_open(hours, local):
        return _Outcome(None, f"within working hours ({stamp})")
    if after is None:
        return _Outcome(None, f"outside working hours ({stamp}) but no after-hours target; routing as usual")
    return _Outcome(after, f"outside working hours ({stamp}) -> after-hours {after.kind.value} {after.name}")


def _stop_list_rule(group: tuple[PartyMatch, ...], default_queue: str) -> _Outcome:
    listed = [m for m in group if m.stop_list]
    if not listed:
        return _Outcome(None, "not on the stop list")
    names = ", ".join(repr(m.name) for m in listed)
    return _Outcome(
        Target(RouteKind.QUEUE, default_queue),
        f"STOP LIST: {names} -> default queue {default_queue} (personal manager skipped)",
    )


def _usable_extension(m: PartyMatch) -> str | None:
    return next((e for e in m.manager_extensions if SAFE_TARGET.match(e)), None)


def _manager_rule(group: tuple[PartyMatch, ...], tie: bool) -> _Outcome:
    if not group:
        return _Outcome(None, "no CRM record, so no personal manager")
    notes: list[str] = []
    usable: dict[int, tuple[str, PartyMatch]] = {}
    for m in group:
        owner = f"{m.kind.value} {m.name!r}"
        manager = m.manager_name or f"#{m.manager_id}"
        if m.manager_id is None:
            notes.append(f"{owner} has no personal manager")
        elif not m.manager_active:
            notes.append(f"personal manager {manager} of {owner} is inactive")
        elif (ext := _usable_extension(m)) is None:
            notes.append(f"personal manager {manager} of {owner} has no usable extension")
        else:
            usable.setdefault(m.manager_id, (ext, m))
    if len(usable) > 1:
        names = ", ".join(m.manager_name or f"#{mid}" for mid, (_, m) in usable.items())
        notes.append(f"tied records have different personal managers ({names}); none chosen")
        return _Outcome(None, "; ".join(notes))
    if not usable:
        return _Outcome(None, "; ".join(notes))
    ext, m = next(iter(usable.values()))
    shared = " (shared by the tied records)" if tie and len(group) > 1 else ""
    detail = (
        f"personal manager {m.manager_name or m.manager_id} (ext {ext}) of {m.kind.value} {m.name!r}{shared}"
    )
    return _Outcome(Target(RouteKind.EXTENSION, ext), detail)


def _chosen_manager(group: tuple[PartyMatch, ...]) -> int | None:
    for m in group:
        if m.manager_id is not None and m.manager_active and _usable_extension(m) is not None:
            return m.manager_id
    return None


def last_month(today: date) -> date:
    """The first day of the month before ``today``'s (January of year 1 has none: itself)."""
    first = today.replace(day=1)
    return first if first == date.min else (first - timedelta(days=1)).replace(day=1)


def usable_turnover(m: PartyMatch, today: date) -> tuple[Decimal | None, str]:
    """The turnover that counts for routing (None when missing or stale) and a note on why."""
    if m.kind is not PartyKind.CLIENT or m.turnover is None:
        return None, "no turnover"
    if m.turnover_month is None:
        return m.turnover, f"turnover {_money(m.turnover)} (undated, used as is)"
    month = (m.turnover_month.year, m.turnover_month.month)
    previous = last_month(today)
    if month < (previous.year, previous.month):
        return (
            None,
            f"turnover {_money(m.turnover)} is for {m.turnover_month:%Y-%m}, stale (treated as missing)",
        )
    if month > (today.year, today.month):
        return None, f"turnover dated in the future ({m.turnover_month:%Y-%m}), treated as missing"
    return m.turnover, f"turnover {_money(m.turnover)} for {m.turnover_month:%Y-%m}"


def _turnover_rule(
    group: tuple[PartyMatch, ...], policy: Policy, default_queue: str, today: date, who: str
) -> tuple[Target, str]:
    default = Target(RouteKind.QUEUE, default_queue)
    if not group:
        return default, f"{who} -> default queue {default_queue}"
    best: tuple[Decimal, PartyMatch, str] | None = None
    notes: list[str] = []
    for m in group:
        value, note = usable_turnover(m, today)
        notes.append(f"{m.kind.value} {m.name!r}: {note}")
        if value is not None and (best is None or value > best[0]):
            best = (value, m, note)
    if best is None:
        return default, f"{'; '.join(notes)} -> default queue {default_queue}"
    value, m, note = best
    threshold = _money(policy.wholesale_threshold)
    if value >= policy.wholesale_threshold:
        queue, cmp = policy.wholesale_queue, ">="
    else:
        queue, cmp = policy.retail_queue, "<"
    return Target(
        RouteKind.QUEUE, queue
    ), f"{m.kind.value} {m.name!r}: {note} {cmp} {threshold} -> queue {queue}"


def _money(value: Decimal) -> str:
    text = format(value, "f")
    return text.rstrip("0").rstrip(".") if "." in text else text


def _display_name(m: PartyMatch | None) -> str | None:
    """What the manager's phone shows: the client's name, or a lead's name and company."""
    if m is None:
        return None
    if m.company and m.company != m.name:
        return f"{m.name} ({m.company})"
    return m.name
