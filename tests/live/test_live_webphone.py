"""The browser phone's Asterisk side against a real Asterisk 22: crmtel's generated WebRTC endpoints load, and
`config check --connect` finds the PBX's real /ws speaking SIP."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

from tests.fixtures.races import RACES_PROCESSES
from tests.live.asterisk import Install
from tests.live.crmtel_side import Staff
from tests.live.rig import WEBPHONE_FILE, RigSpec, live_rig

pytestmark = RACES_PROCESSES

STAFF = (
    Staff("anna", "Анна Смирнова", "131", password="pw-anna"),
    Staff("boris", "Boris Orlov", "132", password="pw-boris"),
)


async def test_generated_endpoints_load_and_config_check_passes(
    live_install: Install, tmp_path: Path, database_for: Callable[[Path], str]
) -> None:
    """Asterisk loads crmtel's endpoints 99131/99132 (webrtc, digest by hash); `config check --connect` finds
    the PBX's /ws speaking SIP and a version with working WebRTC audio (crmtel itself not running: the check
    also wants its ports free); the shipped ring routine is loaded."""
    folder = tmp_path / "live"
    spec = RigSpec(staff=STAFF, webphone=True)
    async with live_rig(live_install, folder, database_for(folder), spec, start_crmtel=False) as rig:
        endpoints = rig.pbx.cli("pjsip show endpoints")
        assert re.search(r"Endpoint:\s+99131\b", endpoints), endpoints
        assert re.search(r"Endpoint:\s+99132\b", endpoints), endpoints
        shown = rig.pbx.cli("pjsip show endpoint 99131")
        assert re.search(r"webrtc\s*:\s*yes", shown), shown
        assert re.search(r"context\s*:\s*crmtel-webphone", shown), shown
        text = (rig.cfg.etc / WEBPHONE_FILE).read_text(encoding="utf-8")
        digest = re.search(r"password_digest = MD5:([0-9a-f]{32})", text)
        assert digest is not None
        code, out = await rig.crmtel_cli("config", "check", "--connect")
        assert code == 0, out
        assert digest.group(1) not in out
        ring = rig.pbx.cli("dialplan show s@crmtel-ring")
        assert "DEVICE_STATE(PJSIP/99${ARG1})" in ring, ring


async def test_the_pbx_asks_crmtel_before_a_browser_phone_dials_out(
    live_install: Install, tmp_path: Path, database_for: Callable[[Path], str]
) -> None:
    """[crmtel-webphone] in the real Asterisk asks crmtel's FastAGI `webphone-dial`: a premium 8 809 number and
    another country (810…) are refused before any Dial (the credential works in any SIP client, so POST
    /api/dial/browser alone guards nothing), dialplan syntax in the number never reaches crmtel, and a Moscow
    mobile the policy allows goes on to Dial on the trunk."""
    folder = tmp_path / "live"
    spec = RigSpec(staff=STAFF, webphone=True)
    async with live_rig(live_install, folder, database_for(folder), spec) as rig:
        outcome: dict[str, tuple[str | None, bool, bool]] = {}
        for number in ("88091234567", "810441234567890", "89161110131"):
            start = len(rig.witness.messages)
            await rig.witness.action(
                "Originate",
                Channel=f"Local/{number}@crmtel-webphone",
                Application="Wait",
                Data="1",
                CallerID="131",
                Async="true",
            )
            after = await rig.witness.wait_for(
                lambda m: (
                    m.event == "Newexten"
                    and m.get("Context") == "crmtel-webphone"
                    and (m.get("Application") == "Dial" or m.get("Extension") == "refused")
                ),
                30.0,
                start,
            )
            told = [
                m.get("Value")
                for m in rig.witness.messages[start:]
                if m.event == "VarSet" and m.get("Variable") == "CRMTEL_WEBPHONE_ALLOWED" and m.get("Value")
            ]
            asked = told[-1] if told else None
            outcome[number] = (
                asked,
                after.get("Application") == "Dial",
                after.get("Extension") == "refused",
            )
        assert outcome == {
            "88091234567": ("0", False, True),
            "810441234567890": ("0", False, True),
            "89161110131": ("1", True, False),
        }
        start = len(rig.witness.messages)
        await rig.witness.action(
            "Originate",
            Channel="Local/8916111013&x@crmtel-webphone",
            Application="Wait",
            Data="1",
            Async="true",
        )
        refused = await rig.witness.wait_event(
            "Newexten", start=start, Context="crmtel-webphone", Extension="refused"
        )
        assert refused is not None
        assert not [m for m in rig.witness.messages[start:] if m.get("Variable") == "CRMTEL_WEBPHONE_ALLOWED"]


async def test_a_browsers_blind_transfer_out_is_asked_and_booked_as_the_transferring_manager(
    live_install: Install, tmp_path: Path, database_for: Callable[[Path], str]
) -> None:
    """A browser phone REFERs a client to an outside number: the client's own channel runs [crmtel-webphone] with
    the client's caller ID and Asterisk's BLINDTRANSFER naming the browser (PJSIP/99131-…). The PBX asks crmtel
    for manager 131 and books the call out as 131's — the client's number was the "extension" of the policy's
    windows, the dial log and CRMTEL_MANAGER_EXTENSION before. A browser's own call still goes by its caller ID."""
    folder = tmp_path / "live"
    spec = RigSpec(staff=STAFF, webphone=True)
    async with live_rig(live_install, folder, database_for(folder), spec) as rig:
        seen: dict[str, str | None] = {}
        for key, variables in (
            ("transfer", "BLINDTRANSFER=PJSIP/99131-0000000a"),
            ("own", ""),
            # A transfer whose transferer is no browser phone 99<ext> (2-6 digits): never the client's number, and
            # no made-up manager either (review26b: the client's 79035550041, and "99" for PJSIP/99ab, before).
            ("not a browser", "BLINDTRANSFER=SIP/trunk-0000000b"),
            ("letters", "BLINDTRANSFER=PJSIP/99ab-0000000c"),
            ("ext 9913's browser", "BLINDTRANSFER=PJSIP/999913-0000000d"),
        ):
            start = len(rig.witness.messages)
            await rig.witness.action(
                "Originate",
                Channel="Local/89161110131@crmtel-webphone",
                Application="Wait",
                Data="1",
                CallerID="131" if key == "own" else '"Client" <79035550041>',
                Variable=variables,
                Async="true",
            )
            await rig.witness.wait_for(
                lambda m: (
                    m.event == "Newexten"
                    and m.get("Context") == "crmtel-webphone"
                    and m.get("Application") == "Dial"
                ),
                30.0,
                start,
            )
            booked = [
                m.get("Value")
                for m in rig.witness.messages[start:]
                if m.event == "VarSet" and m.get("Variable") == "CRMTEL_MANAGER_EXTENSION" and m.get("Value")
            ]
            seen[key] = booked[-1] if booked else None
        assert seen == {
            "transfer": "131",
            "own": "131",
            "not a browser": None,
            "letters": None,
            "ext 9913's browser": "9913",
        }
