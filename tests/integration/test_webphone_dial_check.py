"""The browser phone's outside calls are checked by the PBX through crmtel (FastAGI ``webphone-dial``) against the
click-to-call policy: the SIP credential works in any SIP client, so the page's POST /api/dial/browser alone
would let a manager (or a stolen page) dial premium or foreign numbers straight from [crmtel-webphone]."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

import crmtel.webphone.web as web_module
from crmtel.config import RoutingSettings, Settings
from crmtel.dial.models import DialAttempt
from crmtel.routing.agi import AgiServer
from crmtel.routing.service import RoutingService
from crmtel.webphone.web import webphone_dial_check
from tests.fixtures.daemon import child_env, free_ports
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


class _Audit:
    """The audit log as the check writes to it."""

    def __init__(self) -> None:
        self.rows: list[DialAttempt] = []

    async def add(self, attempt: DialAttempt) -> None:
        self.rows.append(attempt)


async def test_a_browser_credential_cannot_dial_without_end(service: RoutingService) -> None:
    """The PBX's gate counts a browser phone's outside calls in the click-to-call windows — max_per_manager per
    extension, max_per_pbx in all — and audits each refusal: a script with one stolen credential got every
    one of 200 allowed numbers before; another manager's browser still gets through until the PBX's window."""
    cfg = settings()
    originate = cfg.pbxes[0].originate
    audit = _Audit()
    now = [1000.0]
    check = webphone_dial_check(cfg, audit=audit, clock=lambda: now[0])
    agi = AgiServer(service, "127.0.0.1", 0, header_timeout=0.5, reply_timeout=0.5, webphone_check=check)
    answers: list[str] = []
    async with agi:
        for i in range(originate.max_per_manager + 5):
            result = await fake_asterisk(
                agi.port, env(caller="131", did=f"8916{i:07d}", script="webphone-dial")
            )
            answers.append(result.variables["CRMTEL_WEBPHONE_ALLOWED"])
        other = await fake_asterisk(agi.port, env(caller="132", did="89161110132", script="webphone-dial"))
        now[0] += originate.rate_seconds
        later = await fake_asterisk(agi.port, env(caller="131", did="89161110131", script="webphone-dial"))
    assert answers == ["1"] * originate.max_per_manager + ["0"] * 5
    assert other.variables == {"CRMTEL_WEBPHONE_ALLOWED": "1"}
    assert later.variables == {"CRMTEL_WEBPHONE_ALLOWED": "1"}
    assert [(a.source, a.extension, a.decision, a.reason) for a in audit.rows] == [
        ("webphone", "131", "refused", "dial.rate_manager")
    ] * 5
    assert audit.rows[0].number == f"8916{originate.max_per_manager:07d}"


async def test_the_pbx_window_holds_across_browser_phones(service: RoutingService) -> None:
    """max_per_pbx outside calls per rate_seconds from all browser phones together, then refused."""
    cfg = Settings.model_validate(
        {
            "webphone": {"enabled": True, "ws_url": "wss://pbx.example.com:8089/ws"},
            "ami": {"originate": {"max_per_pbx": 3, "dial_rules": [{"prefix": "+7", "replace": "8"}]}},
        }
    )
    audit = _Audit()
    check = webphone_dial_check(cfg, audit=audit, clock=lambda: 5.0)
    got = [await check(f"13{i}", f"8916111013{i}") for i in range(5)]
    assert got == [True, True, True, False, False]
    assert [a.reason for a in audit.rows] == ["dial.rate_pbx", "dial.rate_pbx"]


async def test_a_policy_refusal_is_audited(service: RoutingService) -> None:
    """A premium number asked by the PBX leaves a refused audit row naming the policy's reason."""
    audit = _Audit()
    check = webphone_dial_check(settings(), audit=audit)
    assert not await check("131", "88091234567")
    assert [(a.source, a.extension, a.number, a.reason) for a in audit.rows] == [
        ("webphone", "131", "88091234567", "dial.number_denied")
    ]


async def test_a_stuck_audit_does_not_hold_the_refusal(
    service: RoutingService, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A store that never answers (locked) costs the refusal at most AUDIT_SECONDS, and it stays a refusal."""

    class Stuck:
        async def add(self, attempt: DialAttempt) -> None:
            await asyncio.Event().wait()

    monkeypatch.setattr(web_module, "AUDIT_SECONDS", 0.05)
    check = webphone_dial_check(settings(), audit=Stuck())
    assert not await asyncio.wait_for(check("131", "88091234567"), 5.0)


async def test_the_route_server_alone_asks_the_browser_phone_policy(
    database_url: str, tmp_path: Path
) -> None:
    """`crmtel route serve` (FastAGI without the rest of crmtel) answers webphone-dial by the policy and its
    windows too: a Moscow mobile goes out, a premium number does not — it refused every browser outside call."""
    (agi_port,) = free_ports(1)
    config = tmp_path / "crmtel.toml"
    config.write_text(
        f'database_url = "{database_url}"\n[routing]\nagi_port = {agi_port}\n'
        '[webphone]\nenabled = true\nws_url = "wss://pbx.example.com:8089/ws"\n'
        '[ami.originate]\ndial_rules = [{prefix = "+7", replace = "8"}]\n',
        encoding="utf-8",
    )
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "crmtel.cli", "--config", str(config), "route", "serve",
        env=child_env(), stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    try:
        assert proc.stderr is not None
        while b"agi.listening" not in await asyncio.wait_for(proc.stderr.readline(), 60):
            assert proc.returncode is None
        allowed = await fake_asterisk(agi_port, env(caller="131", did="89161110131", script="webphone-dial"))
        premium = await fake_asterisk(agi_port, env(caller="131", did="88091234567", script="webphone-dial"))
    finally:
        proc.terminate()
        await proc.wait()
    assert allowed.variables == {"CRMTEL_WEBPHONE_ALLOWED": "1"}
    assert premium.variables == {"CRMTEL_WEBPHONE_ALLOWED": "0"}
