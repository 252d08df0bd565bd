"""Desk phones doing what desk phones do on a real Asterisk 22: dialling out, transferring, forwarding to a mobile.

Independent scenarios at once against one PBX; each record is compared field by field with the PBX's own AMI
events and Master.csv. Known crmtel defects (issue 21) are tests of the right behaviour marked xfail(strict).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from tests.fixtures.databases import PostgresRun, SqliteRun
from tests.fixtures.races import RACES_PROCESSES
from tests.live.asterisk import Install, Queue
from tests.live.batch import Expected, Result, Scenario, assert_matches, run_batch
from tests.live.conftest import module_database
from tests.live.crmtel_side import Customer, Staff, TaskView, logged_in, manager_logins, tasks
from tests.live.rig import RigSpec, live_rig
from tests.live.sipp import (
    Answers,
    AttendedTransfers,
    Behaviour,
    BlindTransfers,
    Caller,
    Forwards,
    NeverAnswers,
)

# Races real processes (tests/fixtures/races.py).
pytestmark = RACES_PROCESSES

STAFF = (
    Staff("anna", "Анна Смирнова", "121", password="pw-anna"),
    Staff("boris", "Boris Orlov", "122"),
    Staff("vera", "Vera Lebedeva", "123"),
    Staff("gleb", "Gleb Kozlov", "124"),
    Staff("dina", "Dina Popova", "125"),
    Staff("egor", "Egor Sokolov", "126"),
    Staff("fedor", "Fedor Volkov", "127"),
)
QUEUES = (Queue("q-blind", ("PJSIP/123",)), Queue("q-attended", ("PJSIP/125",)))
CUSTOMERS = (Customer("Мобильный клиент", "+79161110027", manager="fedor"),)
MOBILE = "89997770127"  # fedor's mobile, behind the trunk
SPEC = RigSpec(
    staff=STAFF,
    queues=QUEUES,
    customers=CUSTOMERS,
    dids={"4950000021": "q-blind", "4950000022": "q-attended", "4950000023": "q-blind"},
    default_queue="q-blind",
    default_owner="anna",
)
SCENARIOS = (
    Scenario("outbound-answered", Caller("121", None, "89991110001", talk=2.5), via="phone"),
    Scenario("outbound-unanswered", Caller("122", None, "89991110002", give_up=4.0), via="phone"),
    Scenario("blind-transfer", Caller("79035550021", "Transfer Me", "4950000021", talk=6.0)),
    Scenario("attended-transfer", Caller("79035550022", "Consult Me", "4950000022", talk=9.0)),
    Scenario("forwarded-to-mobile", Caller("79161110027", "Mobile Client", "4950000023", talk=3.0)),
)
PHONES: dict[str, Behaviour] = {
    "123": BlindTransfers(ring=1.0, talk=1.5, to="124"),
    "124": Answers(ring=1.0),
    "125": AttendedTransfers(ring=1.0, talk=1.5, to="126", consult=2.0),
    "126": Answers(ring=1.0),
    "127": Forwards(MOBILE),
}
WORLD: dict[str, Behaviour] = {
    "89991110001": Answers(ring=1.5),
    "89991110002": NeverAnswers(),
    MOBILE: Answers(ring=1.5),
}


@dataclass
class Phones:
    """The batch's results, the callback tasks crmtel opened, and the managers' logins by id."""

    results: dict[str, Result]
    tasks: list[TaskView]
    logins: dict[int, str]
    # What Anna's page (121) received over its websocket during the batch.
    anna_page: list[dict[str, Any]]

    def owner(self, key: str) -> str | None:
        """The login of the manager crmtel booked scenario ``key``'s call to."""
        manager = self.results[key].record.manager_id
        return self.logins.get(manager) if manager is not None else None


async def _run(install: Install, folder: Path, database_url: str) -> Phones:
    async with (
        live_rig(install, folder, database_url, SPEC) as rig,
        logged_in(rig.web_url, "anna", "pw-anna") as (_http, anna),
    ):
        results = await run_batch(rig, SCENARIOS, PHONES, WORLD)
        rig.witness.save(folder / "phones")
        page = [message for _at, message in anna.received]
        return Phones(results, await tasks(database_url), await manager_logins(database_url), page)


@pytest.fixture(scope="module")
def phones(
    live_install: Install, tmp_path_factory: pytest.TempPathFactory, _database_run: PostgresRun | SqliteRun
) -> Phones:
    """Every desk-phone scenario, run at once against one PBX and one crmtel."""
    folder = tmp_path_factory.mktemp("live-phones")
    return asyncio.run(_run(live_install, folder, module_database(_database_run, folder)))


def test_outbound_call_from_a_desk_phone_answered(phones: Phones) -> None:
    """Manager 121 dials 8999… through the trunk; the number answers: outbound, answered by 121, recorded."""
    assert_matches(
        phones.results["outbound-answered"],
        Expected(
            direction="outbound",
            caller_number="121",
            caller_name="Анна Смирнова",
            dialled="89991110001",
            rang=(),
            answered_by="121",
            outcome="answered",
            answer_side="trunk",
        ),
    )
    assert phones.owner("outbound-answered") == "anna"


def test_a_call_dialled_on_the_desk_phone_gets_its_card_and_timer_on_the_managers_page(
    phones: Phones,
) -> None:
    """Anna's page hears of the call she dials on 121: call.ringing (outbound, the number) when it dials out, then
    call.answered for her, whose time — where the talk timer counts from — is the PBX's answer on the trunk."""
    result = phones.results["outbound-answered"]
    messages = [m for m in phones.anna_page if str(m.get("call_id", "")).endswith(":" + result.linkedid)]
    types = [m["type"] for m in messages]
    assert "call.ringing" in types, types
    assert "call.answered" in types, types
    assert types.index("call.ringing") < types.index("call.answered") < types.index("call.ended"), types
    ringing = messages[types.index("call.ringing")]
    assert (ringing["extension"], ringing["direction"], ringing["dialled"]) == (
        "121",
        "outbound",
        "89991110001",
    )
    answered = messages[types.index("call.answered")]
    assert answered["by_me"] is True
    assert result.truth.trunk_answered is not None
    assert abs(datetime.fromisoformat(answered["at"]).timestamp() - result.truth.trunk_answered) < 1.0


def test_outbound_call_from_a_desk_phone_not_answered(phones: Phones) -> None:
    """Manager 122 dials a number that never answers and hangs up: outbound, not answered, no callback task."""
    result = phones.results["outbound-unanswered"]
    assert_matches(
        result,
        Expected(
            direction="outbound",
            caller_number="122",
            caller_name="Boris Orlov",
            dialled="89991110002",
            rang=(),
            answered_by=None,
            outcome="missed",
            missed_reason="no_answer",
            answer_side="trunk",
        ),
    )
    assert not [t for t in phones.tasks if t.phone and t.phone.endswith("9991110002")]
    # The manager who placed it owns it, answered or not (not "(unassigned)", not a 404 to boris).
    assert phones.owner("outbound-unanswered") == "boris"


def test_blind_transfer_ends_with_the_extension_that_took_over(phones: Phones) -> None:
    """123 answers and REFERs the caller to 124, who answers: answered by 124, both offered."""
    result = phones.results["blind-transfer"]
    assert_matches(
        result,
        Expected(
            direction="inbound",
            caller_number="+79035550021",
            caller_name="Transfer Me",
            dialled="4950000021",
            rang=("123", "124"),
            answered_by="124",
            outcome="answered",
            queue="q-blind",
        ),
    )
    assert result.truth.connected[-1] == "124"


def test_attended_transfer_ends_with_the_extension_that_took_over(phones: Phones) -> None:
    """125 answers, consults 126 (feature code *2 as SIP INFO) and hangs up: answered by 126."""
    result = phones.results["attended-transfer"]
    assert_matches(
        result,
        Expected(
            direction="inbound",
            caller_number="+79035550022",
            caller_name="Consult Me",
            dialled="4950000022",
            rang=("125", "126"),
            answered_by="126",
            outcome="answered",
            queue="q-attended",
        ),
    )
    assert phones.owner("attended-transfer") == "egor"


def test_attended_transfer_really_happened_on_the_pbx(phones: Phones) -> None:
    """The PBX bridged the caller with 126 in the end (the scenario did what the test above assumes)."""
    result = phones.results["attended-transfer"]
    assert result.truth.connected[-1] == "126", result.truth
    assert any(m.event == "AttendedTransfer" for m in result.events)


def test_forwarded_to_the_managers_mobile_and_answered_there(phones: Phones) -> None:
    """127's phone forwards (302) to fedor's mobile behind the trunk, who answers: answered by 127, no task."""
    result = phones.results["forwarded-to-mobile"]
    assert_matches(
        result,
        Expected(
            direction="inbound",
            caller_number="+79161110027",
            caller_name="Mobile Client",
            dialled="4950000023",
            rang=("127",),
            answered_by="127",
            outcome="answered",
            route_kind="extension",
            route_target="127",
        ),
    )
    assert not [t for t in phones.tasks if t.phone == "+79161110027"]
    assert result.record.answered_on == "+79997770127"  # the mobile it was answered on, stored
    assert phones.owner("forwarded-to-mobile") == "fedor"


def test_forwarding_to_the_mobile_really_happened_on_the_pbx(phones: Phones) -> None:
    """The PBX followed the 302 through the trunk and bridged the caller with the mobile."""
    result = phones.results["forwarded-to-mobile"]
    assert result.truth.connected[-1] == "trunk", result.truth
    assert result.truth.trunk_answered is not None
    assert any(m.get("DestExten") == MOBILE or MOBILE in (m.get("Exten") or "") for m in result.events)
