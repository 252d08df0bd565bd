"""The browser phone's FreePBX files: the generated endpoints differ from plain Asterisk's only in their comments
(where to include them), FreePBX's own files are recognised, and the shipped dialplan hook adds crmtel's device
and asks crmtel before an outside number reaches FreePBX's outbound routes."""

from __future__ import annotations

import re
from pathlib import Path, PurePath

import pytest

from crmtel.config import WEBPHONE_DEVICE_PREFIX, WebphoneSettings
from crmtel.webphone.models import Endpoint, SipCredential
from crmtel.webphone.service import freepbx_owned, pjsip_endpoints
from tests.fixtures.dialplan import context_lines

DIALPLAN = (
    Path(__file__).resolve().parents[2] / "deploy" / "asterisk" / "extensions_crmtel_webphone_freepbx.conf"
)
SETTINGS = WebphoneSettings(enabled=True, ws_url="wss://pbx.example.com:8089/ws")
ENDPOINT = Endpoint(
    SipCredential(1, "99101", "crmtel", "0123456789abcdef0123456789abcdef"), "101", "Анна", "anna"
)


def _config_lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.strip() and not line.startswith(";")]


def _context(name: str) -> list[str]:
    """The dialplan lines of one context of the shipped file (comments and blank lines left out)."""
    return context_lines(DIALPLAN, name)


def test_freepbx_endpoints_are_the_same_sections_with_freepbx_include_advice() -> None:
    """The FreePBX file says to include it from pjsip_custom_post.conf and carries no transport of its own (the
    browsers use FreePBX's wss transport); its settings and credential are byte for byte plain Asterisk's."""
    freepbx = pjsip_endpoints([ENDPOINT], SETTINGS, flavour="freepbx")
    plain = pjsip_endpoints([ENDPOINT], SETTINGS)
    assert "pjsip_custom_post.conf" in freepbx
    assert "pjsip_custom_post.conf" not in plain
    assert _config_lines(freepbx) == _config_lines(plain)
    assert re.search(r"(?m)^transport\s*=", freepbx) is None


@pytest.mark.parametrize(
    ("name", "owned"),
    [
        ("/etc/asterisk/pjsip.conf", True),
        ("/etc/asterisk/pjsip.endpoint.conf", True),
        ("/etc/asterisk/pjsip.auth.conf", True),
        ("/etc/asterisk/extensions_additional.conf", True),
        ("/etc/asterisk/pjsip_crmtel_webphone.conf", False),
        ("/etc/asterisk/pjsip_custom_post.conf", False),
        ("/etc/asterisk/pjsip.endpoint_custom_post.conf", False),
    ],
)
def test_files_freepbx_rewrites_on_apply_config_are_known(name: str, owned: bool) -> None:
    """A file FreePBX regenerates is refused as the endpoints' target; its *_custom(_post) files are not."""
    assert freepbx_owned(PurePath(name)) is owned


def test_the_predial_hook_adds_crmtel_s_device_and_returns_on_16_and_17() -> None:
    """The hook adds PJSIP/99<ext>'s contacts (crmtel's device name) to FreePBX's DSTRING only when registered
    and not already there, and returns by Return() under Gosub (FreePBX 17) or MacroExit() under Macro (16)."""
    hook = _context("macro-dialout-one-predial-hook")
    assert hook[0].startswith("exten => s,1,")
    text = "\n".join(hook)
    assert f"PJSIP_DIAL_CONTACTS({WEBPHONE_DEVICE_PREFIX}${{DEXTEN}})" in text
    assert f"DEVICE_STATE(PJSIP/{WEBPHONE_DEVICE_PREFIX}${{DEXTEN}})" in text
    assert "Set(DSTRING=${DSTRING}&${CRMTEL_WEB})" in text
    assert hook[-2:] == ["same => n,Return()", "same => n(macro),MacroExit()"]


def test_the_browser_s_outside_numbers_pass_crmtel_s_policy_before_freepbx_s_routes() -> None:
    """In the browser's context (webphone.context's default) every path to from-internal that is not a FreePBX
    user, queue or ring group goes through the webphone-dial check, and a refusal never reaches from-internal."""
    assert WebphoneSettings().context == "crmtel-webphone"
    lines = _context("crmtel-webphone")
    text = "\n".join(lines)
    agi = next(i for i, line in enumerate(lines) if "/webphone-dial," in line)
    check = next(i for i, line in enumerate(lines) if 'CRMTEL_WEBPHONE_ALLOWED}" != "1"]?refused,1' in line)
    inside = next(i for i, line in enumerate(lines) if "(inside),Goto(from-internal,${EXTEN},1)" in line)
    internal = next(i for i, line in enumerate(lines) if "DIALPLAN_EXISTS(ext-local," in line)
    assert internal < agi < check < inside
    assert text.count("from-internal") == 1
    assert "exten => refused,1" in text
    assert "Hangup(21)" in text
