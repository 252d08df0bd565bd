"""The FreePBX custom destination, run by a small interpreter: where each kind of call ends up, on 16 and on 17."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.fixtures.dialplan import Channel, Dialplan, parse, run

DIALPLAN = Path(__file__).resolve().parents[2] / "deploy" / "asterisk" / "extensions_custom.conf"
# What FreePBX has generated on the PBX of these scenarios: users 101–104, queues 400 (retail) and 401.
EXISTS = {"ext-local": {"101", "102", "103", "104"}, "ext-queues": {"400", "401"}}


@pytest.fixture(scope="module")
def plan() -> Dialplan:
    return parse(DIALPLAN.read_text(encoding="utf-8"))


def _call(
    plan: Dialplan,
    answer: dict[str, str] | None,
    *,
    dial_status: str = "NOANSWER",
    caller: str = "+7 (916) 111-00-01",
    name: str = "Ivan Petrov",
    variables: dict[str, str] | None = None,
) -> tuple[str, Channel, list[str]]:
    """One inbound call: crmtel's AGI answer (None: crmtel said nothing), how the manager's Dial ends."""
    channel = Channel(
        {"FROM_DID": "4951234567", "DIAL_OPTIONS": "Ttr", **(variables or {})},
        caller_num=caller,
        caller_name=name,
        exists=EXISTS,
    )
    agi_args: list[str] = []

    def on_agi(_app: str, args: str, ch: Channel) -> None:
        agi_args.append(args)
        for key, value in (answer or {}).items():
            ch.set(key, value)

    end = run(plan, channel, on_agi, dial_status)
    return end, channel, agi_args


PERSONAL = {
    "CRMTEL_ROUTE_KIND": "extension",
    "CRMTEL_ROUTE_TARGET": "101",
    "CRMTEL_FALLBACK_QUEUE": "401",
    "CRMTEL_CALLER_NAME": "ООО Ромашка",
}


def test_manager_answers_then_freepbx_hangup_handling_runs(plan: Dialplan) -> None:
    """FreePBX 17: blkvm-set via Gosub, Local/101@from-internal for 20 s with U(macro-auto-blkvm), then h."""
    end, ch, agi = _call(plan, PERSONAL, dial_status="ANSWER")
    assert end == "hangup"
    assert agi == ["agi://127.0.0.1:4573/route,+79161110001,4951234567"]
    assert ch.trace[1:] == [
        ("Gosub", "macro-blkvm-set,s,1(reset)"),
        ("Dial", "Local/101@from-internal,20,trU(macro-auto-blkvm)"),
        ("Hangup", ""),
        ("Gosub", "macro-hangupcall,s,1()"),
        ("Hangup", ""),
    ]
    assert ch.get("NODEST") == "101"


@pytest.mark.parametrize("status", ["NOANSWER", "BUSY", "CHANUNAVAIL"])
def test_manager_does_not_answer_then_the_fallback_queue(plan: Dialplan, status: str) -> None:
    """No answer, busy or unavailable: the block is lifted as ext-queues does, then ext-queues,<fallback>."""
    end, ch, _ = _call(plan, PERSONAL, dial_status=status)
    assert end == "left"
    assert ch.trace[-2:] == [("Gosub", "macro-blkvm-clr,s,1()"), ("Goto", "ext-queues,401,1")]
    assert ch.get("NODEST") == ""


def test_freepbx16_uses_macro_and_dial_m(plan: Dialplan) -> None:
    """CRMTEL_FREEPBX=16: Macro(blkvm-set,reset), M(auto-blkvm), Macro(blkvm-clr), Macro(hangupcall)."""
    end, ch, _ = _call(plan, PERSONAL, variables={"CRMTEL_FREEPBX": "16"})
    assert end == "left"
    assert ch.trace[1:] == [
        ("Macro", "blkvm-set,reset"),
        ("Dial", "Local/101@from-internal,20,trM(auto-blkvm)"),
        ("Macro", "blkvm-clr"),
        ("Goto", "ext-queues,401,1"),
    ]
    _, answered, _ = _call(plan, PERSONAL, dial_status="ANSWER", variables={"CRMTEL_FREEPBX": "16"})
    assert answered.trace[-2:] == [("Hangup", ""), ("Macro", "hangupcall")]
    assert not any(app == "Gosub" for app, _ in answered.trace)


def test_crmtel_silent_sends_the_call_to_the_default_queue(plan: Dialplan) -> None:
    """crmtel down, slow or mute (no variables set): ext-queues,400 and the caller id untouched."""
    end, ch, _ = _call(plan, None)
    assert (end, ch.trace[-1]) == ("left", ("Goto", "ext-queues,400,1"))
    assert ch.caller_name == "Ivan Petrov"
    assert not any(app == "Dial" for app, _ in ch.trace)


def test_queue_decision_goes_through_ext_queues_and_an_unknown_queue_falls_back(plan: Dialplan) -> None:
    """A queue crmtel named is entered through ext-queues; a queue FreePBX does not have means the default."""
    _, ch, _ = _call(plan, {"CRMTEL_ROUTE_KIND": "queue", "CRMTEL_ROUTE_TARGET": "401"})
    assert ch.trace[-1] == ("Goto", "ext-queues,401,1")
    _, unknown, _ = _call(plan, {"CRMTEL_ROUTE_KIND": "queue", "CRMTEL_ROUTE_TARGET": "wholesale"})
    assert unknown.trace[-1] == ("Goto", "ext-queues,400,1")


def test_a_target_that_is_no_user_is_never_dialled(plan: Dialplan) -> None:
    """An extension FreePBX has no user for (from-internal would dial it out on a trunk) goes to the queue."""
    for target in ("89161110001", "999"):
        _, ch, _ = _call(plan, {**PERSONAL, "CRMTEL_ROUTE_TARGET": target})
        assert not any(app == "Dial" for app, _ in ch.trace), target
        assert ch.trace[-1] == ("Goto", "ext-queues,401,1")


def test_route_cid_prefix_stays_in_front_of_the_crm_name(plan: Dialplan) -> None:
    """With the inbound route's prefix (RGPREFIX) the display shows prefix + CRM name, even with ':' or '?'."""
    name = 'ООО "Ромашка": склад?'
    _, ch, _ = _call(
        plan, {**PERSONAL, "CRMTEL_CALLER_NAME": name}, name="VIP:Ivan", variables={"RGPREFIX": "VIP:"}
    )
    assert ch.caller_name == f"VIP:{name}"
    _, plain, _ = _call(
        plan, {**PERSONAL, "CRMTEL_CALLER_NAME": ""}, name="VIP:Ivan", variables={"RGPREFIX": "VIP:"}
    )
    assert plain.caller_name == "VIP:Ivan"


@pytest.mark.parametrize(("from_did", "asked"), [("s", "s"), ("", "s"), ("+74951234567", "+74951234567")])
def test_a_trunk_without_did_asks_for_did_s(plan: Dialplan, from_did: str, asked: str) -> None:
    """FROM_DID 's' (or empty) is sent as DID 's'; a real DID is sent as digits."""
    _, _, agi = _call(plan, None, variables={"FROM_DID": from_did})
    assert agi == [f"agi://127.0.0.1:4573/route,+79161110001,{asked}"]


def test_settings_come_from_globals_when_set(plan: Dialplan) -> None:
    """CRMTEL_RING and CRMTEL_DEFAULT_QUEUE set as globals (globals_custom.conf) win over the file's defaults."""
    _, ch, _ = _call(plan, PERSONAL, variables={"CRMTEL_RING": "35", "CRMTEL_DEFAULT_QUEUE": "401"})
    assert ("Dial", "Local/101@from-internal,35,trU(macro-auto-blkvm)") in ch.trace
    _, silent, _ = _call(plan, None, variables={"CRMTEL_DEFAULT_QUEUE": "401"})
    assert silent.trace[-1] == ("Goto", "ext-queues,401,1")


def test_crmtels_generated_globals_drive_the_route(plan: Dialplan) -> None:
    """The globals `crmtel config dialplan-globals` writes (put in globals_custom.conf) set AGI address and ring."""
    globals_file = DIALPLAN.with_name("extensions_crmtel_globals.conf").read_text(encoding="utf-8")
    values = dict(
        line.split("=", 1) for line in globals_file.splitlines() if line.strip() and not line.startswith(";")
    )
    assert {"CRMTEL_AGI_HOST", "CRMTEL_AGI_PORT", "CRMTEL_RING", "CRMTEL_DEFAULT_QUEUE"} <= set(values)
    values |= {"CRMTEL_AGI_PORT": "4600", "CRMTEL_RING": "25", "CRMTEL_DEFAULT_QUEUE": "400"}
    _, ch, agi = _call(plan, PERSONAL, variables=values)
    assert agi == [f"agi://{values['CRMTEL_AGI_HOST']}:4600/route,+79161110001,4951234567"]
    assert ("Dial", "Local/101@from-internal,25,trU(macro-auto-blkvm)") in ch.trace


def test_a_hostile_caller_id_never_reaches_the_agi_arguments(plan: Dialplan) -> None:
    """Only digits and '+' of the caller id are passed to crmtel: commas and dialplan syntax are filtered out."""
    _, _, agi = _call(plan, None, caller="7916,1110001)${EVIL}")
    assert agi == ["agi://127.0.0.1:4573/route,79161110001,4951234567"]
