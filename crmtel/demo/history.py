"""The demo's past: two months of calls, callbacks, deals and recordings for every demo manager.

A newcomer opening the report or the history right after ``crmtel demo`` starts sees what a working team
leaves behind — answered and missed calls of realistic lengths, outbound calls (some of them returning a missed
call), open callback tasks, deals won, lost and open this month and last — instead of zeros.
"""

from __future__ import annotations

import functools
import random
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from zoneinfo import ZoneInfo

from crmtel.crm.service import DEFAULT_LOST_REASONS, DEFAULT_STAGES
from crmtel.demo.people import DemoParty, DemoPeople, last_month
from crmtel.domain import (
    CallRecord,
    DealStatus,
    Direction,
    MissedReason,
    Outcome,
    PartyKind,
    QueueOutcome,
    QueueVisit,
)
from crmtel.fakepbx.simulator import Timing
from crmtel.fakepbx.tones import tone_wav, write_recording
from crmtel.phones import display
from crmtel.store.calls import CallRepository
from crmtel.store.db import Database
from crmtel.store.deals import DealRepository, NewDeal
from crmtel.store.models import PartyNoteRow, TaskRow
from crmtel.store.tasks import MissedCall, TaskRepository

PBX = "pbx1"
DID = "4951234567"
# Where Asterisk's MixMonitor writes; crmtel finds the file by name below web.recordings_dir.
MONITOR = "/var/spool/asterisk/monitor"
_TITLES = (
    "Поставка труб ПНД",
    "Кровельные материалы",
    "Сантехника для офиса",
    "Оптовая партия цемента",
    "Утеплитель, 40 м³",
    "Комплект дверей",
    "Ламинат и плинтус",
    "Электрика для склада",
)
_NEXT_STEPS = (
    ("Отправить коммерческое предложение", 1),
    ("Согласовать спецификацию", 2),
    ("Выставить счёт", 1),
    ("Созвониться с закупщиком", 3),
    ("Встреча на объекте", 5),
)
_PLANNED = (
    (-26, "callback", "Перезвонить по счёту"),
    (-3, "call", "Уточнить объём поставки"),
    (2, "callback", "Перезвонить после обеда"),
    (20, "meeting", "Встреча в офисе клиента"),
    (70, "email", "Отправить договор на подпись"),
)
_NOTES = (
    "Просит скидку 5 % при оплате до конца месяца.",
    "Новый закупщик с понедельника — Олег, прямой 8 (903) 123-00-01.",
    "Доставка только до 16:00, въезд со двора.",
    "Сравнивают с предложением конкурента, ждут наше КП до пятницы.",
    "Оплата по счёту, отсрочка 14 дней согласована.",
)
_MISSED = (MissedReason.CALLER_HUNG_UP_RINGING, MissedReason.ABANDONED_IN_QUEUE, MissedReason.NO_ANSWER)


@dataclass
class _Plan:
    """What the generator accumulates before writing it in a few transactions."""

    records: list[CallRecord] = field(default_factory=list)
    missed: list[tuple[CallRecord, int]] = field(default_factory=list)
    recordings: list[str] = field(default_factory=list)
    serial: int = 50_000


@dataclass(frozen=True, slots=True)
class _Window:
    start: datetime
    end: datetime


def _working_moment(rng: random.Random, window: _Window, tz: ZoneInfo) -> datetime:
    """A random instant in the window, moved into 9:00-19:00 local time on its day when that stays inside."""
    moment = window.start + (window.end - window.start) * rng.random()
    local = moment.astimezone(tz)
    if not 9 <= local.hour < 19:
        day = local.replace(hour=9, minute=0, second=0, microsecond=0) + timedelta(
            seconds=rng.uniform(0, 36_000)
        )
        if window.start <= day.astimezone(UTC) < window.end:
            return day.astimezone(UTC)
    return moment


def _party_for(rng: random.Random, login: str, parties: Sequence[DemoParty]) -> DemoParty | None:
    own = [p for p in parties if p.manager == login]
    if own and rng.random() < 0.75:
        return rng.choice(own)
    return rng.choice(parties) if rng.random() < 0.5 else None


def _call(
    plan: _Plan,
    rng: random.Random,
    *,
    at: datetime,
    direction: Direction,
    extension: str,
    manager_id: int,
    party: DemoParty | None,
    number: str,
    answered: bool,
) -> CallRecord:
    plan.serial += 1
    linkedid = f"{int(at.timestamp())}.{plan.serial}"
    timing = Timing.realistic(rng, answered=answered)
    ring = timing.ring if direction is Direction.INBOUND else rng.uniform(5.0, 20.0)
    recording = None
    if answered and rng.random() < 0.8:
        name = f"demo-{linkedid}.wav"
        plan.recordings.append(name)
        recording = f"{MONITOR}/{name}"
    reason = None if answered else rng.choice(_MISSED)
    answered_at = at + timedelta(seconds=ring) if answered else None
    ended_at = at + timedelta(seconds=ring + timing.talk)
    visits = (
        _queue_wait(linkedid, at, extension, reason, answered_at, ended_at)
        if direction is Direction.INBOUND
        else ()
    )
    record = CallRecord(
        pbx=PBX,
        linkedid=linkedid,
        direction=direction,
        caller_number=number if direction is Direction.INBOUND else extension,
        caller_name=party.name if party and direction is Direction.INBOUND else None,
        dialled=DID if direction is Direction.INBOUND else "8" + number[-10:],
        started_at=at,
        rang=(extension,),
        answered_by=extension if answered else None,
        queue=visits[0].queue if visits else None,
        outcome=Outcome.ANSWERED if answered else Outcome.MISSED,
        missed_reason=reason,
        answered_at=answered_at,
        ended_at=ended_at,
        ring_seconds=round(ring, 1),
        talk_seconds=round(timing.talk, 1) if answered else 0.0,
        recording_file=recording,
        party_kind=party.kind if party else None,
        party_id=party.id if party else None,
        party_name=party.name if party else None,
        manager_id=manager_id,
        queue_visits=visits,
    )
    plan.records.append(record)
    return record


def _queue_wait(
    linkedid: str,
    at: datetime,
    extension: str,
    reason: MissedReason | None,
    answered_at: datetime | None,
    ended_at: datetime,
) -> tuple[QueueVisit, ...]:
    """Most inbound calls came through a queue (for the queue report and the board); its own random
    stream, so the rest of the history stays as it was."""
    pick = random.Random(linkedid)
    abandoned = reason is MissedReason.ABANDONED_IN_QUEUE
    if not abandoned and pick.random() < 0.35:
        return ()
    queue = "retail" if abandoned or pick.random() < 0.7 else "wholesale"
    joined = at + timedelta(seconds=pick.uniform(0.5, 3.0))
    other = pick.choice([e for e in ("101", "102", "103", "104") if e != extension])
    offered = (extension, other) if pick.random() < 0.5 else (extension,)
    if answered_at is not None:
        return (
            QueueVisit(queue, joined, max(answered_at, joined), QueueOutcome.ANSWERED, extension, offered),
        )
    outcome = QueueOutcome.ABANDONED if abandoned else QueueOutcome.EXITED
    return (QueueVisit(queue, joined, max(ended_at, joined), outcome, None, offered),)


def _calls_for(
    plan: _Plan,
    rng: random.Random,
    people: DemoPeople,
    login: str,
    window: _Window,
    count: int,
    *,
    now: datetime,
    tz: ZoneInfo,
) -> None:
    extension, manager_id = people.extensions[login], people.managers[login]
    for _ in range(count):
        at = _working_moment(rng, window, tz)
        party = _party_for(rng, login, people.parties)
        number = (party.phone if party else "+7903" + "".join(str(rng.randrange(10)) for _ in range(7)))[1:]
        roll = rng.random()
        direction = Direction.OUTBOUND if 0.55 <= roll < 0.75 else Direction.INBOUND
        answered = roll < 0.8

        make = functools.partial(
            _call, plan, rng, extension=extension, manager_id=manager_id, party=party, number=number
        )
        record = make(at=at, direction=direction, answered=answered)
        if answered:
            continue
        callback_at = at + timedelta(minutes=rng.uniform(10, 150))
        if rng.random() < 0.65 and callback_at < window.end:
            # Returned: an answered outbound call to the same number (the report counts it as called back).
            make(at=callback_at, direction=Direction.OUTBOUND, answered=True)
        else:
            plan.missed.append((record, manager_id))


def _amount(rng: random.Random, wholesale: bool) -> Decimal:
    low, high = (150_000, 1_500_000) if wholesale else (12_000, 160_000)
    kopecks = rng.choice((0, 0, 0, 50, rng.randrange(100)))
    return Decimal(rng.randrange(low, high, 100)) + Decimal(kopecks) / 100


async def _deals(
    deals: DealRepository,
    rng: random.Random,
    people: DemoPeople,
    months: Sequence[_Window],
    now: datetime,
) -> int:
    """Won, lost and open deals this month and last for every manager; returns how many were made."""
    made = 0
    for login, manager_id in people.managers.items():
        if login not in people.extensions:
            continue
        own = [p for p in people.parties if p.manager == login] or list(people.parties)
        for index, month in enumerate(months):
            current = index == len(months) - 1
            plan = [DealStatus.WON] * rng.randint(2, 4) + [DealStatus.OPEN] * rng.randint(1, 3)
            plan += [] if current else [DealStatus.LOST]
            for status in plan:
                party = rng.choice(own)
                closed = month.start + (month.end - month.start) * rng.uniform(0.1, 0.95)
                opened = (
                    closed - timedelta(days=rng.uniform(1, 20)) if status is not DealStatus.OPEN else closed
                )
                deal = await deals.add(
                    NewDeal(
                        title=rng.choice(_TITLES),
                        amount=_amount(rng, login == "gleb"),
                        manager_id=manager_id,
                        client_id=party.id if party.kind is PartyKind.CLIENT else None,
                        lead_id=party.id if party.kind is PartyKind.LEAD else None,
                        stage=rng.choice(DEFAULT_STAGES) if status is DealStatus.OPEN else "negotiation",
                        opened_at=min(opened, now),
                    )
                )
                if status is DealStatus.OPEN:
                    step, days = rng.choice(_NEXT_STEPS)
                    await deals.plan(deal.id, step, now + timedelta(days=days, hours=rng.randint(-3, 3)))
                else:
                    await deals.close(deal.id, status, min(closed, now))
                    if status is DealStatus.LOST:
                        await deals.plan(
                            deal.id, None, None, lost_reason=rng.choice(DEFAULT_LOST_REASONS[:5])
                        )
                made += 1
    return made


async def _planned(db: Database, rng: random.Random, people: DemoPeople, now: datetime) -> None:
    """Planned tasks for every manager: some overdue, some today, some later in the week; notes on clients."""
    async with db.session() as session:
        for login, manager_id in people.managers.items():
            if login not in people.extensions:
                continue
            own = [p for p in people.parties if p.manager == login] or list(people.parties)
            for hours, kind, title in _PLANNED:
                party = rng.choice(own)
                due = now + timedelta(hours=hours + rng.uniform(-1, 1))
                session.add(
                    TaskRow(
                        kind=kind,
                        title=title,
                        phone=party.phone if kind in ("callback", "call") else None,
                        manager_id=manager_id,
                        client_id=party.id if party.kind is PartyKind.CLIENT else None,
                        lead_id=party.id if party.kind is PartyKind.LEAD else None,
                        status="open",
                        source="planned",
                        missed_count=0,
                        due_at=due,
                        created_at=min(due, now) - timedelta(days=2),
                        updated_at=now,
                    )
                )
        for party in people.parties[:8]:
            note = rng.choice(_NOTES)
            author = people.managers.get(party.manager or "head")
            session.add(
                PartyNoteRow(
                    kind=party.kind.value,
                    party_id=party.id,
                    manager_id=author,
                    text=note,
                    created_at=now - timedelta(days=rng.randint(1, 20), hours=rng.randint(0, 8)),
                )
            )


async def seed_history(
    db: Database,
    people: DemoPeople,
    *,
    recordings_dir: Path | None,
    timezone: str = "Europe/Moscow",
    now: datetime | None = None,
    seed: int = 2026,
) -> int:
    """Write the demo's past (calls, callback tasks, deals, recording files); returns the number of calls."""
    rng = random.Random(seed)
    tz = ZoneInfo(timezone)
    now = now or datetime.now(UTC)
    local_today = now.astimezone(tz).date()
    this_start = datetime.combine(local_today.replace(day=1), datetime.min.time(), tz).astimezone(UTC)
    last_start = datetime.combine(last_month(local_today), datetime.min.time(), tz).astimezone(UTC)
    # This month up to a quarter of an hour ago (never empty, even on the 1st just after midnight).
    this_end = max(now - timedelta(minutes=15), this_start + timedelta(minutes=5))
    months = (_Window(last_start, this_start), _Window(this_start, min(this_end, now)))
    plan = _Plan()
    for login in people.extensions:
        _calls_for(plan, rng, people, login, months[0], rng.randint(24, 34), now=now, tz=tz)
        days = max(1.0, (now - this_start).total_seconds() / 86_400)
        count = max(8, min(34, round(days * 1.3)))
        _calls_for(plan, rng, people, login, months[1], count, now=now, tz=tz)

    # Stored oldest first, so row ids follow time as they do for real calls (the history lists by id).
    plan.records.sort(key=lambda r: r.started_at)
    ids = await CallRepository(db).upsert_many([(r, None) for r in plan.records])
    tasks = TaskRepository(db)
    for record, manager_id in plan.missed:
        if record.started_at < this_start:
            continue
        await tasks.record_missed(
            MissedCall(
                phone="+" + (record.caller_number or "").lstrip("+"),
                call_id=ids.get((record.pbx, record.linkedid)),
                manager_id=manager_id,
                client_id=record.party_id if record.party_kind is PartyKind.CLIENT else None,
                lead_id=record.party_id if record.party_kind is PartyKind.LEAD else None,
                title=f"Перезвонить: {record.party_name or display(record.caller_number)}",
                due_at=record.started_at + timedelta(minutes=30),
                at=record.started_at,
            )
        )
    await _deals(DealRepository(db), rng, people, months, now)
    await _planned(db, rng, people, now)
    if recordings_dir is not None:
        tone = tone_wav()
        for name in plan.recordings:
            write_recording(recordings_dir, name, tone)
    return len(plan.records)
