"""The browser phone's outside calls are checked by the PBX through crmtel (FastAGI ``webphone-dial``) against the
click-to-call policy: the SIP credential works in any SIP client, so the page's POST /api/dial/browser alone
would let a manager (or a stolen page) dial premium or foreign numbers straight from [crmtel-webphone]."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from crmtel.config import RoutingSettings, Settings
from crmtel.routing.agi import AgiServer
from crmtel.routing.service import RoutingService
from crmtel.webphone.web import webphone_dial_check
from tests.integration.test_agi_server import FakeLookup, env, fake_asterisk

DEPLOY = Path(__file__).resolve().parents[2] / "deploy" / "asterisk"


def settings(allow: list[str] | None = None, **webphone: object) -> Settings:
    originate: dict[str, object] = {"dial_rules": [{"prefix": "+7", "replace": "8"}]}
    if allow is not None:
        originate["allow"] = allow
    return Settings.model_validate(
        {
            "webphone": {"enabled": True, "ws_url": "wss://pbx.example.com:8089/ws", **webphone},
            "ami": {"originate": originate},
        }
    )


@pytest.fixture
async def service() -> AsyncIterator[RoutingService]:
    routing = RoutingService(FakeLookup(), RoutingSettings(deadline_ms=200))
    yield routing
    await routing.close()


async def asked(service: RoutingService, number: str, cfg: Settings | None = None) -> dict[str, str]:
    check = webphone_dial_check(cfg if cfg is not None else settings())
    agi = AgiServer(service, "127.0.0.1", 0, header_timeout=0.5, reply_timeout=0.5, webphone_check=check)
    async with agi:
        result = await fake_asterisk(agi.port, env(caller="131", did=number, script="webphone-dial"))
    return result.variables


@pytest.mark.parametrize(
    "number",
    [
        "88091234567",  # premium 8 809
        "88031234567",  # premium 8 803
        "810441234567890",  # another country, as the trunk dials it
        "+441234567890",
        "87011234567",  # Kazakhstan inside +7
        "89401234567",  # Abkhazia inside +7
        "8916111000&PJSIP/131",  # dialplan syntax
        "8916111000@other",
    ],
)
async def test_what_the_policy_refuses_is_refused(service: RoutingService, number: str) -> None:
    assert await asked(service, number) == {"CRMTEL_WEBPHONE_ALLOWED": "0"}


@pytest.mark.parametrize("number", ["89161110131", "84951234567", "+79161110131", "88005553535"])
async def test_what_the_policy_allows_goes_out(service: RoutingService, number: str) -> None:
    assert await asked(service, number) == {"CRMTEL_WEBPHONE_ALLOWED": "1"}


async def test_widened_policy_and_off(service: RoutingService) -> None:
    """The admin's allow list is the one asked; with the browser phone off nothing goes out."""
    wide = settings(allow=["+7[3489]?????????", "+44*"])
    assert await asked(service, "+441234567890", wide) == {"CRMTEL_WEBPHONE_ALLOWED": "1"}
    assert await asked(service, "89161110131", settings(enabled=False, ws_url="")) == {
        "CRMTEL_WEBPHONE_ALLOWED": "0"
    }


async def test_without_a_check_nothing_goes_out(service: RoutingService) -> None:
    """`crmtel route-server` alone (no browser phone check): refused, never allowed by default."""
    agi = AgiServer(service, "127.0.0.1", 0, header_timeout=0.5, reply_timeout=0.5)
    async with agi:
        result = await fake_asterisk(agi.port, env(caller="131", did="89161110131", script="webphone-dial"))
    assert result.variables == {"CRMTEL_WEBPHONE_ALLOWED": "0"}


def test_the_shipped_context_asks_before_the_trunk() -> None:
    """[crmtel-webphone] filters the number, asks webphone-dial and refuses unless told 1 — before any Dial out."""
    text = (DEPLOY / "extensions_crmtel_webphone.conf").read_text(encoding="utf-8")
    outside = text[text.index("exten => _[+0-9]XXXXX.") :]
    ask = outside.index("/webphone-dial,")
    gate = outside.index('GotoIf($["${CRMTEL_WEBPHONE_ALLOWED}" != "1"]?refused,1)')
    filtered = outside.index('GotoIf($["${FILTER(+0123456789,${EXTEN})}" != "${EXTEN}"]?refused,1)')
    dial = outside.index("Dial(PJSIP/${EXTEN}@${CRMTEL_TRUNK}")
    assert filtered < ask < gate < dial
    assert "exten => refused,1," in text
