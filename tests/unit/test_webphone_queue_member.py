"""Queues ring a manager's desk phone and browser as one member: the shipped [crmtel-queue-member] and
[crmtel-hints] use the same devices as [crmtel-ring] and crmtel's generated endpoints, and the member line the
file tells admins to write is the one the live tier's queues.conf uses."""

from __future__ import annotations

import re
from pathlib import Path

from crmtel.config import WEBPHONE_DEVICE_PREFIX
from tests.fixtures.dialplan import context_lines

DIALPLAN = Path(__file__).resolve().parents[2] / "deploy" / "asterisk" / "extensions_crmtel_webphone.conf"


def _context(name: str) -> list[str]:
    """The dialplan lines of one context (comments and blank lines left out)."""
    return context_lines(DIALPLAN, name)


def test_the_member_context_rings_what_crmtel_ring_rings() -> None:
    """[crmtel-queue-member] asks [crmtel-ring] for the extension's devices and dials them all, without a
    timeout of its own (the queue's member timeout decides)."""
    member = _context("crmtel-queue-member")
    assert member[0].startswith("exten => _X.,1,")
    assert "same => n,Gosub(crmtel-ring,s,1(${EXTEN}))" in member
    dial = [line for line in member if "Dial(" in line]
    assert dial == ["same => n,Dial(${CRMTEL_DEVICES},,t)"]
    assert member.index(dial[0]) > member.index("same => n,Gosub(crmtel-ring,s,1(${EXTEN}))")
    ring = " ".join(_context("crmtel-ring"))
    assert "PJSIP/${ARG1}" in ring
    assert f"PJSIP/{WEBPHONE_DEVICE_PREFIX}${{ARG1}}" in ring


def test_the_hint_covers_the_desk_phone_and_the_browser_device() -> None:
    """One pattern hint per extension over the desk phone and crmtel's browser device 99<ext>."""
    assert _context("crmtel-hints") == [
        f"exten => _X.,hint,PJSIP/${{EXTEN}}&PJSIP/{WEBPHONE_DEVICE_PREFIX}${{EXTEN}}"
    ]


def test_the_documented_member_line_takes_its_state_from_the_hint() -> None:
    """The header's queues.conf example: one Local member per manager whose state interface is the hint of the
    same extension (tests/live/test_live_queue_member.py runs exactly this on a real Asterisk)."""
    text = DIALPLAN.read_text(encoding="utf-8")
    found = re.search(r"member => Local/(\d+)@crmtel-queue-member,0,\w+,hint:(\d+)@crmtel-hints", text)
    assert found is not None
    assert found.group(1) == found.group(2)
