"""Inbound calls through crmtel's own dialplan on a real Asterisk 22, from a SIP trunk to sipp desk phones.

Ten independent scenarios run at once against one PBX (each with its own DID, queue, phones and caller); each test
compares crmtel's stored record field by field with what the PBX did (its AMI events with Asterisk's timestamps,
and Master.csv), plus the callback tasks and the managers' live cards.
"""

from __future__ import annotations

import asyncio
import statistics
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.fixtures.databases import PostgresRun, SqliteRun
from tests.fixtures.races import RACES_PROCESSES
from tests.live.asterisk import Install, Queue
from tests.live.batch import Expected, Result, Scenario, assert_matches, run_batch
from tests.live.conftest import module_database, note
from tests.live.crmtel_side import Browser, Customer, Staff, TaskView, logged_in, tasks
from tests.live.rig import RigSpec, live_rig
from tests.live.sipp import Answers, Behaviour, Busy, Caller, NeverAnswers

# Races real processes (tests/fixtures/races.py).
pytestmark = RACES_PROCESSES

STAFF = (
    Staff("anna", "Анна Смирнова", "101", password="pw-anna"),
    Staff("boris", "Boris Orlov", "102", password="pw-boris"),
    Staff("vera", "Vera Lebedeva", "103", password="pw-vera"),
    Staff("gleb", "Gleb Kozlov", "104"),
    Staff("dina", "Dina Popova", "105"),
    Staff("egor", "Egor Sokolov", "106"),
    Staff("fedor", "Fedor Volkov", "107"),
    Staff("galina", "Galina Zaitseva", "108"),
    Staff("ivan", "Ivan Morozov", "109"),
    Staff("kira", "Kira Pavlova", "110"),
    Staff("lev", "Lev Semenov", "111"),
    Staff("maria", "Maria Golubeva", "112"),
    Staff("nikita", "Nikita Vinogradov", "113"),
    Staff("olga", "Olga Bogdanova", "114"),
    Staff("pavel", "Pavel Vorobyov", "115"),
)
QUEUES = (
    Queue("q-noanswer", ("PJSIP/103",)),
    Queue("q-ringall", ("PJSIP/104", "PJSIP/105")),
    Queue("q-abandon", ("PJSIP/106", "PJSIP/107")),
    Queue("q-busy", ("PJSIP/109",)),
    Queue("q-local", ("Local/110@live-agents", "Local/111@live-agents")),
    Queue("q-anon", ("PJSIP/112",)),
    Queue("q-cyrillic", ("PJSIP/113",)),
    Queue("q-obrien", ("PJSIP/114",)),
    Queue("q-gaveup", ("PJSIP/103",)),
)
CUSTOMERS = (
    Customer("ООО «Ромашка»", "+79161110001", manager="anna"),
    Customer("ИП Котов", "+79161110002", manager="boris"),
    Customer("Busy Client Ltd", "+79161110008", manager="galina"),
    Customer("Impatient LLC", "+79161110015", manager="pavel"),
)
DIDS = {
    "4950000001": "q-noanswer",
    "4950000002": "q-noanswer",
    "4950000003": "q-ringall",
    "4950000004": "q-abandon",
    "4950000005": "q-busy",
    "4950000006": "q-local",
    "4950000007": "q-anon",
    "4950000008": "q-cyrillic",
    "4950000009": "q-obrien",
    "4950000010": "q-gaveup",
}
SPEC = RigSpec(
    staff=STAFF,
    queues=QUEUES,
    customers=CUSTOMERS,
    dids=DIDS,
    default_queue="q-noanswer",
    # The queue's owner is not one of its phones (ivan's 109 is q-busy's): the "first phone that rang" rule and
    # the "queue owner" rule name different people.
    queue_owners={"q-abandon": "ivan"},
    default_owner="anna",
)
SCENARIOS = (
    Scenario("direct-answered", Caller("79161110001", "Ring Office", "4950000001", talk=3.0)),
    Scenario("noanswer-then-queue", Caller("79161110002", "Kotov", "4950000002", talk=2.0)),
    Scenario("ringall-queue", Caller("79035550003", "Walk In", "4950000003", talk=2.0)),
    Scenario("abandoned-in-queue", Caller("79035550004", "Gave Up", "4950000004", give_up=6.0)),
    Scenario("busy-then-queue", Caller("79161110008", "Busy Client", "4950000005", talk=2.0)),
    Scenario("local-members", Caller("79035550006", "Wholesale Buyer", "4950000006", talk=2.0)),
    Scenario("anonymous", Caller("anonymous", "Anonymous", "4950000007", talk=2.0)),
    Scenario("cyrillic-name", Caller("79035550008", "Пётр Иванов", "4950000008", talk=2.0)),
    Scenario("obrien-name", Caller("79035550009", 'Dan \\"The Man\\" O\'Brien', "4950000009", talk=2.0)),
    Scenario("gave-up-while-ringing", Caller("79161110015", "Impatient", "4950000010", give_up=3.0)),
)
PHONES: dict[str, Behaviour] = {
    "101": Answers(ring=1.5),
    "102": NeverAnswers(),
    "103": Answers(ring=1.0),
    "104": NeverAnswers(),
    "105": Answers(ring=2.0),
    "106": NeverAnswers(),
    "107": NeverAnswers(),
    "108": Busy(),
    "109": Answers(ring=1.0),
    "110": NeverAnswers(),
    "111": Answers(ring=1.5),
    "112": Answers(ring=1.0),
    "113": Answers(ring=1.0),
    "114": Answers(ring=1.0),
    "115": NeverAnswers(),
}


@dataclass
class Inbound:
    """The batch's results, the tasks crmtel opened and what three managers' pages received."""

    results: dict[str, Result]
    tasks: list[TaskView]
    browsers: dict[str, Browser]


async def _run(install: Install, folder: Path, database_url: str) -> Inbound:
    async with live_rig(install, folder, database_url, SPEC) as rig:
        async with (
            logged_in(rig.web_url, "anna", "pw-anna") as (_a, anna),
            logged_in(rig.web_url, "boris", "pw-boris") as (_b, boris),
            logged_in(rig.web_url, "vera", "pw-vera") as (_v, vera),
        ):
            results = await run_batch(rig, SCENARIOS, PHONES)
            # The last pushes (call.ended) follow the stored record within the same flush.
            await asyncio.sleep(0.5)
        rig.witness.save(folder / "inbound")
        return Inbound(results, await tasks(database_url), {"anna": anna, "boris": boris, "vera": vera})


@pytest.fixture(scope="module")
def inbound(
    live_install: Install, tmp_path_factory: pytest.TempPathFactory, _database_run: PostgresRun | SqliteRun
) -> Inbound:
    """Every inbound scenario, run at once against one PBX and one crmtel."""
    folder = tmp_path_factory.mktemp("live-inbound")
    return asyncio.run(_run(live_install, folder, module_database(_database_run, folder)))


def test_direct_to_the_personal_manager_answered(inbound: Inbound) -> None:
    """A client routed to their personal manager (FastAGI), who answers: answered by 101, route stored."""
    assert_matches(
        inbound.results["direct-answered"],
        Expected(
            direction="inbound",
            caller_number="+79161110001",
            caller_name="Ring Office",
            dialled="4950000001",
            rang=("101",),
            answered_by="101",
            outcome="answered",
            route_kind="extension",
            route_target="101",
        ),
    )
    assert inbound.results["direct-answered"].record.party_name == "ООО «Ромашка»"


def test_personal_manager_does_not_answer_then_the_queue_answers(inbound: Inbound) -> None:
    """102 rings CRMTEL_RING seconds unanswered, the fallback queue's 103 answers."""
    assert_matches(
        inbound.results["noanswer-then-queue"],
        Expected(
            direction="inbound",
            caller_number="+79161110002",
            caller_name="Kotov",
            dialled="4950000002",
            rang=("102", "103"),
            answered_by="103",
            outcome="answered",
            queue="q-noanswer",
            route_kind="extension",
            route_target="102",
        ),
    )
    assert inbound.results["noanswer-then-queue"].truth.statuses["102"] == ("NOANSWER",)


def test_ring_all_queue_answered_by_one_member(inbound: Inbound) -> None:
    """An unknown caller in a ring-all queue: both members ring, 105 answers, the losing leg is no 'missed'."""
    result = inbound.results["ringall-queue"]
    assert_matches(
        result,
        Expected(
            direction="inbound",
            caller_number="+79035550003",
            caller_name="Walk In",
            dialled="4950000003",
            rang=("104", "105"),
            answered_by="105",
            outcome="answered",
            queue="q-ringall",
            route_kind="queue",
            route_target="q-ringall",
        ),
    )
    assert result.truth.statuses["104"][-1] == "CANCEL"


def test_caller_abandons_in_the_queue(inbound: Inbound) -> None:
    """Nobody answers the queue, the caller hangs up: missed in queue, and a callback task for the call's owner — the
    first manager whose phone rang (egor 106 or fedor 107, in the PBX's order), not the queue's owner ivan."""
    result = inbound.results["abandoned-in-queue"]
    assert_matches(
        result,
        Expected(
            direction="inbound",
            caller_number="+79035550004",
            caller_name="Gave Up",
            dialled="4950000004",
            rang=("106", "107"),
            answered_by=None,
            outcome="missed",
            missed_reason="abandoned_in_queue",
            queue="q-abandon",
            route_kind="queue",
            route_target="q-abandon",
        ),
    )
    task = _task_of(inbound, "+79035550004")
    first = {"106": "egor", "107": "fedor"}[result.record.rang[0]]
    assert SPEC.queue_owners["q-abandon"] not in ("egor", "fedor")
    assert (task.status, task.missed_count, task.manager) == ("open", 1, first)


def test_busy_personal_manager_then_the_queue(inbound: Inbound) -> None:
    """The personal manager's phone is busy (486): the busy phone counts as offered, the queue answers."""
    result = inbound.results["busy-then-queue"]
    assert_matches(
        result,
        Expected(
            direction="inbound",
            caller_number="+79161110008",
            caller_name="Busy Client",
            dialled="4950000005",
            rang=("108", "109"),
            answered_by="109",
            outcome="answered",
            queue="q-busy",
            route_kind="extension",
            route_target="108",
        ),
    )
    assert result.truth.statuses["108"] == ("BUSY",)


def test_queue_with_local_channel_members(inbound: Inbound) -> None:
    """FreePBX-style Local/ members: the phones they dial are who rang and who answered, never the Local halves."""
    assert_matches(
        inbound.results["local-members"],
        Expected(
            direction="inbound",
            caller_number="+79035550006",
            caller_name="Wholesale Buyer",
            dialled="4950000006",
            rang=("110", "111"),
            rang_any_order=True,
            answered_by="111",
            outcome="answered",
            queue="q-local",
            route_kind="queue",
            route_target="q-local",
        ),
    )


def test_anonymous_caller(inbound: Inbound) -> None:
    """A hidden number: no caller number, no lead, no task; answered as any call."""
    assert_matches(
        inbound.results["anonymous"],
        Expected(
            direction="inbound",
            caller_number=None,
            caller_name="Anonymous",
            dialled="4950000007",
            rang=("112",),
            answered_by="112",
            outcome="answered",
            queue="q-anon",
        ),
    )


def test_cyrillic_caller_name_is_kept_as_sent(inbound: Inbound) -> None:
    """A UTF-8 Cyrillic display name from the trunk is stored as the caller sent it."""
    assert_matches(
        inbound.results["cyrillic-name"],
        Expected(
            direction="inbound",
            caller_number="+79035550008",
            caller_name="Пётр Иванов",
            dialled="4950000008",
            rang=("113",),
            answered_by="113",
            outcome="answered",
            queue="q-cyrillic",
        ),
    )


def test_quotes_and_apostrophe_in_the_caller_name_arrive_unescaped(inbound: Inbound) -> None:
    """AMI C-escapes `"`, `'` and `\\` (the witness sees them so); crmtel stores the name as the PBX holds it.

    The trunk sent the SIP quoted-string ``"Dan \\"The Man\\" O'Brien"``; PJSIP keeps its backslashes in the
    caller ID name (the CDR's clid shows them too), so that is the caller's name on this PBX.
    """
    result = inbound.results["obrien-name"]
    held = 'Dan \\"The Man\\" O\'Brien'
    assert_matches(
        result,
        Expected(
            direction="inbound",
            caller_number="+79035550009",
            caller_name=held,
            dialled="4950000009",
            rang=("114",),
            answered_by="114",
            outcome="answered",
            queue="q-obrien",
        ),
    )
    assert result.truth.caller_name == held
    # On the wire every one of them came escaped once more: the fact crmtel's edge undoes.
    assert result.truth.caller_name_raw == 'Dan \\\\\\"The Man\\\\\\" O\\\'Brien', (
        result.truth.caller_name_raw
    )


def test_caller_gives_up_while_the_personal_manager_rings(inbound: Inbound) -> None:
    """The caller hangs up during the personal manager's ring: missed, a task for the personal manager."""
    assert_matches(
        inbound.results["gave-up-while-ringing"],
        Expected(
            direction="inbound",
            caller_number="+79161110015",
            caller_name="Impatient",
            dialled="4950000010",
            rang=("115",),
            answered_by=None,
            outcome="missed",
            missed_reason="caller_hung_up_ringing",
            route_kind="extension",
            route_target="115",
        ),
    )
    task = _task_of(inbound, "+79161110015")
    assert (task.status, task.missed_count, task.manager) == ("open", 1, "pavel")


def test_only_missed_calls_open_callback_tasks(inbound: Inbound) -> None:
    """Exactly the two missed calls of the batch opened tasks; answered calls opened none."""
    assert sorted(t.phone or "" for t in inbound.tasks) == ["+79035550004", "+79161110015"]


def test_ringing_cards_reach_only_the_managers_whose_phones_ring(inbound: Inbound) -> None:
    """anna, boris and vera each get call.ringing for exactly the calls that rang their phone, after the INVITE
    and before the answer; the latency from the caller's INVITE is reported in the tier's summary."""
    by_call = {f"pbx1:{r.linkedid}": r for r in inbound.results.values()}
    from_invite: list[float] = []
    from_dial: list[float] = []
    for login, extension in (("anna", "101"), ("boris", "102"), ("vera", "103")):
        browser = inbound.browsers[login]
        ringing = [(t, m) for t, m in browser.received if m["type"] == "call.ringing"]
        got = {m["call_id"] for _t, m in ringing}
        want = {cid for cid, r in by_call.items() if extension in r.truth.offered}
        assert got == want, (login, got, want)
        for at, message in ringing:
            assert message["extension"] == extension
            result = by_call[message["call_id"]]
            dialled = _dial_begin(result, extension)
            assert at > dialled > result.invite_at
            answered = result.truth.caller_up
            if answered is not None and result.record.answered_by == extension:
                assert at < answered, f"{login}'s card came after the call was answered"
            from_dial.append(at - dialled)
            if result.truth.offered[0] == extension:
                from_invite.append(at - result.invite_at)
        # Nothing of anyone else's calls: every message names a call that rang here.
        assert {m.get("call_id") for _t, m in browser.received if m.get("call_id")} <= want
    note(
        "ringing card latency: from the caller's INVITE (first phone offered; FastAGI route and dial included) "
        f"{_ms(from_invite)}; from the PBX's DialBegin of the phone {_ms(from_dial)}"
    )


def _ms(values: list[float]) -> str:
    return (
        f"median {statistics.median(values) * 1000:.0f} ms, max {max(values) * 1000:.0f} ms (n={len(values)})"
    )


def _dial_begin(result: Result, extension: str) -> float:
    """When the PBX started ringing ``extension`` for this call (its first DialBegin), epoch seconds."""
    return min(
        m.timestamp
        for m in result.events
        if m.event == "DialBegin" and (m.get("DestChannel") or "").startswith(f"PJSIP/{extension}-")
    )


def _task_of(inbound: Inbound, phone: str) -> TaskView:
    found = [t for t in inbound.tasks if t.phone == phone]
    assert len(found) == 1, inbound.tasks
    return found[0]
