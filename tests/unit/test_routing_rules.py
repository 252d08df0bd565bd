"""Table-driven tests of the pure routing rules."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from crmtel.config import DidRule, RoutingSettings
from crmtel.domain import LookupResult, PartyKind, PartyMatch
from crmtel.errors import ConfigError
from crmtel.routing.models import SAFE_TARGET, Policy, RouteKind, RouteRequest
from crmtel.routing.rules import decide, last_month

# Tuesday 2026-11-24 15:00 in Moscow (UTC+3); "last month" is October 2026.
NOW = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)
OCT = date(2026, 10, 1)
CALLER = "+79161110001"
DID = "4951234567"


def client(
    name: str = "Romashka",
    *,
    id: int = 1,
    rank: int = 0,
    manager: int | None = 7,
    active: bool = True,
    exts: tuple[str, ...] = ("101",),
    turnover: str | None = None,
    month: date | None = OCT,
    stop: bool = False,
    kind: PartyKind = PartyKind.CLIENT,
    company: str | None = None,
) -> PartyMatch:
    return PartyMatch(
        kind=kind,
        id=id,
        name=name,
        rank=rank,
        company=company,
        manager_id=manager,
        manager_name=f"Manager{manager}" if manager is not None else None,
        manager_extensions=exts if manager is not None else (),
        manager_active=active,
        turnover=Decimal(turnover) if turnover is not None else None,
        turnover_month=month if turnover is not None else None,
        stop_list=stop,
    )


def lead(name: str = "Ivan", **kw: Any) -> PartyMatch:
    return client(name, kind=PartyKind.LEAD, rank=2, **kw)


@dataclass(frozen=True)
class Case:
    id: str
    matches: tuple[PartyMatch, ...]
    kind: RouteKind
    target: str
    fallback: str
    reason: str
    settings: dict[str, Any] = field(default_factory=dict)
    caller: str | None = CALLER
    did: str | None = DID
    now: datetime = NOW


NIGHT = {"open_at": time(9), "close_at": time(18), "after_hours_target": "night"}

CASES = [
    # Rule 1: personal manager.
    Case("client's active manager", (client(turnover="5"),), RouteKind.EXTENSION, "101", "retail", "ext 101"),
    Case(
        "manager's fallback is the turnover queue",
        (client(turnover="250000"),),
        RouteKind.EXTENSION,
        "101",
        "wholesale",
        "no answer -> queue wholesale",
    ),
    Case("lead's manager", (lead(),), RouteKind.EXTENSION, "101", "retail", "lead 'Ivan'"),
    Case(
        "manager's first extension", (client(exts=("105", "106")),), RouteKind.EXTENSION, "105", "retail", ""
    ),
    Case(
        "inactive manager skipped",
        (client(active=False, turnover="150000"),),
        RouteKind.QUEUE,
        "wholesale",
        "wholesale",
        ">= 100000",
    ),
    Case("manager without extension", (client(exts=()),), RouteKind.QUEUE, "retail", "retail", "no turnover"),
    Case(
        "unsafe extension never dialled",
        (client(exts=("101&PJSIP/999", "1 2")),),
        RouteKind.QUEUE,
        "retail",
        "retail",
        "",
    ),
    Case(
        "safe extension after unsafe one",
        (client(exts=("x,y", "102")),),
        RouteKind.EXTENSION,
        "102",
        "retail",
        "",
    ),
    Case("client without manager", (client(manager=None, rank=1),), RouteKind.QUEUE, "retail", "retail", ""),
    # Rule 2: turnover.
    Case(
        "turnover exactly at threshold -> wholesale",
        (client(manager=None, turnover="100000"),),
        RouteKind.QUEUE,
        "wholesale",
        "wholesale",
        ">= 100000 -> queue wholesale",
    ),
    Case(
        "turnover just below threshold -> retail",
        (client(manager=None, turnover="99999.99"),),
        RouteKind.QUEUE,
        "retail",
        "retail",
        "99999.99 for 2026-10 < 100000",
    ),
    Case(
        "custom threshold boundary",
        (client(manager=None, turnover="500"),),
        RouteKind.QUEUE,
        "wholesale",
        "wholesale",
        "",
        settings={"wholesale_threshold": 500},
    ),
    Case(
        "missing turnover -> default queue",
        (client(manager=None),),
        RouteKind.QUEUE,
        "main",
        "main",
        "no turnover -> default queue main",
        settings={"default_queue": "main"},
    ),
    Case(
        "stale turnover treated as missing",
        (client(manager=None, turnover="900000", month=date(2026, 9, 1)),),
        RouteKind.QUEUE,
        "main",
        "main",
        "stale",
        settings={"default_queue": "main"},
    ),
    Case(
        "current month's turnover is used",
        (client(manager=None, turnover="900000", month=date(2026, 11, 1)),),
        RouteKind.QUEUE,
        "wholesale",
        "wholesale",
        "2026-11",
    ),
    Case(
        "future-dated turnover treated as missing",
        (client(manager=None, turnover="900000", month=date(2027, 1, 1)),),
        RouteKind.QUEUE,
        "retail",
        "retail",
        "future",
    ),
    Case(
        "undated turnover used as is",
        (client(manager=None, turnover="900000", month=None),),
        RouteKind.QUEUE,
        "wholesale",
        "wholesale",
        "undated",
    ),
    Case(
        "negative turnover -> retail",
        (client(manager=None, turnover="-5"),),
        RouteKind.QUEUE,
        "retail",
        "retail",
        "",
    ),
    Case(
        "lead has no turnover -> default",
        (lead(manager=None),),
        RouteKind.QUEUE,
        "main",
        "main",
        "",
        settings={"default_queue": "main"},
    ),
    Case(
        "unknown caller -> default",
        (),
        RouteKind.QUEUE,
        "main",
        "main",
        "unknown caller +79161110001",
        settings={"default_queue": "main"},
    ),
    Case(
        "anonymous caller -> default",
        (),
        RouteKind.QUEUE,
        "retail",
        "retail",
        "(anonymous)",
        caller="anonymous",
    ),
    Case(
        "garbage caller -> default", (), RouteKind.QUEUE, "retail", "retail", "(invalid)", caller="abc\x00def"
    ),
    # Stop list.
    Case(
        "stop list skips the personal manager",
        (client(stop=True, turnover="900000"),),
        RouteKind.QUEUE,
        "main",
        "main",
        "STOP LIST",
        settings={"default_queue": "main"},
    ),
    Case(
        "stop list of one tied record applies",
        (client(id=1), client("Lilia", id=2, stop=True)),
        RouteKind.QUEUE,
        "retail",
        "retail",
        "STOP LIST: 'Lilia'",
    ),
    Case(
        "stop list of a lower-ranked record is ignored",
        (client(), lead(manager=None, stop=True)),
        RouteKind.EXTENSION,
        "101",
        "retail",
        "",
    ),
    # Ties.
    Case(
        "tie sharing one manager -> that manager",
        (client(id=1), client("Lilia", id=2, turnover="300000")),
        RouteKind.EXTENSION,
        "101",
        "wholesale",
        "tie between 2 records",
    ),
    Case(
        "tie with different managers -> queue by highest turnover",
        (client(id=1, turnover="10"), client("Lilia", id=2, manager=8, exts=("102",), turnover="300000")),
        RouteKind.QUEUE,
        "wholesale",
        "wholesale",
        "tie between 2 records",
    ),
    Case(
        "tie where only one manager is usable -> that one",
        (client(id=1, active=False), client("Lilia", id=2, manager=8, exts=("102",))),
        RouteKind.EXTENSION,
        "102",
        "retail",
        "Manager8",
    ),
    Case(
        "best rank wins over a lower-ranked record's manager",
        (client(manager=None, rank=1, turnover="1"), lead(manager=9, exts=("109",))),
        RouteKind.QUEUE,
        "retail",
        "retail",
        "",
    ),
    # Working hours and per-DID defaults.
    Case(
        "outside hours -> after-hours target",
        (client(),),
        RouteKind.QUEUE,
        "night",
        "night",
        "outside working hours",
        settings=NIGHT,
        now=datetime(2026, 11, 24, 16, 0, tzinfo=UTC),  # 19:00 Moscow
    ),
    Case(
        "exactly at opening time -> open",
        (client(),),
        RouteKind.EXTENSION,
        "101",
        "retail",
        "",
        settings=NIGHT,
        now=datetime(2026, 11, 24, 6, 0, tzinfo=UTC),  # 09:00 Moscow
    ),
    Case(
        "exactly at closing time -> closed",
        (client(),),
        RouteKind.QUEUE,
        "night",
        "night",
        "18:00",
        settings=NIGHT,
        now=datetime(2026, 11, 24, 15, 0, tzinfo=UTC),  # 18:00 Moscow
    ),
    Case(
        "outside hours without after-hours target -> as usual",
        (client(),),
        RouteKind.EXTENSION,
        "101",
        "retail",
        "",
        settings={"open_at": time(9), "close_at": time(18)},
        now=datetime(2026, 11, 24, 20, 0, tzinfo=UTC),
    ),
    Case(
        "after-hours extension keeps the turnover fallback",
        (client(manager=None, turnover="200000"),),
        RouteKind.EXTENSION,
        "100",
        "wholesale",
        "after-hours extension 100",
        settings={**NIGHT, "after_hours_kind": "extension", "after_hours_target": "100"},
        now=datetime(2026, 11, 24, 20, 0, tzinfo=UTC),
    ),
    Case(
        "non-working day is closed",
        (client(),),
        RouteKind.QUEUE,
        "night",
        "night",
        "Sat",
        settings={"working_days": (0, 1, 2, 3, 4), "after_hours_target": "night"},
        now=datetime(2026, 11, 28, 12, 0, tzinfo=UTC),
    ),
    Case(
        "overnight shift open after midnight",
        (client(),),
        RouteKind.EXTENSION,
        "101",
        "retail",
        "",
        settings={"open_at": time(20), "close_at": time(8), "after_hours_target": "night"},
        now=datetime(2026, 11, 24, 23, 0, tzinfo=UTC),  # 02:00 Moscow
    ),
    Case(
        "per-DID default queue for unknown callers",
        (),
        RouteKind.QUEUE,
        "sales2",
        "sales2",
        "default queue sales2",
        settings={"dids": {DID: DidRule(default_queue="sales2")}},
    ),
    Case(
        "per-DID rule matched by E.164 form",
        (),
        RouteKind.QUEUE,
        "sales2",
        "sales2",
        "",
        settings={"dids": {"+74951234567": DidRule(default_queue="sales2")}},
        did="84951234567",
    ),
    Case(
        "per-DID hours override global ones",
        (client(),),
        RouteKind.QUEUE,
        "did-night",
        "did-night",
        "after-hours queue did-night",
        settings={
            **NIGHT,
            "dids": {DID: DidRule(open_at=time(9), close_at=time(12), after_hours_target="did-night")},
        },
    ),
    Case(
        "other DID uses global rules",
        (),
        RouteKind.QUEUE,
        "retail",
        "retail",
        "default queue retail",
        settings={"dids": {"4950000000": DidRule(default_queue="sales2")}},
    ),
]


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_decide(case: Case) -> None:
    """Each rule, tie, boundary and default routes the call where the table says, with its reason."""
    policy = Policy.from_settings(RoutingSettings(**case.settings))
    request = RouteRequest.from_raw(case.caller, case.did, "RU")
    lookup = LookupResult(e164=request.caller.e164, matches=case.matches)
    decision = decide(request, lookup, policy, case.now)
    assert (decision.kind, decision.target, decision.fallback_queue) == (
        case.kind,
        case.target,
        case.fallback,
    )
    assert case.reason in decision.reason


def test_every_rule_is_listed_and_exactly_one_decides() -> None:
    """route explain needs every rule considered, in order, with the deciding one marked."""
    policy = Policy.from_settings(RoutingSettings())
    request = RouteRequest.from_raw(CALLER, DID, "RU")
    decision = decide(request, LookupResult(CALLER, (client(active=False, turnover="1"),)), policy, NOW)
    names = [r.rule for r in decision.rules]
    assert names == ["dialled number", "working hours", "stop list", "personal manager", "turnover"]
    assert [r.rule for r in decision.rules[1:] if r.applied] == ["turnover"]
    assert "inactive" in decision.rules[3].detail


def test_decision_carries_party_and_display_name() -> None:
    """The decision names the caller for the phone display and the party for the call record."""
    policy = Policy.from_settings(RoutingSettings())
    request = RouteRequest.from_raw(CALLER, DID, "RU")
    match = lead("Ivan Petrov", id=42, company="Vector LLC")
    decision = decide(request, LookupResult(CALLER, (match,)), policy, NOW)
    assert decision.caller_name == "Ivan Petrov (Vector LLC)"
    assert (decision.party_kind, decision.party_id, decision.manager_id) == (PartyKind.LEAD, 42, 7)


def test_naive_now_is_taken_as_utc() -> None:
    """A naive clock value is read as UTC rather than crashing the decision."""
    policy = Policy.from_settings(RoutingSettings(**NIGHT))
    request = RouteRequest.from_raw(CALLER, DID, "RU")
    decision = decide(request, LookupResult(CALLER), policy, datetime(2026, 11, 24, 16, 0))
    assert decision.target == "night"


@pytest.mark.parametrize(
    ("today", "expected"),
    [(date(2026, 1, 15), date(2025, 12, 1)), (date(2026, 3, 31), date(2026, 2, 1)), (date(2026, 11, 1), OCT)],
)
def test_last_month(today: date, expected: date) -> None:
    """Last month is computed across year ends and from month ends."""
    assert last_month(today) == expected


@pytest.mark.parametrize(
    "settings",
    [
        {"timezone": "Mars/Olympus"},
        {"retail_queue": "retail,1"},
        {"open_at": time(9)},
        {"after_hours_target": "night&day"},
        {"working_days": (0, 7)},
        {"dids": {DID: DidRule(default_queue="a b")}},
        {"dids": {DID: DidRule(close_at=time(9))}},
    ],
)
def test_bad_policy_is_a_config_error(settings: dict[str, Any]) -> None:
    """Unknown zones, half-given hours and names unsafe for the dialplan are rejected at startup."""
    with pytest.raises(ConfigError):
        Policy.from_settings(RoutingSettings(**settings))


_matches = st.builds(
    PartyMatch,
    kind=st.sampled_from(PartyKind),
    id=st.integers(1, 5),
    name=st.text(max_size=20),
    rank=st.integers(0, 3),
    company=st.none() | st.text(max_size=10),
    manager_id=st.none() | st.integers(1, 3),
    manager_name=st.none() | st.text(max_size=10),
    manager_extensions=st.lists(st.text(max_size=8), max_size=3).map(tuple),
    manager_active=st.booleans(),
    turnover=st.none() | st.decimals(allow_nan=False, allow_infinity=False, places=2),
    turnover_month=st.none() | st.dates(),
    stop_list=st.booleans(),
)
_POLICY = Policy.from_settings(
    RoutingSettings(open_at=time(9), close_at=time(18), after_hours_target="night")
)


@given(
    st.lists(_matches, max_size=4).map(lambda ms: tuple(sorted(ms, key=lambda m: m.rank))),
    st.datetimes(timezones=st.just(UTC)),
    st.none() | st.text(max_size=20),
)
def test_decide_is_total_and_safe(matches: tuple[PartyMatch, ...], now: datetime, did: str | None) -> None:
    """For any match data, time and DID a decision comes out, with dialplan-safe target and fallback."""
    request = RouteRequest.from_raw(CALLER, did, "RU")
    decision = decide(request, LookupResult(CALLER, matches), _POLICY, now)
    assert SAFE_TARGET.match(decision.target)
    assert decision.fallback_queue in {"retail", "wholesale", "night"}
    assert sum(r.applied for r in decision.rules[1:]) == 1
