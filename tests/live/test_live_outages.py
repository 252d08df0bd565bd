"""Outages on a real Asterisk 22 while calls go on: crmtel killed (-9) then backfilled from Master.csv, crmtel
frozen (SIGSTOP) with the HTTP route, Asterisk restarted and killed mid-call.

One rig, the phases one after the other (each waits until the PBX and crmtel are quiet again); every call is then
compared with what the PBX did: its AMI events (the witness's own session, across PBX restarts) and Master.csv.
"""

from __future__ import annotations

import asyncio
import os
import signal
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.fixtures.databases import PostgresRun, SqliteRun
from tests.fixtures.races import RACES_PROCESSES
from tests.live.asterisk import Install, Queue
from tests.live.batch import Expected, Result, Scenario, assert_matches, first_invite_at
from tests.live.conftest import module_database
from tests.live.crmtel_side import CallRecord, QueueVisit, Staff, TaskView, all_calls, queue_waits, tasks
from tests.live.rig import LiveRig, Placed, RigSpec, live_rig
from tests.live.sipp import Answers, Behaviour, Caller, NeverAnswers
from tests.live.truth import truth_of

# Races real processes (tests/fixtures/races.py).
pytestmark = RACES_PROCESSES

STAFF = (
    Staff("anna", "Анна Смирнова", "141"),
    Staff("boris", "Boris Orlov", "142"),
    Staff("vera", "Vera Lebedeva", "143"),
    Staff("gleb", "Gleb Kozlov", "144"),
    Staff("dina", "Dina Popova", "145"),
    Staff("egor", "Egor Sokolov", "146"),
    Staff("fedor", "Fedor Volkov", "147"),
)
# How long the killed Asterisk stays down before it is started again.
PBX_DOWN_FOR = 3.0
QUEUES = (
    Queue("q-long", ("PJSIP/141",)),
    # The dialplan's own default queue (CRMTEL_DEFAULT_QUEUE): where calls go while crmtel is down or frozen.
    Queue("q-default", ("PJSIP/144", "PJSIP/147")),
    Queue("q-restart", ("PJSIP/145",)),
    Queue("q-crash", ("PJSIP/146",)),
)
SPEC = RigSpec(
    staff=STAFF,
    queues=QUEUES,
    dids={
        "4950000041": "q-long",
        "4950000045": "q-restart",
        "4950000046": "q-crash",
    },
    # crmtel down or frozen answers nothing: calls go to the dialplan's default queue (from the globals).
    default_queue="q-default",
    queue_owners={"q-default": "vera"},
)
PHONES: dict[str, Behaviour] = {
    "141": Answers(ring=1.0),
    "144": Answers(ring=2.0),
    "147": NeverAnswers(),
    "145": Answers(ring=1.0),
    "146": Answers(ring=1.0),
}


@dataclass
class Outages:
    """What each phase produced."""

    results: dict[str, Result] = field(default_factory=dict)
    killed_at: float = 0.0  # kill -9 of crmtel
    restarted_at: float = 0.0  # crmtel started again
    frozen_routed_after: float = 0.0  # seconds from the frozen call's INVITE to its queue
    pbx_stopped_at: float = 0.0
    pbx_killed_at: float = 0.0
    pbx_back_at: float = 0.0  # the killed PBX started again
    tasks: list[TaskView] = field(default_factory=list)
    calls: list[CallRecord] = field(default_factory=list)
    waits: dict[str, tuple[QueueVisit, ...]] = field(default_factory=dict)
    crmtel_log: str = ""


async def _answered(rig: LiveRig, placed: Placed) -> str:
    """The call's Linkedid once its caller is talking (the trunk channel is up)."""
    linkedid = await rig.inbound_linkedid(placed)
    await rig.witness.wait_for(
        lambda m: (
            m.event == "Newstate"
            and m.get("Linkedid") == linkedid
            and m.get("ChannelStateDesc") == "Up"
            and (m.get("Channel") or "").startswith("PJSIP/trunk-")
        ),
        limit=30,
        start=placed.witness_index,
    )
    return linkedid


def _result(rig: LiveRig, key: str, placed: Placed, linkedid: str, record: CallRecord) -> Result:
    msg_log = rig.folder / f"{placed.sipp.name}.msg.log"
    text = msg_log.read_text(errors="replace") if msg_log.exists() else ""
    events = rig.events_of(linkedid)
    return Result(
        scenario=Scenario(key, placed.caller),
        linkedid=linkedid,
        invite_at=first_invite_at(text) or placed.invite_at,
        truth=truth_of(events, linkedid),
        record=record,
        cdr=rig.cdr(linkedid),
        sipp_rc=placed.sipp.proc.returncode if placed.sipp.proc.returncode is not None else -1,
        sipp_logs=placed.sipp.logs(),
        events=events,
    )


async def _crmtel_killed(rig: LiveRig, out: Outages) -> None:
    """A call is up when crmtel is killed; it ends, and two more begin and end, while crmtel is down."""
    assert rig.daemon is not None
    long = await rig.place(Caller("79035550041", "Long Talk", "4950000041", talk=6.0))
    long_id = await _answered(rig, long)
    await rig.stored_live(long_id)  # crmtel has written the live call (it does as calls change)
    out.killed_at = time.time()
    await rig.daemon.kill9()
    # While crmtel is down the route cannot be asked: both go to the default queue, one after the other.
    nobody = await rig.place(Caller("79035550043", "Nobody There", "4950000043", give_up=1.0))
    await nobody.sipp.wait(60)
    short = await rig.place(Caller("79035550042", "Short Talk", "4950000042", talk=2.0))
    await asyncio.gather(*(p.sipp.wait(60) for p in (long, short)))
    short_id, nobody_id = await rig.inbound_linkedid(short), await rig.inbound_linkedid(nobody)
    for linkedid in (long_id, short_id, nobody_id):
        await rig.wait_cdr(linkedid)
    out.restarted_at = time.time()
    await rig.start_crmtel()
    for key, placed, linkedid in (
        ("kill9-up-when-killed", long, long_id),
        ("kill9-whole-call-while-down", short, short_id),
        ("kill9-missed-while-down", nobody, nobody_id),
    ):
        record = await rig.stored(linkedid, limit=60)
        out.results[key] = _result(rig, key, placed, linkedid, record)


async def _crmtel_frozen(rig: LiveRig, out: Outages) -> None:
    """crmtel stopped (SIGSTOP) when a call comes in over the HTTP-routed trunk; continued after it ended."""
    assert rig.daemon is not None
    os.kill(rig.daemon.pid, signal.SIGSTOP)
    try:
        placed = await rig.place(
            Caller("79035550044", "Frozen Route", "4950000044", talk=2.0), via="trunk-http"
        )
        linkedid = await rig.inbound_linkedid(placed)
        joined = await rig.witness.wait_event(
            "QueueCallerJoin", limit=30, start=placed.witness_index, Linkedid=linkedid
        )
        await placed.sipp.wait(60)
        await rig.wait_cdr(linkedid)
    finally:
        os.kill(rig.daemon.pid, signal.SIGCONT)
    record = await rig.stored(linkedid, limit=60)
    result = _result(rig, "frozen-http-route", placed, linkedid, record)
    out.frozen_routed_after = joined.timestamp - result.truth.started
    out.results["frozen-http-route"] = result


async def _pbx_restarted(rig: LiveRig, out: Outages, *, kill: bool) -> None:
    """A call is up when Asterisk is stopped (``core stop now``) or killed (-9); Asterisk comes back."""
    key, did, number = (
        ("pbx-killed", "4950000046", "79035550046")
        if kill
        else ("pbx-restarted", "4950000045", "79035550045")
    )
    placed = await rig.place(Caller(number, "Cut Off", did, talk=30.0))
    linkedid = await _answered(rig, placed)
    await asyncio.sleep(2.0)
    if kill:
        out.pbx_killed_at = time.time()
    else:
        out.pbx_stopped_at = time.time()
    events = rig.events_of(linkedid)
    # Killed, the PBX stays down for PBX_DOWN_FOR seconds: a call ended at the re-login instead of at the drop
    # would be that much (plus Asterisk's boot) late, far outside the 1 s the test allows.
    await rig.restart_pbx(kill=kill, down_for=PBX_DOWN_FOR if kill else 0.0)
    if kill:
        out.pbx_back_at = time.time()
    # The caller's SIP dialog died with the PBX: end its sipp (ours) instead of waiting for its BYE to time out.
    await placed.sipp.stop()
    record = await rig.stored(linkedid, limit=90)
    result = _result(rig, key, placed, linkedid, record)
    if kill:
        # No Hangup ever came: the PBX's account of the call ends where its AMI stream did.
        result.extra["events_before"] = events
    out.results[key] = result


async def _run(install: Install, folder: Path, database_url: str) -> Outages:
    out = Outages()
    async with live_rig(install, folder, database_url, SPEC) as rig:
        await rig.set_phones(PHONES)
        await rig.set_world({})
        await _crmtel_killed(rig, out)
        await _crmtel_frozen(rig, out)
        await _pbx_restarted(rig, out, kill=False)
        await _pbx_restarted(rig, out, kill=True)
        out.tasks = await tasks(database_url)
        out.calls = await all_calls(database_url)
        out.waits = await queue_waits(database_url)
        for n, witness in enumerate(rig.witnesses, 1):
            witness.save(folder / f"outages-{n}")
        out.crmtel_log = "\n".join(d.stderr() for d in rig.pool.started)
    return out


@pytest.fixture(scope="module")
def outages(
    live_install: Install, tmp_path_factory: pytest.TempPathFactory, _database_run: PostgresRun | SqliteRun
) -> Outages:
    """Every outage phase, one after the other on one rig."""
    folder = tmp_path_factory.mktemp("live-outages")
    return asyncio.run(_run(live_install, folder, module_database(_database_run, folder)))


def test_call_up_when_crmtel_was_killed_gets_its_true_end_from_the_cdr(outages: Outages) -> None:
    """Answered before kill -9, ended while crmtel was down: after the restart, its real talk time (Master.csv)."""
    assert_matches(
        outages.results["kill9-up-when-killed"],
        Expected(
            direction="inbound",
            caller_number="+79035550041",
            caller_name="Long Talk",
            dialled="4950000041",
            rang=("141",),
            answered_by="141",
            outcome="answered",
            queue="q-long",
            route_kind="queue",
            route_target="q-long",
        ),
    )


def test_call_made_entirely_while_crmtel_was_down_is_backfilled(outages: Outages) -> None:
    """Begun and ended while crmtel was down: created from Master.csv with the live tier's fields (not the route),
    its recording included (the shipped dialplan puts MIXMONITOR_FILENAME in the CDR's userfield)."""
    assert_matches(
        outages.results["kill9-whole-call-while-down"],
        Expected(
            direction="inbound",
            caller_number="+79035550042",
            caller_name="Short Talk",
            dialled="4950000042",
            rang=("144", "147"),
            answered_by="144",
            outcome="answered",
            queue="q-default",
        ),
    )


def test_calls_backfilled_from_the_cdr_keep_their_recording(outages: Outages) -> None:
    """Both calls crmtel never saw have a MixMonitor file on the PBX: their records name it."""
    for key in ("kill9-whole-call-while-down", "kill9-missed-while-down"):
        result = outages.results[key]
        assert result.truth.recording is not None
        assert Path(result.truth.recording).exists()
        assert result.record.recording_file == result.truth.recording, key


def test_every_queue_wait_is_stored_backfilled_calls_included(outages: Outages) -> None:
    """Each call the PBX put in a queue has its wait stored (the queue report counts it), also the two calls crmtel
    knows only from Master.csv: the queue, the phones offered, answered by whom or abandoned."""
    for key, result in outages.results.items():
        joined = [m.get("Queue") for m in result.events if m.event == "QueueCallerJoin"]
        waits = outages.waits.get(result.linkedid, ())
        assert [w.queue for w in waits] == joined, key
    facts = {
        key: [
            (w.queue, w.outcome.value if w.outcome else None, w.answered_by, w.offered)
            for w in outages.waits[outages.results[key].linkedid]
        ]
        for key in ("kill9-whole-call-while-down", "kill9-missed-while-down")
    }
    assert facts == {
        "kill9-whole-call-while-down": [("q-default", "answered", "144", ("144", "147"))],
        "kill9-missed-while-down": [("q-default", "abandoned", None, ("144", "147"))],
    }
    for key in ("kill9-whole-call-while-down", "kill9-missed-while-down"):
        (wait,) = outages.waits[outages.results[key].linkedid]
        truth = outages.results[key].truth
        assert wait.wait_seconds is not None
        assert wait.wait_seconds <= truth.ended - truth.started + 1.0, key


def test_call_missed_while_crmtel_was_down_opens_a_callback_task(outages: Outages) -> None:
    """A caller gave up in the queue while crmtel was down: a missed call and a task for its owner, the first
    manager whose phone rang (gleb, 144; the queue's owner vera comes only after the phones' managers)."""
    result = outages.results["kill9-missed-while-down"]
    assert_matches(
        result,
        Expected(
            direction="inbound",
            caller_number="+79035550043",
            caller_name="Nobody There",
            dialled="4950000043",
            rang=("144", "147"),
            answered_by=None,
            outcome="missed",
            missed_reason="abandoned_in_queue",
            queue="q-default",
        ),
    )
    assert [(t.status, t.manager) for t in outages.tasks if t.phone == "+79035550043"] == [("open", "gleb")]


def test_every_call_is_stored_once(outages: Outages) -> None:
    """Kill -9, a freeze and two PBX restarts later: one record per call the PBX handled, none twice."""
    linkedids = [r.linkedid for r in outages.calls]
    assert len(linkedids) == len(set(linkedids))
    assert {r.linkedid for r in outages.results.values()} <= set(linkedids)
    assert len(outages.calls) == len(outages.results), [r.linkedid for r in outages.calls]


def test_frozen_crmtel_never_holds_a_call_on_the_http_route(outages: Outages) -> None:
    """With crmtel stopped (SIGSTOP), the HTTP route gives up after its 1 s bound and the default queue answers;
    once crmtel runs again the call is stored, without a route."""
    result = outages.results["frozen-http-route"]
    assert 0.9 < outages.frozen_routed_after < 5.0, outages.frozen_routed_after
    assert_matches(
        result,
        Expected(
            direction="inbound",
            caller_number="+79035550044",
            caller_name="Frozen Route",
            dialled="4950000044",
            rang=("144", "147"),
            answered_by="144",
            outcome="answered",
            queue="q-default",
        ),
    )
    assert result.record.route_kind is None


def test_call_up_when_asterisk_stops_ends_when_it_stopped(outages: Outages) -> None:
    """``core stop now`` hangs the call up: the record ends there, answered, once crmtel is back with the PBX."""
    result = outages.results["pbx-restarted"]
    assert_matches(
        result,
        Expected(
            direction="inbound",
            caller_number="+79035550045",
            caller_name="Cut Off",
            dialled="4950000045",
            rang=("145",),
            answered_by="145",
            outcome="answered",
            queue="q-restart",
        ),
    )
    assert abs(result.truth.ended - outages.pbx_stopped_at) < 2.0, (
        f"PBX reported the hangup: {result.truth.hung_up}; stopped at {outages.pbx_stopped_at:.2f}, "
        f"crmtel ended {result.record.ended_at}\n{outages.crmtel_log[-3000:]}"
    )


def test_call_up_when_asterisk_is_killed_ends_when_the_connection_dropped(outages: Outages) -> None:
    """kill -9 of Asterisk mid-call: no Hangup, no CDR; the record ends when the PBX's AMI stream stopped
    (the drop), not when crmtel logged in to the restarted PBX (PBX_DOWN_FOR s and a boot later)."""
    result = outages.results["pbx-killed"]
    record = result.record
    assert record.answered_by == "146"
    assert record.ended_at is not None
    answered = result.truth.caller_up
    assert answered is not None
    assert outages.pbx_back_at - outages.pbx_killed_at >= PBX_DOWN_FOR
    assert abs(record.ended_at.timestamp() - outages.pbx_killed_at) <= 1.0
    assert abs(record.talk_seconds - (outages.pbx_killed_at - answered)) <= 1.0


def test_call_up_when_asterisk_is_killed_is_closed_answered(outages: Outages) -> None:
    """However its end is timed, the crashed call is closed (not live for ever), answered by 146, stored once."""
    record = outages.results["pbx-killed"].record
    assert (record.outcome is not None and record.outcome.value, record.answered_by) == ("answered", "146")
    assert record.ended_at is not None


def test_crmtel_logged_no_traceback_through_all_of_it(outages: Outages) -> None:
    """Kill, freeze and PBX restarts are normal life: no traceback in crmtel's log."""
    assert "Traceback" not in outages.crmtel_log, outages.crmtel_log[-4000:]
