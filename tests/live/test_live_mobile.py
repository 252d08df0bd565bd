"""The manager's mobile as their phone, on a real Asterisk 22 with crmtel's shipped extensions_crmtel_mobile.conf.

At once against one PBX: click-to-call "via my mobile" where the mobile presses 1 (SIP INFO DTMF on the trunk) —
the client is dialled and the call is the manager's; one where the mobile answers and never presses (voicemail) —
the client is never dialled and the attempt fails as "unconfirmed"; and the follow-me step: the personal
manager's desk phone does not answer, their mobile is rung with the same confirmation — pressed (the call is the
manager's, answered on the mobile) or not (the caller goes on to the fallback queue, nobody of ours answered).
The confirmation prompt is Debian's asterisk-core-sounds-ru "followme/options" (CRMTEL_MOBILE_SOUNDS).
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from crmtel.store.db import Database
from crmtel.store.managers import ManagerRepository
from crmtel.store.models import CallRow, DialAttemptRow
from tests.fixtures.databases import PostgresRun, SqliteRun
from tests.fixtures.races import RACES_PROCESSES
from tests.live.asterisk import Install, Queue
from tests.live.conftest import module_database
from tests.live.crmtel_side import (
    CallRecord,
    Customer,
    Staff,
    calls_of_click,
    click_to_call,
    logged_in,
)
from tests.live.rig import LiveRig, RigSpec, live_rig
from tests.live.sipp import Answers, Behaviour, Caller, Confirms, NeverAnswers
from tests.live.truth import Truth, truth_of
from tests.live.witness import AmiMessage

pytestmark = RACES_PROCESSES

SOUNDS = Path("/usr/share/asterisk/sounds")
PROMPT = SOUNDS / "ru" / "followme" / "options.gsm"

STAFF = (
    Staff("anna", "Анна Смирнова", "151", password="pw-anna", mobile="+79160000051"),
    Staff("boris", "Борис Орлов", "152", password="pw-boris", mobile="+79160000052"),
    Staff("vera", "Вера Лебедева", "153", mobile="+79160000053"),
    Staff("gleb", "Глеб Козлов", "154", mobile="+79160000054"),
)
SPEC = RigSpec(
    staff=STAFF,
    queues=(Queue("q-mobile", ("PJSIP/159",)),),
    customers=(
        Customer("ООО Верина", "+79991110053", manager="vera"),
        Customer("ООО Глебова", "+79991110054", manager="gleb"),
    ),
    dids={"4950000051": "q-mobile", "4950000052": "q-mobile"},
    default_queue="q-mobile",
    mobile={
        "followme": True,
        "sounds": str(SOUNDS),
        "language": "ru",
        "confirm_seconds": 3,
        "ring_seconds": 20,
    },
    outgoing_callerid="74950000051",
)
PHONES: dict[str, Behaviour] = {
    "151": NeverAnswers(),  # via the mobile the desk phones are never rung
    "152": NeverAnswers(),
    "153": NeverAnswers(),
    "154": NeverAnswers(),
}
WORLD: dict[str, Behaviour] = {
    "89160000051": Confirms(ring=1.0, after=1.0),  # anna presses 1
    "89160000052": Answers(ring=1.0),  # boris's voicemail answers, never presses
    "89160000053": Confirms(ring=1.0, after=1.0),  # vera presses 1 (follow-me)
    "89160000054": Answers(ring=1.0),  # gleb's voicemail (follow-me)
    # anna's client rings well over the ±1 s of the timing checks: an answer taken from the mobile's side (its
    # confirmation, its bridge) instead of the client's must fail them, not miss them by a few milliseconds.
    "89991110051": Answers(ring=2.5, talk=3.0),
    "89991110052": Answers(ring=1.0, talk=3.0),  # boris's client: must never be called
}


@dataclass
class Click:
    """One "via my mobile" click: what the API and the page said, the PBX did, crmtel stored and audited."""

    accepted: dict[str, Any]
    results: list[dict[str, Any]]
    linkedid: str
    truth: Truth
    events: list[AmiMessage]
    records: list[CallRecord]
    owners: list[int | None]
    audit: list[tuple[str, str | None, str | None]]  # (decision, status, detail)


@dataclass
class FollowMe:
    """One inbound call to a personal manager whose desk phone does not answer."""

    linkedid: str
    truth: Truth
    events: list[AmiMessage]
    record: CallRecord
    owner: int | None


@dataclass
class Mobile:
    """Everything the module's flows produced."""

    clicks: dict[str, Click]
    followme: dict[str, FollowMe]
    managers: dict[str, int]
    prompt_played: bool
    # How often the PBX played the Russian prompt to each channel (its verbose log).
    plays: dict[str, int]


async def _owners_and_audit(
    database_url: str, originate_id: str
) -> tuple[list[int | None], list[tuple[str, str | None, str | None]]]:
    db = Database(database_url)
    try:
        async with db.session() as session:
            owners = list(
                (
                    await session.execute(
                        select(CallRow.manager_id).where(CallRow.originate_id == originate_id)
                    )
                ).scalars()
            )
            audit = [
                (r.decision, r.status, r.detail)
                for r in (
                    await session.execute(
                        select(DialAttemptRow).where(DialAttemptRow.originate_id == originate_id)
                    )
                ).scalars()
            ]
        return owners, audit
    finally:
        await db.dispose()


async def _owner_of(database_url: str, linkedid: str) -> int | None:
    db = Database(database_url)
    try:
        async with db.session() as session:
            return (
                await session.execute(select(CallRow.manager_id).where(CallRow.linkedid == linkedid))
            ).scalar_one()
    finally:
        await db.dispose()


async def _click(rig: LiveRig, login: str, number: str, until: set[str]) -> Click:
    async with logged_in(rig.web_url, login, f"pw-{login}") as (http, browser):
        since = len(rig.witness.messages)
        accepted, results = await click_to_call(http, browser, number, until, via="mobile", limit=90.0)
    originate_id = accepted["originate_id"]
    # The call the Originate started: its Local channel's first half carries the click's id.
    marker = await rig.witness.wait_for(
        lambda m: (
            m.event == "VarSet"
            and m.get("Variable") == "CRMTEL_ORIGINATE_ID"
            and m.get("Value") == originate_id
        ),
        limit=30,
        start=since,
    )
    linkedid = marker["Linkedid"]
    await rig.witness.wait_for(
        lambda m: (
            m.event == "Hangup"
            and m.get("Linkedid") == linkedid
            and (m.get("Channel") or "").startswith("Local/")
            and (m.get("Channel") or "").endswith(";1")
        ),
        limit=90,
        start=since,
    )
    # Every channel of the call gone (the client's leg may outlive the Local halves).
    await _all_hung_up(rig, linkedid, since)
    if results[-1]["status"] == "answered":
        await rig.stored(linkedid)
    else:
        # The live row of the call-that-never-was goes with crmtel's next write: wait for it (a row that stays
        # is the defect the test catches).
        deadline = time.monotonic() + 15.0
        while time.monotonic() < deadline:
            if not await calls_of_click(rig.database_url, originate_id):
                break
            await asyncio.sleep(0.2)
    owners, audit = await _owners_and_audit(rig.database_url, originate_id)
    return Click(
        accepted=accepted,
        results=results,
        linkedid=linkedid,
        truth=truth_of(rig.witness.messages, linkedid),
        events=rig.events_of(linkedid),
        records=await calls_of_click(rig.database_url, originate_id),
        owners=owners,
        audit=audit,
    )


async def _all_hung_up(rig: LiveRig, linkedid: str, since: int, limit: float = 60.0) -> None:
    deadline = time.monotonic() + limit
    while True:
        mine = [m for m in rig.witness.messages[since:] if m.get("Linkedid") == linkedid]
        made = {m["Uniqueid"] for m in mine if m.event == "Newchannel"}
        gone = {m["Uniqueid"] for m in mine if m.event == "Hangup"}
        if made and made <= gone:
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"call {linkedid} still has channels {made - gone}")
        await asyncio.sleep(0.1)


async def _followme(rig: LiveRig, caller: Caller) -> FollowMe:
    placed = await rig.place(caller)
    await placed.sipp.wait(90)
    linkedid = await rig.inbound_linkedid(placed)
    record = await rig.stored(linkedid)
    return FollowMe(
        linkedid=linkedid,
        truth=truth_of(rig.witness.messages, linkedid),
        events=rig.events_of(linkedid),
        record=record,
        owner=await _owner_of(rig.database_url, linkedid),
    )


async def _run(install: Install, folder: Path, database_url: str) -> Mobile:
    async with live_rig(install, folder, database_url, SPEC) as rig:
        # Verbose 3: the log names every sound file the PBX plays ("Playing '…' (language 'ru')").
        await asyncio.to_thread(rig.pbx.cli, "core set verbose 3")
        await rig.set_phones(PHONES)
        await rig.set_world(WORLD)
        confirmed, unconfirmed, followed, not_followed = await asyncio.gather(
            _click(rig, "anna", "+79991110051", {"answered", "unconfirmed", "no_answer", "failed", "busy"}),
            _click(rig, "boris", "+79991110052", {"answered", "unconfirmed", "no_answer", "failed", "busy"}),
            _followme(rig, Caller("79991110053", "Vera Client", "4950000051", talk=3.0)),
            _followme(rig, Caller("79991110054", "Gleb Client", "4950000052", talk=None, give_up=30.0)),
        )
        rig.witness.save(folder / "mobile")
        db = Database(database_url)
        try:
            managers = {m.login: m.id for m in await ManagerRepository(db).all()}
        finally:
            await db.dispose()
        log = rig.pbx.messages()
        prompt_played = f"Playing '{PROMPT}' (language 'ru')" in log
        plays: dict[str, int] = {}
        for line in log.splitlines():
            if f"Playing '{PROMPT}' (language 'ru')" in line and "> Playing" in line:
                channel = line.split("<", 1)[1].split(">", 1)[0]
                plays[channel] = plays.get(channel, 0) + 1
    return Mobile(
        clicks={"confirmed": confirmed, "unconfirmed": unconfirmed},
        followme={"confirmed": followed, "unconfirmed": not_followed},
        managers=managers,
        prompt_played=prompt_played,
        plays=plays,
    )


@pytest.fixture(scope="module")
def mobile(
    live_install: Install, tmp_path_factory: pytest.TempPathFactory, _database_run: PostgresRun | SqliteRun
) -> Mobile:
    if not PROMPT.exists():
        pytest.skip(
            "Debian's asterisk-core-sounds-ru-gsm is not installed (apt-get install asterisk-core-sounds-ru-gsm)"
        )
    folder = tmp_path_factory.mktemp("live-mobile")
    return asyncio.run(_run(live_install, folder, module_database(_database_run, folder)))


def _dial_begins(events: list[AmiMessage]) -> list[str]:
    """What the PBX dialled, in order (the Originate's own ring of its Local channel left out)."""
    return [
        m.get("DialString") or ""
        for m in events
        if m.event == "DialBegin" and not (m.get("DialString") or "").endswith("@crmtel-mobile")
    ]


def test_via_mobile_pressing_1_dials_the_client_and_the_call_is_the_managers(mobile: Mobile) -> None:
    """anna's mobile rings first (company caller ID), she presses 1, then the client is dialled: one outbound
    call answered by 151, owned by anna, answered on her mobile, talk time from the client's answer."""
    click = mobile.clicks["confirmed"]
    assert click.accepted["via"] == "mobile"
    assert [m["status"] for m in click.results] == ["answered"], click.results
    assert click.results[0]["message_key"] == "dial.mobile.answered"
    dialled = _dial_begins(click.events)
    assert dialled == ["89160000051@trunk", "89991110051@trunk"], dialled
    # The mobile saw the company's number, not the client's.
    mobile_leg = next(
        m for m in click.events if m.event == "DialBegin" and m.get("DialString") == "89160000051@trunk"
    )
    assert mobile_leg.get("DestConnectedLineNum") == "74950000051", mobile_leg
    [record] = click.records
    assert record.direction.value == "outbound"
    assert record.dialled == "89991110051"
    assert record.answered_by == "151"
    assert record.caller_number == "151"
    assert record.answered_on == "+79160000051"
    assert record.outcome is not None
    assert record.outcome.value == "answered"
    assert click.owners == [mobile.managers["anna"]]
    # Talk time counts from the client's answer (the DialEnd ANSWER of the client's trunk leg), not the mobile's.
    client = next(
        m["DestChannel"]
        for m in click.events
        if m.event == "DialBegin" and m.get("DialString") == "89991110051@trunk"
    )
    client_up = next(
        m.timestamp
        for m in click.events
        if m.event == "DialEnd" and m.get("DestChannel") == client and m.get("DialStatus") == "ANSWER"
    )
    assert record.answered_at is not None
    assert abs(record.answered_at.timestamp() - client_up) <= 1.0
    assert record.ended_at is not None
    assert abs(record.ended_at.timestamp() - click.truth.ended) <= 1.0
    assert click.audit == [("placed", "answered", "via mobile +79160000051")]


def test_via_mobile_answered_without_1_never_dials_the_client(mobile: Mobile) -> None:
    """boris's mobile is answered by its voicemail, which never presses 1: the client is not dialled, no call is
    recorded, the attempt fails as "unconfirmed" on the page and in the audit log."""
    click = mobile.clicks["unconfirmed"]
    assert [m["status"] for m in click.results] == ["unconfirmed"], click.results
    assert click.results[0]["message_key"] == "dial.status.unconfirmed"
    assert _dial_begins(click.events) == ["89160000052@trunk"]
    # The mobile did answer (Newstate Up of its trunk leg); Dial then hung it up for want of a 1 (CONTINUE).
    mobile_leg = next(
        m["DestChannel"]
        for m in click.events
        if m.event == "DialBegin" and m.get("DialString") == "89160000052@trunk"
    )
    assert any(
        m.event == "Newstate" and m.get("Channel") == mobile_leg and m.get("ChannelStateDesc") == "Up"
        for m in click.events
    )
    statuses = [
        m.get("DialStatus")
        for m in click.events
        if m.event == "DialEnd" and m.get("DestChannel") == mobile_leg
    ]
    assert statuses == ["CONTINUE"], statuses
    assert click.records == []
    assert click.audit == [("placed", "unconfirmed", "via mobile +79160000052")]


def test_followme_pressing_1_is_the_managers_call_answered_on_the_mobile(mobile: Mobile) -> None:
    """vera's desk phone does not answer; her mobile rings, she presses 1: answered by 153 on +79160000053."""
    call = mobile.followme["confirmed"]
    assert _dial_begins(call.events) == ["153", "89160000053@trunk"]
    record = call.record
    assert record.direction.value == "inbound"
    assert record.rang == ("153",)
    assert record.answered_by == "153"
    assert record.answered_on == "+79160000053"
    assert call.owner == mobile.managers["vera"]
    assert call.truth.connected == ("trunk",)


def test_followme_without_1_goes_on_to_the_queue_unanswered(mobile: Mobile) -> None:
    """gleb's mobile voicemail answers and never presses 1: not answered by gleb; the caller reaches the queue."""
    call = mobile.followme["unconfirmed"]
    dialled = _dial_begins(call.events)
    assert dialled[:2] == ["154", "89160000054@trunk"], dialled
    record = call.record
    assert record.answered_by is None
    assert record.answered_on is None
    assert record.queue == "q-mobile"
    assert record.outcome is not None
    assert record.outcome.value == "missed"
    assert call.owner == mobile.managers["gleb"]  # the personal manager still owns the missed call


def test_the_russian_prompt_was_played(mobile: Mobile) -> None:
    """The confirmation is Debian's Russian followme/options, played by the PBX (its verbose log says so): once
    to a mobile that pressed 1 during it, twice to one that never pressed."""
    assert mobile.prompt_played

    def mobile_leg(events: list[AmiMessage], dialled: str) -> str:
        return next(
            m["DestChannel"] for m in events if m.event == "DialBegin" and m.get("DialString") == dialled
        )

    assert mobile.plays[mobile_leg(mobile.clicks["confirmed"].events, "89160000051@trunk")] == 1
    assert mobile.plays[mobile_leg(mobile.clicks["unconfirmed"].events, "89160000052@trunk")] == 2
    assert mobile.plays[mobile_leg(mobile.followme["unconfirmed"].events, "89160000054@trunk")] == 2
