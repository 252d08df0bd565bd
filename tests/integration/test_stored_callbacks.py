"""The first callback stored with each missed call (crmtel.store.call_callbacks) stays right whatever order the
calls are written in through the call store's real write paths — live then ended, missed before or after its
callback, a CDR backfill correcting an outcome or bringing the callback late, transfers merged, failed
originates discarded — on SQLite and PostgreSQL: equal to a full recompute, and the report read from it equal to
a brute-force reading of the rules."""

from __future__ import annotations

import asyncio
import random
import time
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import select

from crmtel.domain import CallRecord, Direction, Outcome
from crmtel.reports.models import Period, ReportFilter
from crmtel.reports.queries import QueryOptions, ReportQueries
from crmtel.store.call_callbacks import digits_in, match_digits, number_key, recompute_in
from crmtel.store.calls import discard_live_in, merge_in, upsert_in
from crmtel.store.db import Database
from crmtel.store.managers import ManagerRepository
from crmtel.store.models import CallRow
from tests.integration.test_reports_callbacks_oracle import C, _callback_figures, _expected

PERIOD = Period(date(2026, 11, 1), date(2026, 12, 1), "UTC")
T0 = datetime(2026, 10, 25, tzinfo=UTC)
# A few spellings of two numbers, junk, and many other numbers (a later write of the same number would hide a
# write path that forgets to recompute).
NUMBERS = (
    *(f"+7916333{n:04d}" for n in range(40)),
    *(f"8916333{n:04d}" for n in range(40)),
    "+79161110001",
    "89161110001",
    "79161110001",
    "+79162220002",
    "89162220002",
    "+19162220002",
    "2220002",
    "205",
    "anonymous",
    "",
    "++79161110001",
)


def _record(rng: random.Random, n: int, manager_ids: list[int]) -> CallRecord:
    direction = rng.choice([Direction.INBOUND, Direction.INBOUND, Direction.OUTBOUND])
    if direction is Direction.INBOUND:
        outcome = rng.choice([Outcome.MISSED, Outcome.MISSED, Outcome.ANSWERED])
    else:
        outcome = rng.choice([Outcome.ANSWERED, Outcome.MISSED])
    number = rng.choice(NUMBERS)
    ext = rng.choice(["101", "102"])
    # Minutes apart over six weeks, several in one second.
    at = T0 + timedelta(minutes=rng.randrange(0, 42 * 24 * 60, 7) // 3, seconds=rng.choice([0, 0, 30]))
    return CallRecord(
        pbx="pbx1",
        linkedid=f"c{n}",
        direction=direction,
        caller_number=number if direction is Direction.INBOUND else ext,
        caller_name=None,
        dialled="4951234567" if direction is Direction.INBOUND else number,
        started_at=at,
        answered_by=ext if outcome is Outcome.ANSWERED or rng.random() < 0.3 else None,
        outcome=outcome,
        answered_at=at if outcome is Outcome.ANSWERED else None,
        ended_at=at + timedelta(seconds=40),
        manager_id=rng.choice([*manager_ids, None]),
    )


def _live(record: CallRecord) -> CallRecord:
    """The same call while it still rang (no outcome yet, not ended)."""
    return replace(record, outcome=None, answered_by=None, answered_at=None, ended_at=None)


def _writes(rng: random.Random, manager_ids: list[int]) -> list[tuple[str, Any]]:
    """A random sequence of store operations; the calls they leave are what the report must count."""
    ops: list[tuple[str, Any]] = []
    for n in range(160):
        final = _record(rng, n, manager_ids)
        kind = rng.random()
        if kind < 0.15:
            # A failed originate: stored live (answered, say, by the tracker's reading), then discarded.
            live = _live(final) if rng.random() < 0.5 else replace(final, ended_at=None)
            ops += [("upsert", [live]), ("discard", final.linkedid)]
            continue
        steps: list[tuple[str, Any]] = [("upsert", [_live(final)])] if rng.random() < 0.5 else []
        if kind < 0.3:
            # The tracker got it wrong (missed, another number); the CDR backfill corrects it later.
            wrong = replace(
                final,
                direction=Direction.INBOUND,
                outcome=rng.choice([Outcome.MISSED, Outcome.ANSWERED]),
                caller_number=rng.choice(NUMBERS),
                dialled="4951234567",
            )
            steps += [("upsert", [wrong]), ("upsert", [final])]
        elif kind < 0.4:
            # Transferred: the call was stored under another linkedid too, then merged into this one (or
            # the other row renamed when this one was never stored).
            old = replace(_record(rng, n, manager_ids), linkedid=f"{final.linkedid}-old")
            steps += [("upsert", [old])]
            if rng.random() < 0.7:
                steps += [("upsert", [final])]
                steps += [("merge", (old.linkedid, final.linkedid))]
            else:
                steps += [("merge", (old.linkedid, final.linkedid)), ("upsert", [final])]
        else:
            steps += [("upsert", [final])]
        if rng.random() < 0.1:
            # A replay's late live event for a call already ended leaves it as it is.
            steps += [("upsert", [_live(final)])]
        ops += steps
    # Interleave the calls' steps, each call's own in order, so misses come before and after their callbacks.
    by_call: dict[str, list[tuple[str, Any]]] = {}
    for op in ops:
        name = op[1] if op[0] == "discard" else op[1][1] if op[0] == "merge" else op[1][0].linkedid
        by_call.setdefault(name.removesuffix("-old"), []).append(op)
    queues = list(by_call.values())
    out: list[tuple[str, Any]] = []
    while queues:
        q = rng.choice(queues)
        out.append(q.pop(0))
        if not q:
            queues.remove(q)
    return out


async def _apply(db: Database, ops: list[tuple[str, Any]], rng: random.Random) -> None:
    i = 0
    while i < len(ops):
        async with db.session() as session:
            # Batches of one to six operations in one transaction, as the call service commits them.
            for op, arg in ops[i : i + rng.randint(1, 6)]:
                i += 1
                if op == "upsert":
                    await upsert_in(session, [(r, None if r.ended_at else {"s": 1}) for r in arg])
                elif op == "discard":
                    await discard_live_in(session, [("pbx1", arg)])
                else:
                    await merge_in(session, "pbx1", *arg)


async def _stored(db: Database) -> dict[str, tuple[str | None, datetime | None]]:
    async with db.session() as session:
        rows = await session.execute(select(CallRow.linkedid, CallRow.number_key, CallRow.callback_at))
        return {linkedid: (key, at) for linkedid, key, at in rows.all()}


@pytest.mark.parametrize(("seed", "digits"), [(1, 10), (2, 10), (3, 7), (4, 0)])
async def test_callbacks_kept_by_every_write_path_equal_a_recompute_and_the_rules(
    db: Database, seed: int, digits: int
) -> None:
    """Written through upsert/merge/discard in random order, the stored keys and callbacks equal a full
    recompute's, and the report read from them equals a brute-force reading of the rules."""
    rng = random.Random(seed)
    managers = ManagerRepository(db)
    ids = [
        (await managers.save(login=x, name=x, extensions=(e,))).id for x, e in (("a", "101"), ("b", "102"))
    ]
    owner = {"101": ids[0], "102": ids[1]}
    if digits != 10:
        async with db.session() as session:
            await recompute_in(session, digits)
    await _apply(db, _writes(rng, ids), rng)

    kept = await _stored(db)
    assert any(at is not None for _, at in kept.values()), "nothing was ever called back"
    async with db.session() as session:
        assert await digits_in(session) == digits
        await recompute_in(session, digits)
    assert kept == await _stored(db)

    async with db.session() as session:
        rows = (await session.execute(select(CallRow))).scalars().all()
        calls = [
            C(
                r.linkedid,
                r.direction,
                r.outcome or "",
                r.caller_number,
                r.dialled,
                r.answered_by,
                r.manager_id,
                r.started_at,
            )
            for r in rows
        ]
    for r in calls:
        # The Python key rule the writers use is the SQL one the recompute used.
        assert kept[r.linkedid][0] == number_key(r.direction, r.outcome or None, r.caller, r.dialled, digits)
    grace, sla = timedelta(hours=24), timedelta(minutes=15)
    options = QueryOptions(callback_grace=grace, match_digits=digits, callback_sla=sla)
    report = await ReportQueries(db, options).calls_vs_deals(PERIOD, ReportFilter())
    for period, got_rows in ((report.period, report.rows), (report.previous_period, report.previous_rows)):
        want = _expected(calls, owner, digits, grace, sla, period.start_utc, period.end_utc, None)
        assert _callback_figures(got_rows) == want, period


def _missed_at(at: datetime, **fields: Any) -> CallRecord:
    """The inbound call from +79161110001 to the office line that nobody answered (linkedid "m")."""
    return CallRecord(
        "pbx1",
        "m",
        Direction.INBOUND,
        "+79161110001",
        None,
        "4951234567",
        at,
        outcome=Outcome.MISSED,
        ended_at=at,
        **fields,
    )


def _called_back(at: datetime, number: str, pbx: str = "pbx1", **fields: Any) -> CallRecord:
    """Extension 101 dialling ``number`` five minutes after ``at``, answered, one minute long (linkedid "b")."""
    return CallRecord(
        pbx,
        "b",
        Direction.OUTBOUND,
        "101",
        None,
        number,
        at + timedelta(minutes=5),
        answered_by="101",
        outcome=Outcome.ANSWERED,
        ended_at=at + timedelta(minutes=6),
        **fields,
    )


async def test_changed_match_digits_recompute_the_stored_callbacks_once(db: Database) -> None:
    """Start-up with other callback_match_digits than the stored ones computes every key and callback anew
    (a 7-digit match joins numbers a 10-digit one keeps apart), and only once; the report then reads them."""
    managers = ManagerRepository(db)
    anna = (await managers.save(login="anna", name="anna", extensions=("101",))).id
    at = datetime(2026, 11, 10, 9, tzinfo=UTC)
    missed = _missed_at(at, manager_id=anna)
    # The same last seven digits, another number: a callback only when seven digits are compared.
    back = _called_back(at, "+74951110001", manager_id=anna)
    async with db.session() as session:
        await upsert_in(session, [(missed, None), (back, None)])
    assert (await _stored(db))["m"] == ("9161110001", None)

    assert await match_digits(db, 7)
    assert (await _stored(db))["m"] == ("1110001", back.started_at)
    assert not await match_digits(db, 7)
    options = QueryOptions(match_digits=7)
    (row,) = [r for r in (await ReportQueries(db, options).calls_vs_deals(PERIOD)).rows if r.login == "anna"]
    assert (row.called_back, row.callback_median_seconds) == (1, 300.0)
    # Back to ten digits: the numbers are apart again.
    assert await match_digits(db, 10)
    assert (await _stored(db))["m"] == ("9161110001", None)


async def test_a_missed_call_and_its_callback_written_at_once_find_each_other(db: Database) -> None:
    """Two transactions at once, one writing a missed call and one its callback (two cluster nodes, or the CDR
    backfill beside the live writer): the second waits for the first, so neither misses the other's row."""
    if db.engine.dialect.name != "postgresql":
        pytest.skip("SQLite runs one writing transaction at a time")
    at = datetime(2026, 11, 10, 9, tzinfo=UTC)
    missed = _missed_at(at)
    back = _called_back(at, "89161110001", pbx="pbx2")
    first_written = asyncio.Event()
    second_started = asyncio.Event()

    async def write_missed() -> None:
        async with db.session() as session:
            await upsert_in(session, [(missed, None)])
            first_written.set()
            await second_started.wait()
            # Still uncommitted while the callback's transaction runs.
            await asyncio.sleep(0.3)

    async def write_back() -> None:
        await first_written.wait()
        second_started.set()
        async with db.session() as session:
            await upsert_in(session, [(back, None)])

    async with asyncio.timeout(10):
        await asyncio.gather(write_missed(), write_back())
    assert (await _stored(db))["m"] == ("9161110001", back.started_at)


async def test_calls_written_during_a_recompute_get_its_digits(db: Database) -> None:
    """A node recomputing the stored callbacks with new digits (a restart with another callback_match_digits,
    minutes on millions of calls) while another node writes calls: the writes wait for it, so the calls they
    write are keyed with the new digits, not the old ones read before the recompute committed (review28s)."""
    if db.engine.dialect.name != "postgresql":
        pytest.skip("SQLite runs one writing transaction at a time")
    at = datetime(2026, 11, 10, 9, tzinfo=UTC)
    async with db.session() as session:
        await recompute_in(session, 10)
    missed = _missed_at(at)
    # Another number with the same last seven digits: a callback once seven digits are compared.
    back = _called_back(at, "+74951110001")
    recomputed = asyncio.Event()

    async def recompute() -> None:
        async with db.session() as session:
            await recompute_in(session, 7)
            recomputed.set()
            # Still uncommitted while the other node writes.
            await asyncio.sleep(0.3)

    async def write() -> None:
        await recomputed.wait()
        async with db.session() as session:
            await upsert_in(session, [(missed, None), (back, None)])

    async with asyncio.timeout(10):
        await asyncio.gather(recompute(), write())
    stored = await _stored(db)
    async with db.session() as session:
        assert await digits_in(session) == 7
        await recompute_in(session, 7)
    assert stored == await _stored(db)
    assert stored["m"] == ("1110001", back.started_at)


async def test_a_missed_call_of_a_busy_number_does_not_recompute_its_other_calls(db: Database) -> None:
    """A switchboard's number with thousands of missed calls: another missed call from it changes no other
    call's callback, so writing it costs about what a new number's does (main recomputed all of them under the
    calls' write lock: 61 vs 4 ms a write at 10,000 missed calls on PostgreSQL) (review28s)."""
    t0 = datetime(2026, 1, 1, tzinfo=UTC)
    async with db.session() as session:
        await recompute_in(session, 10)

    def call(n: int, number: str, outcome: Outcome, at: datetime) -> tuple[CallRecord, None]:
        answered = outcome is Outcome.ANSWERED
        return (
            CallRecord(
                "pbx1",
                f"c{n}",
                Direction.INBOUND,
                number,
                None,
                "4951234567",
                at,
                answered_by="101" if answered else None,
                outcome=outcome,
                answered_at=at if answered else None,
                ended_at=at + timedelta(seconds=30),
            ),
            None,
        )

    busy, n = "+74950000000", 12000
    calls = [
        call(i, busy, Outcome.ANSWERED if i % 2 else Outcome.MISSED, t0 + timedelta(minutes=i))
        for i in range(n)
    ]
    for i in range(0, n, 2000):
        async with db.session() as session:
            await upsert_in(session, calls[i : i + 2000])

    async def write_ms(number: str, base: int) -> float:
        times = []
        for k in range(7):
            started = time.perf_counter()
            async with db.session() as session:
                await upsert_in(
                    session, [call(base + k, number, Outcome.MISSED, t0 + timedelta(days=30, minutes=k))]
                )
            times.append(time.perf_counter() - started)
        return sorted(times)[3] * 1000

    fresh, crowded = await write_ms("+79990000001", n), await write_ms(busy, n + 100)
    assert crowded < 3 * fresh + 5, (crowded, fresh)
    async with db.session() as session:
        (back,) = (await session.execute(select(CallRow.callback_at).where(CallRow.linkedid == "c0"))).one()
    assert back == t0 + timedelta(minutes=1)
