"""The callback figures of the calls-vs-deals report against a brute-force reading of the documented rules, on
odd data (same number and second, missed callbacks, the grace edge, spellings, junk numbers), both dialects."""

from __future__ import annotations

import math
import random
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

import pytest

from crmtel.reports.models import ManagerFigures, Period, ReportFilter
from crmtel.reports.queries import QueryOptions, ReportQueries
from crmtel.store.call_callbacks import digits_in, recompute_in
from crmtel.store.db import Database
from crmtel.store.managers import ManagerRepository
from crmtel.store.models import CallRow

PERIOD = Period(date(2026, 11, 1), date(2026, 12, 1), "UTC")
START = datetime(2026, 11, 1, tzinfo=UTC)
END = datetime(2026, 12, 1, tzinfo=UTC)


@dataclass(frozen=True)
class C:
    linkedid: str
    direction: str
    outcome: str
    caller: str | None
    dialled: str | None
    answered_by: str | None
    manager_id: int | None
    at: datetime


def _expected(
    calls: list[C],
    owner: dict[str, int],
    digits: int,
    grace: timedelta,
    sla: timedelta,
    start: datetime,
    end: datetime,
    manager: int | None,
) -> dict[int | None, tuple[int, int, int, float | None, float | None]]:
    def key(n: str | None) -> str | None:
        if n is None:
            return None
        return n[-digits:] if digits else n

    answered = [
        (key(c.caller if c.direction == "inbound" else c.dialled), c.at)
        for c in calls
        if c.outcome == "answered" and c.direction in ("inbound", "outbound") and start <= c.at < end + grace
    ]
    delays: dict[int | None, list[float | None]] = {}
    for c in calls:
        if not (c.direction == "inbound" and c.outcome == "missed" and start <= c.at < end):
            continue
        k = key(c.caller) if c.caller and re.fullmatch(r"\+?[0-9]+", c.caller) else None
        backs = [at for ak, at in answered if k is not None and ak == k and at > c.at]
        mid = c.manager_id if c.manager_id is not None else owner.get(c.answered_by or "")
        if manager is not None and mid != manager:
            continue
        delays.setdefault(mid, []).append((min(backs) - c.at).total_seconds() if backs else None)
    out: dict[int | None, tuple[int, int, int, float | None, float | None]] = {}
    for mid, ds in delays.items():
        got = sorted(d for d in ds if d is not None)
        n = len(got)
        out[mid] = (
            n,
            len(ds) - n,
            sum(1 for d in got if d <= sla.total_seconds()),
            # The unassigned row sums several owners' figures: no median there.
            _ms(got[math.ceil(n / 2) - 1]) if n and mid is not None else None,
            _ms(got[math.ceil(n * 9 / 10) - 1]) if n and mid is not None else None,
        )
    return out


def _odd_calls(ids: list[int], rng: random.Random) -> list[C]:
    a, b, c = ids
    t0 = datetime(2026, 11, 10, 9, 0, tzinfo=UTC)
    out = [
        # Same number, same second, different managers, and one left to the extension owner.
        C("s1", "inbound", "missed", "+79161110001", "4951234567", None, a, t0),
        C("s2", "inbound", "missed", "+79161110001", "4951234567", None, b, t0),
        C("s3", "inbound", "missed", "89161110001", "4951234567", "103", None, t0),
        C(
            "s4",
            "inbound",
            "missed",
            "+79161110001",
            "4951234567",
            None,
            b,
            t0 + timedelta(microseconds=500_000),
        ),
        C("sb", "outbound", "answered", "101", "89161110001", "101", a, t0 + timedelta(minutes=15)),
        # A missed call whose "callback" is itself missed, then a real one.
        C("m1", "inbound", "missed", "+79162220002", "4951234567", None, a, t0),
        C("m1x", "inbound", "missed", "+79162220002", "4951234567", None, a, t0 + timedelta(minutes=3)),
        C("m1b", "inbound", "answered", "+79162220002", "4951234567", "101", a, t0 + timedelta(minutes=40)),
        # The grace edge: one at end + grace exactly (not counted), one a microsecond before.
        C("g1", "inbound", "missed", "+79163330003", "4951234567", None, a, END - timedelta(seconds=1)),
        C("g1b", "outbound", "answered", "101", "+79163330003", "101", a, END + timedelta(hours=24)),
        C("g2", "inbound", "missed", "+79163330004", "4951234567", None, b, END - timedelta(seconds=1)),
        C(
            "g2b",
            "outbound",
            "answered",
            "101",
            "+79163330004",
            "101",
            a,
            END + timedelta(hours=24) - timedelta(milliseconds=1),
        ),
        # Period edges of the missed side: at the start counted, at the end not (it is next month's).
        C("e1", "inbound", "missed", "+79164440004", "4951234567", None, c, START),
        C("e2", "inbound", "missed", "+79164440004", "4951234567", None, c, END),
        C("e1b", "outbound", "answered", "102", "84440004", "102", c, START + timedelta(minutes=1)),
        # Junk, anonymous, empty, NULL and short numbers.
        C("j1", "inbound", "missed", "anonymous", "4951234567", None, a, t0),
        C("j1b", "inbound", "answered", "anonymous", "4951234567", "101", a, t0 + timedelta(minutes=1)),
        C("j2", "inbound", "missed", "", "4951234567", None, a, t0),
        C("j2b", "inbound", "answered", "", "4951234567", "101", a, t0 + timedelta(minutes=1)),
        C("j3", "inbound", "missed", None, "4951234567", None, b, t0),
        C("j3b", "inbound", "answered", None, "4951234567", "101", a, t0 + timedelta(minutes=1)),
        C("x1", "inbound", "missed", "205", "4951234567", None, b, t0),
        C("x1b", "outbound", "answered", "102", "205", "102", b, t0 + timedelta(seconds=61)),
        # Plus signs where no number has one: junk on both dialects, whatever their last digits.
        C("q1", "inbound", "missed", "++79167770008", "4951234567", None, b, t0),
        C("q2", "inbound", "missed", "7916+7770008", "4951234567", None, b, t0),
        C("q3", "inbound", "missed", "+", "4951234567", None, b, t0),
        C("q1b", "outbound", "answered", "102", "89167770008", "102", b, t0 + timedelta(minutes=2)),
        C("q3b", "inbound", "answered", "+", "4951234567", "102", b, t0 + timedelta(minutes=2)),
        # A callback before the miss is none; exactly the SLA and a fraction over.
        C("p1", "inbound", "missed", "+79165550005", "4951234567", None, c, t0),
        C("p1a", "outbound", "answered", "103", "89165550005", "103", c, t0 - timedelta(seconds=1)),
        C("p1b", "outbound", "answered", "103", "89165550005", "103", c, t0 + timedelta(minutes=15)),
        C("p2", "inbound", "missed", "+79165550006", "4951234567", None, c, t0 + timedelta(hours=1)),
        C(
            "p2b",
            "outbound",
            "answered",
            "103",
            "89165550006",
            "103",
            c,
            t0 + timedelta(hours=1, minutes=15, milliseconds=1),
        ),
        # Previous month: a miss whose callback falls in this month.
        C("v1", "inbound", "missed", "+79166660006", "4951234567", None, a, START - timedelta(hours=1)),
        C("v1b", "outbound", "answered", "101", "89166660006", "101", a, START + timedelta(minutes=10)),
        # Ten digits of two different numbers alike, seven digits of others alike.
        C("d1", "inbound", "missed", "+19161110007", "4951234567", None, b, t0 + timedelta(hours=2)),
        C("d1b", "outbound", "answered", "102", "89001110007", "102", b, t0 + timedelta(hours=3)),
    ]
    numbers = (
        ["+7916777000" + str(i) for i in range(5)] + ["8916777000" + str(i) for i in range(5)] + ["7770001"]
    )
    for i in range(300):
        base = START - timedelta(days=3) + timedelta(seconds=rng.randrange(0, 36 * 86400) // 60 * 60)
        direction = rng.choice(["inbound", "inbound", "outbound"])
        outcome = (
            rng.choice(["missed", "answered"])
            if direction == "inbound"
            else rng.choice(["answered", "no_answer"])
        )
        num = rng.choice(numbers)
        ext = rng.choice(["101", "102", "103", "104"])
        out.append(
            C(
                f"r{i}",
                direction,
                outcome,
                num if direction == "inbound" else ext,
                "4951234567" if direction == "inbound" else num,
                ext if outcome == "answered" or rng.random() < 0.2 else None,
                rng.choice([a, b, c, None]),
                base,
            )
        )
    return out


def _ms(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds, 3)


@pytest.mark.parametrize("stored", [False, True], ids=["matched", "stored"])
@pytest.mark.parametrize("digits", [7, 10, 0])
async def test_callback_figures_match_the_documented_rules_on_odd_data(
    db: Database, digits: int, stored: bool
) -> None:
    """Every callback figure of every row, this period and the previous, with and without a manager filter,
    equals a brute-force reading of callback_stmt's docstring: matched by the report (the reference) and read
    from the callbacks stored with the calls (computed anew with these digits)."""
    managers = ManagerRepository(db)
    ids = [
        (await managers.save(login=x, name=x, extensions=(e,))).id
        for x, e in (("anna", "101"), ("boris", "102"), ("vera", "103"))
    ]
    owner = {"101": ids[0], "102": ids[1], "103": ids[2]}
    calls = _odd_calls(ids, random.Random(digits))
    async with db.session() as session:
        for c in calls:
            session.add(
                CallRow(
                    pbx="pbx1",
                    linkedid=c.linkedid,
                    direction=c.direction,
                    caller_number=c.caller,
                    dialled=c.dialled,
                    rang=[],
                    answered_by=c.answered_by,
                    outcome=c.outcome,
                    started_at=c.at,
                    ended_at=c.at + timedelta(seconds=30),
                    manager_id=c.manager_id,
                )
            )
        if stored:
            await session.flush()
            await recompute_in(session, digits)
        # The stored path is taken only when the stored digits are the report's.
        assert not stored or await digits_in(session) == digits
    grace, sla = timedelta(hours=24), timedelta(minutes=15)
    queries = ReportQueries(
        db,
        QueryOptions(callback_grace=grace, match_digits=digits, callback_sla=sla),
        stored_callbacks=stored,
    )
    for manager in (None, ids[1]):
        report = await queries.calls_vs_deals(PERIOD, ReportFilter(manager_id=manager))
        for period, rows in ((report.period, report.rows), (report.previous_period, report.previous_rows)):
            want = _expected(calls, owner, digits, grace, sla, period.start_utc, period.end_utc, manager)
            assert _callback_figures(rows) == want, (period, manager)


def _callback_figures(
    rows: Sequence[ManagerFigures],
) -> dict[int | None, tuple[int, int, int, float | None, float | None]]:
    """Each row's callback figures, keyed by manager, as ``_expected`` gives them (rows with no missed call left out)."""
    return {
        r.manager_id: (
            r.called_back,
            r.missed_not_called_back,
            r.called_back_in_sla,
            _ms(r.callback_median_seconds),
            _ms(r.callback_p90_seconds),
        )
        for r in rows
        if r.called_back or r.missed_not_called_back
    }
