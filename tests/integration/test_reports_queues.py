"""The queue report and the heatmap on the hand-counted queue data set, and on the recorded traces replayed."""

from __future__ import annotations

import random
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta

import pytest

from crmtel.ami.protocol import Message
from crmtel.calls.service import CallService
from crmtel.config import CallsSettings
from crmtel.domain import QueueOutcome, QueueVisit
from crmtel.reports.models import Period
from crmtel.reports.queue_models import QueueFigures, QueueReport
from crmtel.reports.queue_queries import QueueQueries
from crmtel.store.calls import CallRepository
from crmtel.store.db import Database
from crmtel.store.parties import PartyRepository
from tests.fixtures import queue_dataset as qd
from tests.fixtures.traces import load_messages

PERIOD = Period(qd.FROM, qd.TO, qd.TZ)


def _figures(q: QueueFigures) -> dict[str, float | int | None]:
    return {
        "offered": q.offered,
        "answered": q.answered,
        "abandoned": q.abandoned,
        "exited": q.exited,
        "wait_avg_s": q.wait_avg_s,
        "wait_p90_s": q.wait_p90_s,
        "abandon_wait_avg_s": q.abandon_wait_avg_s,
        "talk_avg_s": q.talk_avg_s,
        "service_level_pct": q.service_level_pct,
    }


def _approx(expected: dict[str, float | int | None]) -> dict[str, object]:
    return {k: (None if v is None else pytest.approx(v, abs=0.005)) for k, v in expected.items()}


async def _report(db: Database, queue: str | None = None) -> QueueReport:
    return await QueueQueries(db).queues(PERIOD, queue)


async def test_queue_figures_match_the_hand_count(db: Database) -> None:
    """Offered, answered, abandoned, waits (avg, p90), talk and service level per queue are the counted ones."""
    await qd.load(db)
    report = await _report(db)
    got = {q.queue: _figures(q) for q in report.queues}
    assert got == {name: _approx(figures) for name, figures in qd.EXPECTED_QUEUES.items()}


async def test_members_count_offers_by_real_phone_and_who_answered(db: Database) -> None:
    """Per member: offered, answered, rang without answering; the personal manager rung first is no offer."""
    await qd.load(db)
    report = await _report(db)
    got = {
        (q.queue, m.extension): (m.offered, m.answered, m.rang_unanswered)
        for q in report.queues
        for m in q.members
    }
    assert got == qd.EXPECTED_MEMBERS
    names = {m.extension: m.login for q in report.queues for m in q.members}
    assert names == {"101": "anna", "102": "boris", "103": "vera", "104": "gleb"}


async def test_one_queue_only_and_an_empty_period(db: Database) -> None:
    """--queue narrows to that queue; a period without calls has no queues (no division by zero)."""
    await qd.load(db)
    assert [q.queue for q in (await _report(db, "wholesale")).queues] == ["wholesale"]
    assert (await _report(db, "nonexistent")).queues == ()
    empty = await QueueQueries(db).queues(Period(date(2025, 1, 1), date(2025, 2, 1), qd.TZ))
    assert empty.queues == ()


async def test_service_level_threshold_is_configurable_and_inclusive(db: Database) -> None:
    """With 10 s, q.5 (10 s exactly) and q.6 (3 s) count; with 25 s, q.2 (20.5 s) counts too."""
    await qd.load(db)
    ten = {
        q.queue: q.answered_within_sl
        for q in (await QueueQueries(db, service_level_seconds=10).queues(PERIOD)).queues
    }
    more = {
        q.queue: q.answered_within_sl
        for q in (await QueueQueries(db, service_level_seconds=25).queues(PERIOD)).queues
    }
    assert ten == {"retail": 2, "wholesale": 1}
    assert more == {"retail": 4, "wholesale": 1}


async def test_heatmap_counts_inbound_and_missed_by_local_weekday_and_hour(db: Database) -> None:
    """Each call lands in its Moscow weekday/hour cell, a call past midnight on the hour it started."""
    await qd.load(db)
    heatmap = await QueueQueries(db).heatmap(PERIOD)
    got = {
        (wd, h): (heatmap.inbound[wd][h], heatmap.missed[wd][h])
        for wd in range(7)
        for h in range(24)
        if heatmap.inbound[wd][h] or heatmap.missed[wd][h]
    }
    assert got == qd.EXPECTED_HEATMAP


async def test_heatmap_follows_daylight_saving_changes(db: Database) -> None:
    """In Europe/Berlin a 09:30 call is hour 9 both before and after the October clock change."""
    template = qd.CALLS[0]
    before = replace(
        template, linkedid="dst.1", started_at=datetime(2026, 10, 20, 7, 30, tzinfo=UTC), queue_visits=()
    )
    after = replace(
        template, linkedid="dst.2", started_at=datetime(2026, 10, 27, 8, 30, tzinfo=UTC), queue_visits=()
    )
    await CallRepository(db).upsert_many([(before, None), (after, None)])
    heatmap = await QueueQueries(db).heatmap(Period(date(2026, 10, 19), date(2026, 10, 31), "Europe/Berlin"))
    assert heatmap.inbound[1][9] == 2  # both Tuesdays, 09:30 local
    assert heatmap.total_inbound == 2


async def test_recorded_traces_replayed_give_the_counted_queue_figures(db: Database) -> None:
    """Six real queue traces through the call service: joins, answers and abandons make the counted figures."""
    service = CallService(db, CallsSettings(), PartyRepository(db))
    for scenario in (
        "queue-ringall-answered",
        "queue-abandoned",
        "wholesale-local-members",
        "direct-noanswer-then-queue",
        "direct-busy-then-queue",
        "anonymous-caller",
        "direct-answered",
    ):
        for item in load_messages(scenario):
            await service.on_event("pbx1", _suffixed(item.message, scenario), _at(item.t))
        await service.flush()
    report = await QueueQueries(db).queues(Period(date(2026, 11, 23), date(2026, 11, 24), "UTC"))
    by_queue = {q.queue: q for q in report.queues}
    retail, wholesale = by_queue["retail"], by_queue["wholesale"]
    assert (retail.offered, retail.answered, retail.abandoned, retail.exited) == (5, 4, 1, 0)
    assert (wholesale.offered, wholesale.answered, wholesale.abandoned) == (1, 1, 0)
    assert retail.service_level_pct == pytest.approx(80.0)
    # Asterisk's HoldTime (whole seconds) for the answered retail waits: 2, 2, 2, 1; the abandoned one: 6.
    assert retail.wait_avg_s == pytest.approx(7 / 4, abs=0.5)
    assert retail.abandon_wait_avg_s == pytest.approx(6, abs=0.5)
    members = {(q.queue, m.extension): (m.offered, m.answered) for q in report.queues for m in q.members}
    # 101 was rung directly (busy) in direct-busy-then-queue: it is no retail member offer.
    assert members == {("retail", "102"): (5, 3), ("retail", "103"): (5, 1), ("wholesale", "104"): (1, 1)}


def _suffixed(message: Message, scenario: str) -> Message:
    """Each trace's ids made unique (several traces were recorded on one PBX run)."""
    suffix = "." + scenario
    keys = {"uniqueid", "linkedid", "destuniqueid", "destlinkedid"}
    return Message(tuple((k, v + suffix if k.lower() in keys and v else v) for k, v in message.headers))


def _at(t: float) -> datetime:
    return datetime(2026, 11, 23, 10, 0, tzinfo=UTC) + timedelta(seconds=t)


async def test_heatmap_minute_of_the_spring_clock_change_is_on_the_new_time(db: Database) -> None:
    """Berlin, 29 Mar 2026: 00:59:30 UTC is 01:59 local (hour 1), 01:00:30 UTC already 03:00 local (hour 3)."""
    template = qd.CALLS[0]
    calls = [
        replace(
            template,
            linkedid="dst.3",
            started_at=datetime(2026, 3, 29, 0, 59, 30, tzinfo=UTC),
            queue_visits=(),
        ),
        replace(
            template,
            linkedid="dst.4",
            started_at=datetime(2026, 3, 29, 1, 0, 30, tzinfo=UTC),
            queue_visits=(),
        ),
    ]
    await CallRepository(db).upsert_many([(c, None) for c in calls])
    heatmap = await QueueQueries(db).heatmap(Period(date(2026, 3, 29), date(2026, 3, 30), "Europe/Berlin"))
    sunday = heatmap.inbound[6]
    assert (sunday[1], sunday[2], sunday[3]) == (1, 0, 1)


@pytest.mark.parametrize("n", [1, 2, 11, 37])
async def test_wait_p90_is_percentile_cont_on_every_database(db: Database, n: int) -> None:
    """The p90 equals percentile_cont(0.9) (linear interpolation) for any number of answered waits."""
    rng = random.Random(n)
    waits = [round(rng.uniform(0, 90), 2) for _ in range(n)]
    start = datetime(2026, 11, 23, 8, 0, tzinfo=UTC)
    template = qd.CALLS[0]
    calls = []
    for k, wait in enumerate(waits):
        at = start + timedelta(minutes=k)
        visit = QueueVisit("p90", at, at + timedelta(seconds=wait), QueueOutcome.ANSWERED, "102", ("102",))
        calls.append((replace(template, linkedid=f"p90.{k}", started_at=at, queue_visits=(visit,)), None))
    await CallRepository(db).upsert_many(calls)
    (figures,) = (await QueueQueries(db).queues(Period(date(2026, 11, 23), date(2026, 11, 24), "UTC"))).queues
    ordered = sorted(waits)
    pos = 0.9 * (n - 1)
    lo = int(pos)
    hi = min(lo + 1, n - 1)
    expected = ordered[lo] + (pos - lo) * (ordered[hi] - ordered[lo])
    assert figures.wait_p90_s == pytest.approx(expected, abs=0.01)
