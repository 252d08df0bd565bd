"""Click-to-call on a real Asterisk 22: the manager's desk phone rung by crmtel's AMI Originate, then the number.

Flows at once against one PBX (each manager with a phone of their own): answered, the manager's phone busy, not
answered, declined on the phone, and a missed call's callback task closed by the manager's click-to-call. Then
`crmtel backfill` reads the PBX's Master.csv over the same period: a second source that must agree.
"""

from __future__ import annotations

import asyncio
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from tests.fixtures.databases import PostgresRun, SqliteRun
from tests.fixtures.races import RACES_PROCESSES
from tests.live.asterisk import Install, Phone, Queue
from tests.live.batch import Expected, Result, Scenario, assert_matches, first_invite_at
from tests.live.cdr import CdrRow, read_master_csv
from tests.live.conftest import module_database
from tests.live.crmtel_side import (
    ORIGINATE_RING_SECONDS,
    CallRecord,
    Staff,
    TaskView,
    all_calls,
    calls_of_click,
    click_to_call,
    logged_in,
    tasks,
)
from tests.live.rig import LiveRig, RigSpec, live_rig
from tests.live.sipp import Answers, Behaviour, Busy, Caller, Declines, NeverAnswers
from tests.live.truth import truth_of
from tests.live.witness import AmiMessage

# Races real processes (tests/fixtures/races.py).
pytestmark = RACES_PROCESSES

STAFF = (
    Staff("anna", "Анна Смирнова", "131", password="pw-anna"),
    Staff("boris", "Boris Orlov", "132", password="pw-boris"),
    Staff("vera", "Vera Lebedeva", "133", password="pw-vera"),
    Staff("gleb", "Gleb Kozlov", "134", password="pw-gleb"),
    Staff("dina", "Dina Popova", "135", password="pw-dina"),
    Staff("fedor", "Fedor Volkov", "137", password="pw-fedor"),
)
SPEC = RigSpec(
    staff=STAFF,
    queues=(Queue("q-callback", ("PJSIP/136",)),),
    # The callback queue's only phone belongs to no crmtel manager (a shared phone): nobody whose phone rang
    # owns a missed call there, so its queue owner does (crmtel/calls/owner.py).
    extra_phones=(Phone("136", "Queue Phone"),),
    dids={"4950000035": "q-callback"},
    default_queue="q-callback",
    queue_owners={"q-callback": "dina"},
    default_owner="anna",
    # fedor's desk phone is off: its endpoint has no contact.
    unregistered=frozenset({"137"}),
)
PHONES: dict[str, Behaviour] = {
    "131": Answers(ring=1.0, talk=5.0),
    "132": Busy(),
    "133": NeverAnswers(),
    "134": Declines(603, "Decline"),
    "135": Answers(ring=1.0, talk=4.0),
    "136": NeverAnswers(),
}
WORLD: dict[str, Behaviour] = {
    "89991110031": Answers(ring=1.5),
    "89991110032": Answers(ring=1.0),
    "89991110033": Answers(ring=1.0),
    "89991110034": Answers(ring=1.0),
    "89991110035": Answers(ring=1.0),
}
FINAL = {"no_answer", "busy", "congested", "rejected", "failed", "refused", "unreachable", "timeout"}


@dataclass
class Attempt:
    """The PBX's own account of one click's Originate: its AMI stream (the witness) and Master.csv."""

    response: AmiMessage  # the OriginateResponse for the manager's phone
    channels: list[str]  # the manager's phone channels the Originate made
    dial_ends: list[str]  # their DialEnd statuses
    causes: list[str]  # their Hangup causes
    rang_for: list[float]  # DialBegin to Hangup of each, by the PBX's timestamps
    cdr: list[CdrRow]  # Master.csv's rows of the calls it made


@dataclass
class Click:
    """One click-to-call: the API's answer, the dial.result messages the page got, the records it left."""

    login: str
    extension: str
    number: str
    accepted: dict[str, Any]
    results: list[dict[str, Any]]
    records: list[CallRecord] = field(default_factory=list)
    linkedids: list[str] = field(default_factory=list)  # every call the Originate started on the PBX
    result: Result | None = None
    pbx: Attempt | None = None

    @property
    def statuses(self) -> list[str]:
        """dial.result statuses in the order they came."""
        return [m["status"] for m in self.results]


@dataclass
class ClickToCall:
    """Everything the module's flows produced."""

    clicks: dict[str, Click]
    missed: Result
    tasks_before: list[TaskView]
    tasks_after: list[TaskView]
    calls_before_backfill: list[CallRecord]
    calls_after_backfill: list[CallRecord]
    backfill_output: str
    master_csv: list[CdrRow]  # every row the PBX wrote, read after the backfill


async def _originated(rig: LiveRig, extension: str, since: int) -> list[str]:
    """Linkedids of the calls that began with the manager's phone being rung (the Originate's channel)."""
    return sorted(
        {
            m["Linkedid"]
            for m in rig.witness.messages[since:]
            if m.event == "Newchannel" and (m.get("Channel") or "").startswith(f"PJSIP/{extension}-")
        }
    )


async def _hung_up(rig: LiveRig, linkedid: str, since: int) -> None:
    def done(m: AmiMessage) -> bool:
        return m.event == "Hangup" and m.get("Linkedid") == linkedid

    await rig.witness.wait_for(done, limit=60, start=since)


async def _attempt(rig: LiveRig, extension: str, linkedids: list[str], since: int) -> Attempt:
    """What the PBX said about the Originate to ``extension``: OriginateResponse, the phone's channels (DialEnd,
    Hangup cause, how long each rang) and the Master.csv rows of those calls."""
    phone = f"PJSIP/{extension}"
    response = await rig.witness.wait_for(
        lambda m: m.event == "OriginateResponse" and (m.get("Channel") or "").split("-")[0] == phone,
        limit=60,
        start=since,
    )
    ours = [
        m
        for m in rig.witness.messages[since:]
        if m.get("Linkedid") in linkedids or (m.get("DestLinkedid") or "") in linkedids
    ]

    def of(m: AmiMessage, header: str) -> bool:
        return (m.get(header) or "").startswith(f"{phone}-")

    channels = [m["Channel"] for m in ours if m.event == "Newchannel" and of(m, "Channel")]
    begun = {m["DestChannel"]: m.timestamp for m in ours if m.event == "DialBegin" and of(m, "DestChannel")}
    hangups = {m["Channel"]: m for m in ours if m.event == "Hangup" and of(m, "Channel")}
    rows = [row for linkedid in linkedids for row in await rig.wait_cdr(linkedid)]
    return Attempt(
        response=response,
        channels=channels,
        dial_ends=[m["DialStatus"] for m in ours if m.event == "DialEnd" and of(m, "DestChannel")],
        causes=[hangups[c]["Cause"] for c in channels if c in hangups],
        rang_for=[hangups[c].timestamp - begun[c] for c in channels if c in hangups and c in begun],
        cdr=rows,
    )


async def _click_flow(rig: LiveRig, login: str, extension: str, number: str, until: set[str]) -> Click:
    async with logged_in(rig.web_url, login, f"pw-{login}") as (http, browser):
        since = len(rig.witness.messages)
        accepted, results = await click_to_call(http, browser, number, until)
        click = Click(login, extension, number, accepted, results)
        # Every channel the attempt made on the PBX, once each has hung up.
        click.linkedids = await _originated(rig, extension, since)
        for linkedid in click.linkedids:
            await _hung_up(rig, linkedid, since)
        if click.statuses[-1] in FINAL:
            click.pbx = await _attempt(rig, extension, click.linkedids, since)
        return click


async def _answered_flow(rig: LiveRig, login: str, extension: str, number: str) -> Click:
    click = await _click_flow(rig, login, extension, number, {"answered", *FINAL})
    for linkedid in click.linkedids:
        record = await rig.stored(linkedid)
        cdr = await rig.wait_cdr(linkedid)
        click.result = Result(
            scenario=Scenario(f"click-{login}", Caller(extension, None, number)),
            linkedid=linkedid,
            invite_at=0.0,
            truth=truth_of(rig.witness.messages, linkedid),
            record=record,
            cdr=cdr,
            sipp_rc=0,
            sipp_logs="",
            events=rig.events_of(linkedid),
        )
    click.records = await calls_of_click(rig.database_url, click.accepted["originate_id"])
    return click


async def _missed_then_callback(rig: LiveRig) -> tuple[Result, list[TaskView], Click]:
    """A caller gives up in dina's queue, whose phone is nobody's: a task for dina, who calls back by click-to-call."""
    caller = Caller("79991110035", "Call Me Back", "4950000035", give_up=4.0)
    placed = await rig.place(caller)
    await placed.sipp.wait(60)
    linkedid = await rig.inbound_linkedid(placed)
    record = await rig.stored(linkedid)
    msg_log = (rig.folder / f"{placed.sipp.name}.msg.log").read_text(errors="replace")
    missed = Result(
        scenario=Scenario("missed-then-callback", caller),
        linkedid=linkedid,
        invite_at=first_invite_at(msg_log) or placed.invite_at,
        truth=truth_of(rig.witness.messages, linkedid),
        record=record,
        cdr=await rig.wait_cdr(linkedid),
        sipp_rc=await placed.sipp.wait(5),
        sipp_logs=placed.sipp.logs(),
        events=rig.events_of(linkedid),
    )
    before = await tasks(rig.database_url)
    click = await _answered_flow(rig, "dina", "135", "+79991110035")
    return missed, before, click


async def _backfill(rig: LiveRig, since: datetime) -> str:
    """`crmtel backfill` from Master.csv over the module's period, as an admin runs it after an outage."""
    code, output = await rig.crmtel_cli("backfill", "--pbx", "pbx1", "--since", since.isoformat())
    assert code == 0, output
    return output


async def _run(install: Install, folder: Path, database_url: str) -> ClickToCall:
    started = datetime.now(UTC)
    async with live_rig(install, folder, database_url, SPEC) as rig:
        await rig.set_phones(PHONES)
        await rig.set_world(WORLD)
        answered, busy, no_answer, declined, offline, (missed, tasks_before, callback) = await asyncio.gather(
            _answered_flow(rig, "anna", "131", "+79991110031"),
            _click_flow(rig, "boris", "132", "+79991110032", FINAL),
            _click_flow(rig, "vera", "133", "+79991110033", FINAL),
            _click_flow(rig, "gleb", "134", "+79991110034", FINAL),
            _click_flow(rig, "fedor", "137", "+79991110036", FINAL),
            _missed_then_callback(rig),
        )
        tasks_after = await tasks(database_url)
        before = await all_calls(database_url)
        output = await _backfill(rig, started)
        after = await all_calls(database_url)
        master_csv = read_master_csv(rig.cfg.master_csv)
        rig.witness.save(folder / "click-to-call")
    clicks = {
        "answered": answered,
        "busy": busy,
        "no-answer": no_answer,
        "declined": declined,
        "not-registered": offline,
        "callback": callback,
    }
    return ClickToCall(clicks, missed, tasks_before, tasks_after, before, after, output, master_csv)


@pytest.fixture(scope="module")
def c2c(
    live_install: Install, tmp_path_factory: pytest.TempPathFactory, _database_run: PostgresRun | SqliteRun
) -> ClickToCall:
    """Every click-to-call flow, at once against one PBX and one crmtel."""
    folder = tmp_path_factory.mktemp("live-c2c")
    return asyncio.run(_run(live_install, folder, module_database(_database_run, folder)))


def test_click_to_call_answered(c2c: ClickToCall) -> None:
    """anna's phone rings, she picks up, the number answers: one outbound record linked to the click."""
    click = c2c.clicks["answered"]
    assert click.statuses[-1] == "answered", click.results
    assert click.statuses[0] in ("calling", "answered")
    assert [r.originate_id for r in click.records] == [click.accepted["originate_id"]]
    assert click.result is not None
    assert_matches(
        click.result,
        Expected(
            direction="outbound",
            caller_number="131",
            caller_name="Анна Смирнова",
            dialled="89991110031",
            rang=(),
            answered_by="131",
            outcome="answered",
            answer_side="trunk",
        ),
    )


def test_click_to_call_with_the_managers_phone_busy(c2c: ClickToCall) -> None:
    """boris's phone answers 486: the page says busy, as the PBX did (DialEnd BUSY, cause 17), and no call is
    stored."""
    click = c2c.clicks["busy"]
    assert click.statuses[-1] == "busy", click.results
    pbx = _failed_attempt(c2c, "busy")
    assert pbx.dial_ends == ["BUSY"], pbx
    assert pbx.causes == ["17"], pbx
    assert [row.disposition for row in pbx.cdr] == ["BUSY"], pbx.cdr


def test_click_to_call_busy_leaves_no_live_record(c2c: ClickToCall) -> None:
    """The busy attempt made a channel on the PBX but crmtel stored no call for it (before any CDR pass)."""
    click = c2c.clicks["busy"]
    assert click.linkedids, "the PBX made no channel for the Originate"
    assert not _stored(c2c.calls_before_backfill, click.linkedids)


def test_click_to_call_not_answered(c2c: ClickToCall) -> None:
    """vera's phone rings out: 'your phone did not answer' after it rang ring_seconds by the PBX's clock (±1 s),
    hung up with cause 19 (no answer); no call stored."""
    click = c2c.clicks["no-answer"]
    assert click.statuses[-1] == "no_answer", click.results
    pbx = _failed_attempt(c2c, "no-answer")
    assert set(pbx.dial_ends) <= {"NOANSWER"}, pbx
    assert pbx.causes == ["19"], pbx
    assert pbx.response["Reason"] == "3", pbx.response  # 3: rang out
    assert len(pbx.rang_for) == 1, pbx
    assert abs(pbx.rang_for[0] - ORIGINATE_RING_SECONDS) <= 1.0, pbx.rang_for
    assert [row.disposition for row in pbx.cdr] == ["NO ANSWER"], pbx.cdr
    assert abs(pbx.cdr[0].duration - ORIGINATE_RING_SECONDS) <= 1, pbx.cdr
    assert not _stored(c2c.calls_before_backfill, click.linkedids)


def test_click_to_call_declined_on_the_phone(c2c: ClickToCall) -> None:
    """gleb declines the ringing phone (603): 'you declined', as the PBX did (DialEnd NOANSWER, cause 21 call
    rejected), not 'not registered'; no call stored."""
    click = c2c.clicks["declined"]
    assert click.statuses[-1] == "rejected", click.results
    pbx = _failed_attempt(c2c, "declined")
    assert pbx.dial_ends == ["NOANSWER"], pbx
    assert pbx.causes == ["21"], pbx
    assert [row.disposition for row in pbx.cdr] == ["NO ANSWER"], pbx.cdr
    assert not _stored(c2c.calls_before_backfill, click.linkedids)


def test_click_to_call_on_a_phone_that_is_not_registered(c2c: ClickToCall) -> None:
    """fedor's phone is off (no contact): 'your phone is not registered' — the PBX refused the Originate without
    making a channel, wrote no Master.csv row for his phone, and no call is stored."""
    click = c2c.clicks["not-registered"]
    assert click.statuses[-1] == "failed", click.results
    pbx = _failed_attempt(c2c, "not-registered")
    assert pbx.channels == [], pbx
    assert pbx.cdr == [], pbx
    assert not [row for row in c2c.master_csv if row.channel.startswith("PJSIP/137-")], c2c.master_csv
    assert not _stored(c2c.calls_before_backfill, click.linkedids)


def test_failed_click_to_calls_do_not_come_back_from_the_cdr(c2c: ClickToCall) -> None:
    """After `crmtel backfill` over the same period, the rows the PBX wrote for the busy, unanswered and declined
    attempts (Master.csv's own) give no call, and nothing of the phone that was off came back either."""
    for key in ("busy", "no-answer", "declined"):
        pbx = _failed_attempt(c2c, key)
        written = [row for row in c2c.master_csv if row.linkedid in set(c2c.clicks[key].linkedids)]
        assert written, key
        assert {row.linkedid for row in written} == {row.linkedid for row in pbx.cdr}, key
        assert not _stored(c2c.calls_after_backfill, [row.linkedid for row in written]), c2c.backfill_output
    assert not [r for r in c2c.calls_after_backfill if r.caller_number == "137" or "137" in r.rang]


def test_backfill_agrees_with_every_call_seen_live(c2c: ClickToCall) -> None:
    """`crmtel backfill` over the module's period reads every call crmtel followed live and changes none."""
    match = re.search(r"pbx1: created (\d+), corrected (\d+), unchanged (\d+)", c2c.backfill_output)
    assert match, c2c.backfill_output
    _created, corrected, unchanged = (int(g) for g in match.groups())
    assert (corrected, unchanged) == (0, len(c2c.calls_before_backfill)), c2c.backfill_output
    after = {r.linkedid: r for r in c2c.calls_after_backfill}
    for record in c2c.calls_before_backfill:
        again = after[record.linkedid]
        assert (again.outcome, again.answered_by, again.direction, again.rang) == (
            record.outcome,
            record.answered_by,
            record.direction,
            record.rang,
        )
        assert abs(again.talk_seconds - record.talk_seconds) <= 1.0
        assert abs(again.ring_seconds - record.ring_seconds) <= 1.0


def test_missed_call_opens_a_task_and_the_managers_click_to_call_closes_it(c2c: ClickToCall) -> None:
    """A caller gives up in dina's queue (its phone is no manager's): a task for the queue's owner dina; her
    click-to-call back, answered, closes it."""
    assert_matches(
        c2c.missed,
        Expected(
            direction="inbound",
            caller_number="+79991110035",
            caller_name="Call Me Back",
            dialled="4950000035",
            rang=("136",),
            answered_by=None,
            outcome="missed",
            missed_reason="abandoned_in_queue",
            queue="q-callback",
        ),
    )
    opened = [t for t in c2c.tasks_before if t.phone == "+79991110035"]
    assert [(t.status, t.manager) for t in opened] == [("open", "dina")]
    callback = c2c.clicks["callback"]
    assert callback.statuses[-1] == "answered", callback.results
    assert callback.result is not None
    closed = [t for t in c2c.tasks_after if t.phone == "+79991110035"]
    assert [t.status for t in closed] == ["closed"]
    assert closed[0].closed_by_call_id is not None
    assert callback.records[0].linkedid == callback.result.linkedid


def _failed_attempt(c2c: ClickToCall, key: str) -> Attempt:
    """A failed click's PBX account: the Originate failed (OriginateResponse Failure for the manager's phone)."""
    pbx = c2c.clicks[key].pbx
    assert pbx is not None
    assert pbx.response["Response"] == "Failure", pbx.response
    return pbx


def _stored(records: list[CallRecord], linkedids: list[str]) -> list[CallRecord]:
    return [r for r in records if r.linkedid in set(linkedids)]
