"""The calls-versus-deals report over random calls equals a plain-Python count of the same rows (SQLite and
PostgreSQL): call sums, the callback match (number keys, grace window, SLA, nearest-rank median and p90) and the
picked results, for the period and the one before it."""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import date, datetime, timedelta

import pytest

from crmtel.domain import Role
from crmtel.reports.models import UNASSIGNED, ManagerFigures, Period
from crmtel.reports.queries import QueryOptions, ReportQueries
from crmtel.store.call_callbacks import digits_in, recompute_in
from crmtel.store.db import Database
from crmtel.store.managers import ManagerRepository
from crmtel.store.models import CallRow

PERIOD = Period(date(2026, 11, 10), date(2026, 11, 13), "Europe/Moscow")
# Numbers callers use: the same subscriber in E.164 and national form, a short one, junk and none.
_NUMBERS = (
    "+79160000001",
    "89160000001",
    "+79160000002",
    "9160000002",
    "+79160000003",
    "+74951112233",
    "84951112233",
    "12345",
    "anonymous",
    "x9160000003",
    "",
    None,
)
_FIGURES = (
    "inbound",
    "outbound",
    "answered",
    "missed",
    "talk_seconds",
    "missed_not_called_back",
    "called_back",
    "called_back_in_sla",
    "callback_median_seconds",
    "callback_p90_seconds",
)


@dataclass(frozen=True, slots=True)
class _Call:
    direction: str
    outcome: str | None
    started: datetime
    manager_id: int | None
    answered_by: str | None
    caller: str | None
    dialled: str | None
    talk: int
    result: str | None
    result_by: int | None


def _random_calls(rng: random.Random, managers: list[int], count: int) -> list[_Call]:
    # From a week before the previous period to two days after this one, in whole seconds.
    first = PERIOD.previous().start_utc - timedelta(days=1)
    span = int((PERIOD.end_utc + timedelta(days=2) - first).total_seconds())
    calls = []
    for _ in range(count):
        direction = rng.choice(("inbound", "inbound", "outbound", "internal"))
        outcome = rng.choice(("answered", "missed", "missed", None))
        # Burst of calls minutes apart so callbacks land inside and outside the SLA and the grace window.
        result = rng.choice((None, None, None, "sale", "callback"))
        started = first + timedelta(
            seconds=rng.randrange(span) if rng.random() < 0.7 else rng.randrange(3600)
        )
        calls.append(
            _Call(
                direction=direction,
                outcome=outcome,
                started=started,
                manager_id=rng.choice([*managers, None, None]),
                answered_by=rng.choice(("101", "102", "103", "999", None)),
                caller=rng.choice(_NUMBERS),
                dialled=rng.choice(_NUMBERS),
                talk=rng.randrange(0, 900) if outcome == "answered" else 0,
                result=result,
                result_by=rng.choice([*managers, None]) if result is not None else None,
            )
        )
    # Some calls twice over (another linkedid): alike missed calls are counted, and ranked, one by one.
    return calls + rng.sample(calls, count // 20)


def _key(number: str | None, digits: int) -> str | None:
    if number is None:
        return None
    return number if digits == 0 else number[-digits:]


def _dialable(number: str | None) -> bool:
    digits = (number or "").removeprefix("+")
    return digits != "" and digits.isascii() and digits.isdigit()


def _nearest_rank(delays: list[float], share: float) -> float | None:
    if not delays:
        return None
    ordered = sorted(delays)
    return next(d for rank, d in enumerate(ordered, 1) if rank >= share * len(ordered))


def _reference(
    calls: list[_Call], period: Period, owners: dict[str, int], options: QueryOptions
) -> dict[int | None, dict[str, float | None]]:
    """Every call and callback figure per manager id, counted one call at a time."""
    start, end = period.start_utc, period.end_utc
    window_end = end + options.callback_grace
    figures: dict[int | None, dict[str, float | None]] = {}
    delays: dict[int | None, list[float]] = {}

    def row(mid: int | None) -> dict[str, float | None]:
        return figures.setdefault(mid, {name: 0 for name in _FIGURES})

    def add(mid: int | None, name: str, value: float) -> None:
        figures_row = row(mid)
        figures_row[name] = (figures_row[name] or 0) + value

    answered_keys = [
        (_key(c.caller if c.direction == "inbound" else c.dialled, options.match_digits), c.started)
        for c in calls
        if c.outcome == "answered"
        and c.direction in ("inbound", "outbound")
        and start <= c.started < window_end
    ]
    for c in calls:
        if not (start <= c.started < end) or c.direction not in ("inbound", "outbound") or c.outcome is None:
            continue
        mid = c.manager_id if c.manager_id is not None else owners.get(c.answered_by or "")
        add(mid, c.direction, 1)
        if c.outcome == "answered":
            add(mid, "answered", 1)
            add(mid, "talk_seconds", c.talk)
        if c.direction == "inbound" and c.outcome == "missed":
            add(mid, "missed", 1)
            key = _key(c.caller, options.match_digits) if _dialable(c.caller) else None
            backs = [at for k, at in answered_keys if key is not None and k == key and at > c.started]
            if not backs:
                add(mid, "missed_not_called_back", 1)
                continue
            delay = (min(backs) - c.started).total_seconds()
            add(mid, "called_back", 1)
            add(mid, "called_back_in_sla", int(delay <= options.callback_sla.total_seconds()))
            delays.setdefault(mid, []).append(delay)
    for mid, figures_row in figures.items():
        figures_row["callback_median_seconds"] = _nearest_rank(delays.get(mid, []), 0.5)
        figures_row["callback_p90_seconds"] = _nearest_rank(delays.get(mid, []), 0.9)
    return figures


def _reference_results(calls: list[_Call], period: Period) -> dict[int | None, dict[str, int]]:
    picked: dict[int | None, dict[str, int]] = {}
    for c in calls:
        if c.result is not None and period.start_utc <= c.started < period.end_utc:
            mid = c.result_by if c.result_by is not None else c.manager_id
            counts = picked.setdefault(mid, {})
            counts[c.result] = counts.get(c.result, 0) + 1
    return picked


def _as_dict(row: ManagerFigures) -> dict[str, float | None]:
    return {name: getattr(row, name) for name in _FIGURES}


def _check(
    rows: tuple[ManagerFigures, ...],
    expected: dict[int | None, dict[str, float | None]],
    picked: dict[int | None, dict[str, int]],
    managers: list[int],
) -> None:
    zero = {name: 0 for name in _FIGURES} | {"callback_median_seconds": None, "callback_p90_seconds": None}
    by_id = {row.manager_id: row for row in rows if row.name != UNASSIGNED}
    assert set(by_id) == set(managers)
    for mid in managers:
        got = _as_dict(by_id[mid])
        want = expected.get(mid, zero)
        assert got == pytest.approx(want, abs=1e-3), mid
        assert dict(by_id[mid].results) == picked.get(mid, {}), mid
    nobody = [row for row in rows if row.name == UNASSIGNED]
    want_nobody = expected.get(None)
    if want_nobody is None and None not in picked:
        assert nobody == []
        return
    (unassigned,) = nobody
    counts = {k: v for k, v in _as_dict(unassigned).items() if not k.startswith("callback_")}
    want_counts = {k: v for k, v in (want_nobody or zero).items() if not k.startswith("callback_")}
    assert counts == pytest.approx(want_counts, abs=1e-3)
    assert dict(unassigned.results) == picked.get(None, {})


@pytest.mark.parametrize(
    ("seed", "options"),
    [
        (1, QueryOptions()),
        (
            2,
            QueryOptions(
                callback_grace=timedelta(hours=2), match_digits=7, callback_sla=timedelta(minutes=30)
            ),
        ),
        (3, QueryOptions(match_digits=0)),
    ],
)
@pytest.mark.parametrize("stored", [False, True], ids=["matched", "stored"])
async def test_report_over_random_calls_equals_the_reference_count(
    db: Database, seed: int, options: QueryOptions, stored: bool
) -> None:
    """Random calls (numbers in several forms, junk, unattributed calls, results) give the figures counted in Python,
    whether the report matches the callbacks itself or reads them stored with the calls (computed anew)."""
    rng = random.Random(seed)
    repo = ManagerRepository(db)
    ids = [
        (await repo.save(login=f"m{n}", name=f"Manager {n}", extensions=(ext,), role=Role.MANAGER)).id
        for n, ext in enumerate(("101", "102", "103"))
    ]
    owners = dict(zip(("101", "102", "103"), ids, strict=True))
    calls = _random_calls(rng, ids, 600)
    async with db.session() as session:
        session.add_all(
            CallRow(
                pbx="pbx1",
                linkedid=str(n),
                direction=c.direction,
                caller_number=c.caller,
                dialled=c.dialled,
                rang=[],
                answered_by=c.answered_by,
                outcome=c.outcome,
                started_at=c.started,
                ended_at=c.started + timedelta(seconds=c.talk + 5) if c.outcome else None,
                ring_seconds=5.0,
                talk_seconds=float(c.talk),
                manager_id=c.manager_id,
                result=c.result,
                result_by=c.result_by,
                result_at=c.started if c.result is not None else None,
            )
            for n, c in enumerate(calls)
        )
        if stored:
            await session.flush()
            await recompute_in(session, options.match_digits)
            assert await digits_in(session) == options.match_digits
    report = await ReportQueries(db, options, stored_callbacks=stored).calls_vs_deals(PERIOD)
    for period, rows in ((PERIOD, report.rows), (PERIOD.previous(), report.previous_rows)):
        expected = _reference(calls, period, owners, options)
        assert any(figures["called_back"] for figures in expected.values()), "the data never calls back"
        _check(rows, expected, _reference_results(calls, period), ids)
