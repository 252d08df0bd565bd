"""The FreePBX custom destination uses only what FreePBX 16/17 and Asterisk define, the way FreePBX uses it."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.fixtures.dialplan import Dialplan, DialplanError, Priority, parse

DIALPLAN = Path(__file__).resolve().parents[2] / "deploy" / "asterisk" / "extensions_custom.conf"

# Contexts of FreePBX's generated dialplan (extensions_additional.conf) this file may enter, and where each is made.
FREEPBX_CONTEXTS = {
    "ext-queues": "queues module functions.inc/dialplan.php: one extension per queue number (Queue() + settings)",
    "ext-local": "core: one extension per user (macro-exten-vm → macro-dial-one), included into from-internal",
    "from-internal": "core: the internal context; from-internal-additional includes ext-local and ext-queues",
    "macro-blkvm-set": "core: blocks voicemail for the call; ext-queues calls Macro(blkvm-set,reset)",
    "macro-blkvm-clr": "core: lifts the block; ext-queues calls Macro(blkvm-clr) after Queue()",
    "macro-auto-blkvm": "core Dialplan/macroAutoBlkvm.php: run on the answering line (Dial M(auto-blkvm) / "
    "U(macro-auto-blkvm) in core Dialplan/dialparties.php)",
    "macro-hangupcall": "core: FreePBX's hangup handling, the h extension of macro-dial-one and ext-local",
}
# Channel variables FreePBX sets that this file reads.
FREEPBX_VARIABLES = {
    "FROM_DID": "core ext-did: the inbound route's DID, 's' for a trunk that sends none",
    "RGPREFIX": "core macro-prepend-cid: the route's CID name prefix (_RGPREFIX, inherited)",
    "DIAL_OPTIONS": "core [globals] (Advanced Settings: Asterisk Dial command options); ext-queues extends it",
    "NODEST": "queues ext-queues sets __NODEST=${EXTEN}; core macro-dial-one adds M(auto-blkvm) when set",
}
# What Asterisk itself provides (applications, functions, variables) that the file uses.
ASTERISK_APPS = {"NoOp", "ExecIf", "Set", "AGI", "GotoIf", "Goto", "Gosub", "Macro", "Dial", "Hangup"}
ASTERISK_FUNCTIONS = {"CALLERID", "FILTER", "IF", "DIALPLAN_EXISTS", "STRREPLACE", "LEN"}
ASTERISK_VARIABLES = {"DIALSTATUS": "app_dial: how Dial() ended"}
# Applications FreePBX 17 no longer has on Asterisk 21+ (app_macro is gone): only in the FreePBX 16 branch.
FREEPBX16_ONLY = {"Macro"}


@pytest.fixture(scope="module")
def plan() -> Dialplan:
    return parse(DIALPLAN.read_text(encoding="utf-8"))


def _all(plan: Dialplan) -> list[Priority]:
    return [p for prios in plan.contexts.values() for p in prios]


def _text(plan: Dialplan) -> str:
    return "\n".join(f"{p.app}({p.args})" for p in _all(plan))


def test_only_asterisk_applications_are_used(plan: Dialplan) -> None:
    """Every application (also those run through ExecIf) is a stock Asterisk one."""
    apps = {p.app for p in _all(plan)}
    apps |= set(re.findall(r"\?(\w+)\(", _text(plan)))
    assert apps <= ASTERISK_APPS, apps - ASTERISK_APPS


def test_only_asterisk_functions_are_used(plan: Dialplan) -> None:
    """Every ``${FUNC(...)}`` is a dialplan function Asterisk ships."""
    functions = set(re.findall(r"\$\{([A-Z_]+)\(", _text(plan)))
    assert functions <= ASTERISK_FUNCTIONS, functions - ASTERISK_FUNCTIONS


def test_every_context_entered_is_freepbx_s_or_this_file_s(plan: Dialplan) -> None:
    """Goto/Gosub/Macro/Dial targets and Local channels land only in contexts FreePBX 16/17 generates."""
    text = _text(plan)
    used = set(re.findall(r"Goto\(([\w-]+),[^,)]+,\w+\)", text))
    used |= set(re.findall(r"Gosub\(([\w-]+),s,1\(", text))
    used |= {f"macro-{name}" for name in re.findall(r"Macro\(([\w-]+)", text)}
    used |= {f"macro-{name}" for name in re.findall(r"\}M\(([\w-]+)\)", text)}
    used |= set(re.findall(r"\}U\(([\w-]+)\)", text))
    used |= set(re.findall(r"@([\w-]+),", text))
    used |= set(re.findall(r"DIALPLAN_EXISTS\(([\w-]+),", text))
    assert used, "no context found: the patterns no longer match the file"
    unknown = used - set(FREEPBX_CONTEXTS) - set(plan.contexts)
    assert not unknown, unknown
    assert {"ext-queues", "ext-local", "from-internal", "macro-hangupcall"} <= used


def test_every_variable_read_is_set_here_or_by_freepbx_or_asterisk(plan: Dialplan) -> None:
    """``${VAR}`` reads are CRMTEL_* variables this file (or crmtel's AGI answer) sets, FreePBX's, or Asterisk's."""
    text = _text(plan)
    read = set(re.findall(r"\$\{([A-Za-z_]\w*)(?:[:}])", text))
    read |= set(re.findall(r"STRREPLACE\((\w+),", text))
    written = {name.lstrip("_") for name in re.findall(r"Set\((_{0,2}[A-Za-z]\w*)=", text)}
    assert {
        "CRMTEL_ROUTE_KIND",
        "CRMTEL_ROUTE_TARGET",
        "CRMTEL_FALLBACK_QUEUE",
        "CRMTEL_CALLER_NAME",
    } <= written
    known = written | set(FREEPBX_VARIABLES) | set(ASTERISK_VARIABLES)
    assert read - known == set()
    # Everything of our own is named CRMTEL_*; the only FreePBX variable written is NODEST, as ext-queues does.
    assert {w for w in written if not w.startswith("CRMTEL_")} <= {"NODEST"}


def test_every_label_jumped_to_exists(plan: Dialplan) -> None:
    """GotoIf/Goto targets inside the file name labels of the same extension (a typo would drop the call)."""
    for context, prios in plan.contexts.items():
        labels = {(p.exten, p.label) for p in prios if p.label}
        for p in prios:
            targets: list[str] = []
            if p.app == "GotoIf":
                targets = re.split(r"[:]", p.args.rsplit("?", 1)[1])
            elif p.app == "Goto" and "," not in p.args:
                targets = [p.args]
            for target in filter(None, (t.strip() for t in targets)):
                assert (p.exten, target) in labels, f"{context} line {p.line}: no label {target!r}"


def test_personal_manager_is_dialled_through_from_internal_with_the_blkvm_macros(plan: Dialplan) -> None:
    """The manager's Dial goes to Local/<ext>@from-internal for CRMTEL_RING s, voicemail blocked as ext-queues does."""
    dials = [p for p in _all(plan) if p.app == "Dial"]
    assert [d.args for d in dials] == [
        "Local/${CRMTEL_ROUTE_TARGET}@from-internal,${CRMTEL_RING},${CRMTEL_DIALOPTS}"
    ]
    text = _text(plan)
    # FreePBX 17: macros are Gosub routines; FreePBX 16: Macro() and Dial's M() option.
    assert "Gosub(macro-blkvm-set,s,1(reset))" in text
    assert "Macro(blkvm-set,reset)" in text
    assert "U(macro-auto-blkvm)" in text
    assert "M(auto-blkvm)" in text
    assert "Set(__NODEST=${CRMTEL_ROUTE_TARGET})" in text
    assert "DB(DEVICE/" not in text
    assert "PJSIP/" not in text


def test_macro_is_only_called_on_the_freepbx16_branch(plan: Dialplan) -> None:
    """Each Macro() sits right after a label reached only when CRMTEL_FREEPBX is 16 (Asterisk 21+ has no Macro)."""
    for prios in plan.contexts.values():
        for i, p in enumerate(prios):
            if p.app not in FREEPBX16_ONLY:
                continue
            assert p.label is not None, f"line {p.line}: Macro() outside a FreePBX 16 branch"
            guards = [q for q in prios if q.app == "GotoIf" and f"?{p.label}" in q.args]
            assert guards, f"line {p.line}: nothing jumps to {p.label}"
            assert all('"${CRMTEL_FREEPBX}" = "16"' in g.args for g in guards), guards
            assert prios[i - 1].app in ("Goto", "Hangup"), f"line {p.line}: the 17 branch falls into Macro()"


def test_hangup_handling_and_route_details_are_kept(plan: Dialplan) -> None:
    """An h extension runs macro-hangupcall; the route's CID prefix stays; a DID-less trunk asks for DID 's'."""
    assert any(p.exten == "h" and "macro-hangupcall" in p.args for p in plan.contexts["crmtel-route"])
    assert any(p.exten == "h" and p.args == "hangupcall" for p in plan.contexts["crmtel-route"])
    text = _text(plan)
    assert "Set(CALLERID(name)=${RGPREFIX}${CRMTEL_CALLER_NAME})" in text
    # The CRM's name (free text) is never inside an ExecIf, whose ':' and '?' it could break.
    assert not [p for p in _all(plan) if p.app == "ExecIf" and "CRMTEL_CALLER_NAME" in p.args]
    assert '"${FROM_DID}" = "s"]?s:' in text
    assert (
        "AGI(agi://${CRMTEL_AGI_HOST}:${CRMTEL_AGI_PORT}/route,${FILTER(0123456789+,${CALLERID(num)})},${CRMTEL_DID})"
        in text
    )


def test_the_parser_rejects_what_it_does_not_understand() -> None:
    """A line outside the understood syntax fails the test instead of being skipped silently."""
    with pytest.raises(DialplanError):
        parse("[x]\nexten => s,1,NoOp(a)\n switch => foo\n")
    plan = parse("[x]\nexten => s,1,NoOp(a) ; comment\n same => n(l),Goto(l)\n")
    assert [(p.label, p.app) for p in plan.contexts["x"]] == [(None, "NoOp"), ("l", "Goto")]
